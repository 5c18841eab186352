"""NectarGAN's ``Schedule``, its curves (``schedule_map``) and its ``Scheduler`` classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from torch import optim

#: NectarGAN's "no schedule" marker: a ``Schedule`` spanning epochs 0 to 10,000,000.
DEFAULT_END_EPOCH = 10_000_000

#: A curve: ``fn(schedule, epoch, **weight_kwargs) -> weight``.
CurveFn = Callable[..., float]


# ----------------------------------------------------------------------------- schedules
@dataclass(eq=False)
class Schedule:
    """NectarGAN's loss-weight schedule, with its epoch convention.

    Given any field other than its default, a schedule starts and ends one epoch early
    (``start_epoch`` and ``end_epoch`` are reduced by 1) and ``current_value`` starts at
    ``initial_value``: NectarGAN's trainers count epochs from 1. A schedule spanning
    epochs 0 to 10,000,000 means "no schedule": the loss keeps ``current_value``.

    Args:
        schedule: ``"linear"``, ``"exponential"`` or ``fn(schedule, epoch, **kw)``.
        start_epoch: Last epoch at ``initial_value`` (before the shift).
        end_epoch: First epoch at ``target_value`` (before the shift).
        initial_value: Weight until ``start_epoch``.
        target_value: Weight from ``end_epoch`` on.
        current_value: The weight applied at the latest call (set by the manager).

    Example:
        >>> s = Schedule(start_epoch=100, end_epoch=200, initial_value=100.0, target_value=0.0)
        >>> s.start_epoch, s.end_epoch, [linear(s, e) for e in (100, 150, 199)]
        (99, 199, [99.0, 49.0, 0.0])
    """

    schedule: str | CurveFn = "linear"
    start_epoch: int = 0
    end_epoch: int = DEFAULT_END_EPOCH
    initial_value: float = 1.0
    target_value: float = 1.0
    current_value: float = 1.0

    def __post_init__(self) -> None:
        if any(getattr(self, f.name) != f.default for f in fields(self)):
            self.current_value = self.initial_value
            self.start_epoch -= 1
            self.end_epoch -= 1

    def __eq__(self, other: object) -> bool:
        """Whether both span the same epochs (NectarGAN's test for "no schedule")."""
        start, end = getattr(other, "start_epoch", None), getattr(other, "end_epoch", None)
        if start is None or end is None:
            return NotImplemented
        return bool(start == self.start_epoch and end == self.end_epoch)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def adopt(cls, schedule: object, owner: str = "Schedule") -> Schedule:
        """``schedule`` itself if it is one of ours, else a copy of its fields, unshifted.

        Accepts NectarGAN's own ``Schedule`` (already shifted at its construction) or
        anything else with the same fields.

        Raises:
            TypeError: A field is missing.
        """
        if isinstance(schedule, cls):
            return schedule
        missing = [f.name for f in fields(cls) if not hasattr(schedule, f.name)]
        if missing:
            raise TypeError(
                f"{owner}: `schedule` expected a Schedule, got {type(schedule).__name__} "
                f"without {', '.join(missing)}."
            )
        adopted = cls.__new__(cls)
        for f in fields(cls):
            setattr(adopted, f.name, getattr(schedule, f.name))
        return adopted


def is_scheduled(schedule: Any) -> bool:
    """Whether ``schedule`` moves the weight (its epochs differ from the default)."""
    return not (schedule.start_epoch == 0 and schedule.end_epoch == DEFAULT_END_EPOCH)


def _sample(schedule: Any, epoch: float) -> float:
    """Position of ``epoch`` between the start and end epochs, clamped to [0, 1]."""
    start, end = float(schedule.start_epoch), float(schedule.end_epoch)
    return max(0.0, min(1.0, (float(epoch) - start) / (end - start)))


def _clamped(value: float, initial: float, target: float) -> float:
    """``value`` kept between the two weights, and at or above 0."""
    return min(max(initial, target), max(max(0.0, min(initial, target)), value))


def linear(schedule: Any, epoch: float) -> float:
    """Straight line from ``initial_value`` to ``target_value`` (NectarGAN's curve)."""
    initial, target = float(schedule.initial_value), float(schedule.target_value)
    return _clamped(initial + _sample(schedule, epoch) * (target - initial), initial, target)


def exponential(
    schedule: Any,
    epoch: float,
    epsilon: float = 1e-9,
    allow_zero_weights: bool = True,
    silent: bool = False,
) -> float:
    """Geometric interpolation between the weights (NectarGAN's curve).

    A weight of zero is raised to ``epsilon`` when ``allow_zero_weights``; otherwise
    the curve jumps at the end epoch (``silent``) or raises ``ZeroDivisionError``.
    """
    initial, target = float(schedule.initial_value), float(schedule.target_value)
    sample = _sample(schedule, epoch)
    if initial == 0.0 or target == 0.0:
        if allow_zero_weights:
            initial, target = max(initial, epsilon), max(target, epsilon)
        elif silent:
            return target if sample >= 1.0 else initial
        else:
            raise ZeroDivisionError(
                "exponential schedule: a weight of 0 with allow_zero_weights=False; "
                "enable allow_zero_weights or use a weight > 0."
            )
    return _clamped(initial * (target / initial) ** sample, initial, target)


#: NectarGAN's curves by name.
schedule_map: dict[str, CurveFn] = {"linear": linear, "exponential": exponential}


def curve_of(schedule: Any, owner: str) -> CurveFn:
    """The function a schedule's ``schedule`` field names (or is).

    Raises:
        KeyError: Neither a known curve name nor a callable (NectarGAN's type).
    """
    curve = schedule.schedule
    if callable(curve):
        return curve  # type: ignore[no-any-return]
    if isinstance(curve, str) and curve in schedule_map:
        return schedule_map[curve]
    raise KeyError(
        f"{owner}: schedule expected one of {sorted(schedule_map)} or a callable "
        f"fn(schedule, epoch), got {curve!r}."
    )


class Scheduler:
    """Evaluates a :class:`Schedule` per epoch, normalised by its largest weight.

    Args:
        schedule: The schedule; its ``current_value`` is updated at each evaluation.

    Raises:
        TypeError: The schedule's curve is neither a known name nor a callable.
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.max_value = max(schedule.initial_value, schedule.target_value)
        try:
            self.schedule_fn = curve_of(schedule, "Scheduler")
        except KeyError as exc:
            raise TypeError(exc.args[0]) from None

    def eval_schedule(self, epoch: int) -> float:
        """The factor at ``epoch``: the curve over its largest weight (or ``current_value``)."""
        s = self.schedule
        if not is_scheduled(s):
            return float(s.current_value)
        s.current_value = float(self.schedule_fn(s, epoch))
        return s.current_value / self.max_value


class TorchScheduler(Scheduler):
    """A learning-rate schedule: ``LambdaLR`` driven by a :class:`Schedule`.

    Args:
        optimizer: The optimizer whose learning rate is scaled.
        schedule: The schedule (``None``: no schedule).
    """

    def __init__(self, optimizer: optim.Optimizer, schedule: Schedule | None = None) -> None:
        super().__init__(Schedule() if schedule is None else schedule)
        self.scheduler = optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=self.eval_schedule)
        self._old_lr = self._new_lr = float(optimizer.param_groups[0]["lr"])

    def step(self) -> None:
        """Step the learning rate, keeping the previous and the new one."""
        self.scheduler.step()
        self._old_lr, self._new_lr = self._new_lr, float(self.scheduler.get_last_lr()[0])

    def get_lr(self) -> tuple[float, float]:
        """The learning rate of the epoch just finished and of the next one."""
        return (self._old_lr, self._new_lr)

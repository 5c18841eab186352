"""Loss-weight schedules: a pydantic model with NectarGAN's fields and built-in curves.

Every built-in curve is a pure function of the schedule and a time ``t`` (an epoch or a
step, chosen by :attr:`Schedule.unit`). The interpolating curves share one helper,
:func:`progress`, so they all agree on where the window starts and ends:

* ``t <= start_epoch`` gives ``initial_value`` (``warmup`` gives 0 before ``start_epoch``),
* ``t >= end_epoch`` gives ``target_value``,
* in between the curve moves from one to the other.

So with ``start_epoch=100, end_epoch=200`` epoch 100 is the last epoch at
``initial_value`` and epoch 200 the first at ``target_value``.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from torch import Tensor

from nectarloss.validation import did_you_mean

__all__ = [
    "CURVES",
    "WINDOWED_CURVES",
    "TENSOR_CURVES",
    "Schedule",
    "ScheduleFn",
    "check_curve",
    "check_exponential_value",
    "check_milestones",
    "check_window",
    "progress",
]

#: A custom schedule: ``fn(schedule, t) -> weight``, as in NectarGAN.
ScheduleFn = Callable[["Schedule", int], float]


def progress(schedule: Schedule, t: float) -> float:
    """Fraction of the way from ``start_epoch`` to ``end_epoch`` at time ``t``, in [0, 1]."""
    if t >= schedule.end_epoch:
        return 1.0
    if t <= schedule.start_epoch:
        return 0.0
    return (t - schedule.start_epoch) / (schedule.end_epoch - schedule.start_epoch)


def _constant(s: Schedule, t: float) -> float:
    return float(s.initial_value)


def _linear(s: Schedule, t: float) -> float:
    p = progress(s, t)
    return s.initial_value + (s.target_value - s.initial_value) * p


def _exponential(s: Schedule, t: float) -> float:
    p = progress(s, t)
    return float(s.initial_value * (s.target_value / s.initial_value) ** p)


def _cosine(s: Schedule, t: float) -> float:
    p = progress(s, t)
    return s.target_value + (s.initial_value - s.target_value) * 0.5 * (1.0 + math.cos(math.pi * p))


def _step(s: Schedule, t: float) -> float:
    return s.initial_value * s.factor ** bisect_right(s.milestones, t)


def _warmup(s: Schedule, t: float) -> float:
    if t < s.start_epoch:
        return 0.0
    return _linear(s, t)


def _progress_tensor(s: Schedule, t: Tensor) -> Tensor:
    """:func:`progress` on a float64 tensor (the same arithmetic, so the same bits)."""
    return ((t - s.start_epoch) / (s.end_epoch - s.start_epoch)).clamp(0.0, 1.0)


def _linear_tensor(s: Schedule, t: Tensor) -> Tensor:
    return s.initial_value + (s.target_value - s.initial_value) * _progress_tensor(s, t)


def _exponential_tensor(s: Schedule, t: Tensor) -> Tensor:
    ratio = torch.full_like(t, s.target_value / s.initial_value)
    return s.initial_value * ratio.pow(_progress_tensor(s, t))


def _cosine_tensor(s: Schedule, t: Tensor) -> Tensor:
    half = 0.5 * (1.0 + torch.cos(math.pi * _progress_tensor(s, t)))
    return s.target_value + (s.initial_value - s.target_value) * half


def _step_tensor(s: Schedule, t: Tensor) -> Tensor:
    reached = torch.zeros_like(t)
    for milestone in s.milestones:  # few, fixed: unrolled into the graph
        reached = reached + (t >= milestone).to(t.dtype)
    return s.initial_value * torch.full_like(t, s.factor).pow(reached)


def _warmup_tensor(s: Schedule, t: Tensor) -> Tensor:
    return torch.where(t < s.start_epoch, torch.zeros_like(t), _linear_tensor(s, t))


#: Built-in curves by name, on a float64 tensor of times (for compiled steps).
TENSOR_CURVES: dict[str, Callable[[Schedule, Tensor], Tensor]] = {
    "constant": lambda s, t: torch.full_like(t, s.initial_value),
    "linear": _linear_tensor,
    "exponential": _exponential_tensor,
    "cosine": _cosine_tensor,
    "step": _step_tensor,
    "warmup": _warmup_tensor,
}

#: Built-in curves by name.
CURVES: dict[str, Callable[[Schedule, float], float]] = {
    "constant": _constant,
    "linear": _linear,
    "exponential": _exponential,
    "cosine": _cosine,
    "step": _step,
    "warmup": _warmup,
}

#: Curves that move between ``start_epoch`` and ``end_epoch`` (so need ``end > start``).
WINDOWED_CURVES = frozenset({"linear", "exponential", "cosine", "warmup"})


# ----------------------------------------------------------------------------- checks
# One check per field, shared by Schedule and the spec model ScheduleSpec. Each raises a
# ValueError whose message is relative to the field ("expected ..., got ..."); ``field``
# puts the field's name in front where the caller reports for the whole schedule.
def _prefix(field: str | None) -> str:
    return f"{field} " if field else ""


def check_curve(name: str, *, or_callable: bool = False) -> str:
    """Return ``name`` if it is a built-in curve; else a ``ValueError`` with the closest.

    Example:
        >>> check_curve("cosin")
        Traceback (most recent call last):
            ...
        ValueError: expected one of constant, cosine, exponential, linear, step, warmup, \
got 'cosin' (did you mean 'cosine'?)
    """
    if name not in CURVES:
        names = sorted(CURVES)
        alternative = " or a callable" if or_callable else ""
        raise ValueError(
            f"expected one of {', '.join(names)}{alternative}, got {name!r}"
            f"{did_you_mean(name, names)}"
        )
    return name


def check_window(
    curve: object, start_epoch: int | None, end_epoch: int, field: str | None = None
) -> int:
    """Return ``end_epoch`` unless a windowed curve ends at or before ``start_epoch``.

    ``start_epoch`` may be ``None`` (it failed its own check): nothing to compare with.
    """
    if curve in WINDOWED_CURVES and start_epoch is not None and end_epoch <= start_epoch:
        raise ValueError(
            f"{_prefix(field)}expected an int > start_epoch ({start_epoch}) for a {curve!r} "
            f"schedule, got {end_epoch}"
        )
    return end_epoch


def check_exponential_value(curve: object, value: float, field: str | None = None) -> float:
    """Return ``value`` unless the curve is ``exponential`` and the value is not > 0."""
    if curve == "exponential" and value <= 0.0:
        raise ValueError(
            f"{_prefix(field)}expected a float > 0 for an 'exponential' schedule, got {value}"
        )
    return value


def check_milestones(milestones: Sequence[int]) -> Sequence[int]:
    """Return ``milestones`` if they are non-negative and increasing."""
    if list(milestones) != sorted(milestones) or any(m < 0 for m in milestones):
        raise ValueError(f"expected non-negative increasing ints, got {list(milestones)}")
    return milestones


class Schedule(BaseModel):
    """A weight schedule for one loss (NectarGAN-compatible fields).

    Args:
        schedule: A built-in curve name (``constant``, ``linear``, ``exponential``,
            ``cosine``, ``step``, ``warmup``) or a callable ``fn(schedule, t) -> float``.
        start_epoch: Last time at ``initial_value``; the curve starts moving after it.
        end_epoch: First time at ``target_value``; the value holds from then on.
        initial_value: Weight up to and including ``start_epoch``.
        target_value: Weight from ``end_epoch`` on.
        unit: Whether ``t`` is the epoch passed to ``compute_loss`` or the loss's own
            step counter (number of calls so far, starting at 0).
        milestones: For ``step``: times at which the weight is multiplied by ``factor``.
        factor: For ``step``: the multiplier applied at each milestone reached.

    Curves:
        * ``constant``: ``initial_value`` always.
        * ``linear``: straight line from ``initial_value`` to ``target_value``.
        * ``exponential``: geometric interpolation (both values must be > 0).
        * ``cosine``: half-cosine from ``initial_value`` to ``target_value``.
        * ``step``: ``initial_value * factor ** (number of milestones <= t)``.
        * ``warmup``: 0 before ``start_epoch``, then as ``linear`` (the loss is off
          until its ramp begins, then ramps and holds).

    Example:
        >>> s = Schedule(schedule="linear", start_epoch=100, end_epoch=200,
        ...              initial_value=100.0, target_value=0.0)
        >>> [s.value(e) for e in (0, 100, 150, 200, 300)]
        [100.0, 100.0, 50.0, 0.0, 0.0]
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    schedule: str | ScheduleFn = "linear"
    start_epoch: int = Field(default=0, ge=0)
    end_epoch: int = Field(default=10_000_000, ge=0)
    initial_value: float = 1.0
    target_value: float = 1.0
    unit: Literal["epoch", "step"] = "epoch"
    milestones: tuple[int, ...] = ()
    factor: float = Field(default=0.1, ge=0.0, allow_inf_nan=False)

    @field_validator("schedule", mode="before")
    @classmethod
    def _check_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            check_curve(value, or_callable=True)
        elif not callable(value):
            raise ValueError(f"expected a curve name or a callable, got {type(value).__name__}")
        return value

    @field_validator("initial_value", "target_value")
    @classmethod
    def _check_weight(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"expected a finite weight >= 0, got {value}")
        return value

    @field_validator("milestones")
    @classmethod
    def _check_milestones(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        check_milestones(value)
        return value

    @model_validator(mode="after")
    def _check_window(self) -> Schedule:
        name = self.schedule if isinstance(self.schedule, str) else None
        check_window(name, self.start_epoch, self.end_epoch, "end_epoch")
        check_exponential_value(name, self.initial_value, "initial_value")
        check_exponential_value(name, self.target_value, "target_value")
        return self

    @field_serializer("schedule")
    def _serialize_schedule(self, value: str | ScheduleFn) -> str:
        if isinstance(value, str):
            return value
        raise ValueError(
            f"Schedule: a custom callable ({getattr(value, '__qualname__', value)!r}) cannot be "
            "serialised; use a built-in curve name to save or export this schedule."
        )

    @property
    def current_value(self) -> float:
        """The weight at time 0 (NectarGAN's field name).

        A schedule is a pure curve and holds no run state: the weight a loss applied
        at its latest call is :attr:`nectarloss.LMLoss.current_weight`.
        """
        return self.value(0) if not self.is_custom else self.initial_value

    @property
    def is_custom(self) -> bool:
        """Whether the curve is a user callable rather than a built-in name."""
        return not isinstance(self.schedule, str)

    def value(self, t: float) -> float:
        """Return the weight at time ``t`` (an epoch or a step, per :attr:`unit`).

        Pure: it does not change :attr:`current_value`.
        """
        curve = self.schedule
        if isinstance(curve, str):
            return CURVES[curve](self, t)
        result = curve(self, int(t))
        if isinstance(result, bool) or not isinstance(result, numbers.Real):
            raise TypeError(
                f"Schedule: the custom curve {getattr(curve, '__qualname__', curve)!r} expected "
                f"to return a float, got {type(result).__name__} at t={t}."
            )
        return float(result)

    def value_tensor(self, t: Tensor) -> Tensor:
        """The weight at the times in ``t`` (a float64 tensor), computed on its device.

        For compiled and captured steps: no host number is read, so a changing epoch or
        step never recompiles. A custom callable gets the tensor (it must accept one).
        """
        curve = self.schedule
        if isinstance(curve, str):
            return TENSOR_CURVES[curve](self, t)
        # the eager path passes int(t); floor is the same for the times a schedule takes
        result = curve(self, t.floor())  # type: ignore[arg-type]
        return torch.as_tensor(result, dtype=torch.float64, device=t.device)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible fields (raises for a custom callable curve)."""
        return self.model_dump(mode="json")

"""NectarGAN's loss-manager API over the nectarloss core: change the imports, keep the code.

Trainer code written for NectarGAN (``nectargan.losses.loss_manager``,
``nectargan.losses.lm_data``, ``nectargan.scheduling``) runs unchanged after its
imports name this module::

    from nectarloss.compat.nectargan import LossManager, LMLoss, LMHistory, Schedule

What NectarGAN's trainers rely on holds: the positional ``Config`` (any object with the
same attributes), its epoch convention (a ``Schedule`` given any non-default field
starts and ends one epoch early, since trainers count epochs from 1), its linear and
exponential curves, ``loss_kwargs={"weight_kwargs": ...}``, ``buffer_size`` set after
construction, ``loss_fns``, a replacing ``init_from_spec`` (``None`` resets), weighted
``get_loss_tensors`` and ``history.losses``, tag-only queries (no match: ``{}``), its
print formats, and ``loss_log.json`` in its full layout. NectarGAN's own ``LMLoss`` and
``Schedule`` objects (a spec module left unchanged) are accepted and converted.

Underneath is a native :class:`nectarloss.LossManager` (:attr:`LossManager.native`):
the per-step path never syncs (NectarGAN reads every value back at every call) and
``loss_log.jsonl`` is the record. ``loss_log.json`` is derived from it: rewritten whole
by :meth:`LossManager.update_loss_log` and :meth:`LossManager.export_base_log`, so its
cost grows with the run (NectarGAN rewrites it once per loss per update).

Deliberate differences from NectarGAN:

* ``register_loss_fn`` gives each loss its own default ``Schedule`` (NectarGAN shares
  one default object, so every unscheduled loss registered that way ends up with the
  weight of the last one).
* The automatic flush of a full buffer goes to ``loss_log.jsonl`` only; ``loss_log.json``
  catches up at the next ``update_loss_log``.
* A loss not computed yet reads ``nan`` in ``get_loss_values`` (NectarGAN raises
  ``IndexError``), and the latest value stays readable after ``update_loss_log``.
* An existing log in the experiment directory is continued when
  ``config.train.load.continue_train`` is true, and replaced otherwise (NectarGAN
  truncates ``loss_log.json`` in ``export_base_log`` either way).
* ``compute_loss_xyz`` works (NectarGAN raises ``NotImplementedError``).
* A new adapter on a directory another adapter of this process writes to takes it
  over (the old one flushes and lets go); another process's gets ``LogInUseError``.
* Loss names follow nectarloss's rule (non-empty, no path separators or control
  characters), and a weight must be finite (NectarGAN would multiply by NaN).
* Weighted values have NectarGAN's exact bits for losses that reduce to a scalar; for
  ``reduction="none"`` outputs (NectarGAN averages ``loss * weight``, the adapter
  weights the average) they agree to rounding. ``last_loss_map`` is the loss's output,
  not a copy of it.
* Interpreter exit flushes ``loss_log.jsonl``; ``loss_log.json`` is rewritten by
  ``update_loss_log``, ``export_base_log`` and :meth:`LossManager.close`.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
import weakref
from array import array
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn, optim

from nectarloss import manager as native_manager
from nectarloss import records
from nectarloss.columns import LogColumn, all_float32, multiply, product_as
from nectarloss.distributed import is_main_rank
from nectarloss.log import read_log, write_nectargan_json
from nectarloss.transfer import values_to_host
from nectarloss.validation import add_note

__all__ = [
    "LMHistory",
    "LMLoss",
    "LossManager",
    "Schedule",
    "Scheduler",
    "TorchScheduler",
    "schedule_map",
]

#: NectarGAN's "no schedule" marker: a ``Schedule`` spanning epochs 0 to 10,000,000.
DEFAULT_END_EPOCH = 10_000_000

#: Largest ``buffer_size`` (the native history's limit).
_MAX_BUFFER = records.LMHistory.MAX_CAPACITY

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


# ----------------------------------------------------------------------------- records
@dataclass
class LMHistory:
    """A loss's recent values: weighted means and the weights NectarGAN logs.

    The history of a registered loss is a snapshot taken when it is read (one
    device-to-host copy): appending to it records nothing.
    """

    losses: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


class LMLoss:
    """A NectarGAN loss entry: name, function, weight, schedule, tags, latest values.

    Constructed like NectarGAN's dataclass, with its rule: with no schedule the
    schedule's ``current_value`` becomes ``loss_weight``; with one, ``loss_weight``
    becomes the schedule's ``initial_value``.

    Once registered, ``history`` and ``last_loss_map`` read the manager's records:
    weighted means of the values not yet written to the log, and the weighted output
    of the latest call, on the CPU.

    Args:
        name: The loss's name.
        function: The loss module (any callable returning a Tensor).
        loss_weight: The weight when there is no schedule.
        schedule: A :class:`Schedule` (or NectarGAN's); ``None`` for none.
        last_loss_map: Output before the first call.
        history: History before registration.
        tags: Lookup tags (``["G"]``).
    """

    def __init__(
        self,
        name: str,
        function: Callable[..., Any],
        loss_weight: float = 1.0,
        schedule: Any = None,
        last_loss_map: Tensor | None = None,
        history: LMHistory | None = None,
        tags: list[str] | None = None,
    ) -> None:
        self.name = name
        self.function = function
        self.loss_weight = loss_weight
        self.schedule: Schedule = Schedule() if schedule is None else Schedule.adopt(schedule, name)
        self.tags: list[str] = [] if tags is None else tags
        self._last_loss_map = torch.empty(0) if last_loss_map is None else last_loss_map
        self._history = LMHistory() if history is None else history
        #: The native entry recording this loss, once registered.
        self._native: records.LMLoss | None = None
        #: The weights NectarGAN's log shows, as ``(first step, weight)`` changes.
        self._logged: list[tuple[int, float]] = []
        if is_scheduled(self.schedule):
            self.loss_weight = self.schedule.initial_value
        else:
            self.schedule.current_value = self.loss_weight

    @classmethod
    def adopt(cls, entry: object, owner: str) -> LMLoss:
        """``entry`` if it is one of ours, else a copy of NectarGAN's (or a look-alike).

        Raises:
            TypeError: ``entry`` lacks a field of NectarGAN's ``LMLoss``.
        """
        if isinstance(entry, cls):
            return entry
        needed = ("name", "function", "loss_weight", "schedule", "tags")
        missing = [n for n in needed if not hasattr(entry, n)]
        if missing:
            raise TypeError(
                f"{owner}: expected an LMLoss, got {type(entry).__name__} "
                f"without {', '.join(missing)}."
            )
        e: Any = entry
        adopted = cls(e.name, e.function, e.loss_weight, e.schedule, tags=list(e.tags))
        adopted.loss_weight = e.loss_weight  # exactly as given (its own rule already ran)
        adopted.schedule.current_value = e.schedule.current_value
        return adopted

    def weight_at(self, epoch: Any, **weight_kwargs: Any) -> float:
        """The weight at ``epoch`` (NectarGAN's rule), stored in ``schedule.current_value``.

        Any finite number is a weight, negative ones included (NectarGAN's curves can
        give them); a tensor is read back to the host (a sync per call).

        Raises:
            TypeError: The curve returned something that is not a number.
            ValueError: The weight is NaN or infinite (``current_value`` is unchanged).
        """
        s = self.schedule
        if not is_scheduled(s):
            return _finite_weight(self.name, s.current_value, "schedule.current_value")
        try:
            value = curve_of(s, self.name)(s, epoch, **weight_kwargs)
        except Exception as exc:
            add_note(exc, f"nectarloss: raised by the schedule of loss {self.name!r}")
            raise
        weight = _finite_weight(self.name, value, f"the schedule's value at epoch {epoch}")
        s.current_value = value
        return weight

    @property
    def history(self) -> LMHistory:
        """Weighted means and logged weights of the values not yet flushed (a snapshot)."""
        native = self._native
        if native is None:
            return self._history
        h = native.history
        raw = h.values_tensor()
        dtype = raw.dtype if native.last_value is None else native.last_value.dtype
        weights = torch.tensor(h.weights, dtype=torch.float64, device=raw.device)
        # NectarGAN records (loss * weight).item(): the same rounding, the same bits
        losses: list[float] = product_as(raw, weights, dtype).tolist()
        return LMHistory(losses, logged_weights(self._logged, h.steps))

    @history.setter
    def history(self, history: LMHistory) -> None:
        if self._native is not None:
            raise AttributeError(
                f"{self.name}: the history of a registered loss is kept by its manager; "
                "LossManager.update_loss_log() writes and clears it."
            )
        self._history = history

    @property
    def last_loss_map(self) -> Tensor:
        """Weighted output of the latest call, detached, on the CPU (reading syncs)."""
        native = self._native
        if native is None or native.last_loss_map is None or native.last_weight is None:
            return self._last_loss_map
        return (native.last_loss_map * native.last_weight).cpu()

    @last_loss_map.setter
    def last_loss_map(self, value: Tensor) -> None:
        self._last_loss_map = value

    def snapshot(self, strip: bool) -> LMLoss:
        """An unregistered copy: empty history with ``strip``, else the current one."""
        out = copy.copy(self)
        out._history = LMHistory() if strip else self.history
        out._last_loss_map = self.last_loss_map
        out._native = None
        return out

    def __repr__(self) -> str:
        return (
            f"LMLoss(name={self.name!r}, function={self.function!r}, "
            f"loss_weight={self.loss_weight!r}, schedule={self.schedule!r}, tags={self.tags!r})"
        )


def logged_weights(changes: Sequence[tuple[int, float]], steps: Sequence[int]) -> list[float]:
    """The weight NectarGAN logs at each of ``steps`` (increasing) from the changes.

    ``changes`` are ``(first step, weight)`` pairs; steps before the first get none.

    Example:
        >>> logged_weights([(0, 2.0), (3, 5.0)], range(1, 5))
        [2.0, 2.0, 5.0, 5.0]
    """
    out: list[float] = []
    for i, (first, weight) in enumerate(changes):
        lo = bisect_left(steps, first)
        hi = bisect_left(steps, changes[i + 1][0]) if i + 1 < len(changes) else len(steps)
        out.extend([weight] * (hi - lo))
    return out


def note_logged_weight(changes: list[tuple[int, float]], step: int, weight: float) -> None:
    """Add ``(step, weight)`` to the changes if the logged weight changes there."""
    if not changes or changes[-1][1] != weight:
        changes.append((step, weight))


def _finite_weight(owner: str, value: object, what: str) -> float:
    """``value`` as a float, if it is a finite real number (or a one-element tensor)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {what} expected a number, got {type(value).__name__}.")
    weight = float(value)
    if not math.isfinite(weight):
        raise ValueError(f"{owner}: {what} expected a finite number, got {weight}.")
    return weight


def _config_value(config: object, path: str) -> Any:
    """``config.a.b.c`` for ``path="a.b.c"``, or ``None`` where an attribute is missing."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


# ----------------------------------------------------------------------------- manager
#: Per experiment directory, the adapter writing there in this process.
_WRITERS: dict[Path, weakref.ref[LossManager]] = {}


def _hand_over(directory: Path, successor: LossManager) -> None:
    """Close the adapter of this process still writing to ``directory``, if any.

    NectarGAN lets a new manager take over a run's directory while the old one is
    still referenced (the Toolbox starts a new trainer worker that way); the old one
    flushes and lets go, so the new one can take the log. Another process's writer
    still gets :class:`~nectarloss.LogInUseError`.
    """
    key = directory.resolve()
    previous = _WRITERS.get(key)
    holder = None if previous is None else previous()
    if holder is not None and holder is not successor:
        holder.close()
    _WRITERS[key] = weakref.ref(successor)


class LossManager:
    """NectarGAN's ``LossManager``, recording through a native :class:`nectarloss.LossManager`.

    Args:
        config: NectarGAN's ``Config``, or any object with its attributes. Read:
            ``common.device`` (required); ``dataloader.dataroot`` (the log header and
            ``dataset_length``, the entries of ``<dataroot>/train``);
            ``dataloader.load.input_nc`` and ``.crop_size`` (the placeholder
            ``last_loss_map``); ``train.load.continue_train`` (continue the log).
        experiment_dir: Where ``loss_log.jsonl`` and ``loss_log.json`` go.
        enable_logging: Keep histories and write the logs; otherwise keep only the
            latest value of each loss.
        history_buffer_size: Values a loss buffers before they are flushed to
            ``loss_log.jsonl`` (also settable later as :attr:`buffer_size`).

    Raises:
        AttributeError: ``config`` has no ``common.device``.
    """

    def __init__(
        self,
        config: Any,
        experiment_dir: str | Path,
        enable_logging: bool = True,
        history_buffer_size: int = 50_000,
    ) -> None:
        device = _config_value(config, "common.device")
        if device is None:
            raise AttributeError(
                "LossManager: `config` expected NectarGAN's Config or an object with "
                f"`common.device`, got {type(config).__name__} without it."
            )
        self.config = config
        self.device = device
        self.experiment_dir = Path(experiment_dir)
        self.enable_logging = bool(enable_logging)
        continue_train = bool(_config_value(config, "train.load.continue_train"))
        if self.enable_logging:
            _hand_over(self.experiment_dir, self)
        #: The native manager doing the work (its log, checkpoints and summary).
        self.native = native_manager.LossManager(
            self.experiment_dir if self.enable_logging else None,
            device=device,
            enable_logging=self.enable_logging,
            resume=self.enable_logging and continue_train,
            overwrite=self.enable_logging and not continue_train,
        )
        self.buffer_size = history_buffer_size
        #: ``loss_log.json``, once written.
        self.loss_log: Path | None = None
        self.loss_fns: dict[str, LMLoss] = {}
        #: Per loss name, the weights NectarGAN's file shows (see :func:`logged_weights`).
        self._logged: dict[str, list[tuple[int, float]]] = {}
        self._dataset_length: int | None = None
        self.dummy = self._placeholder()
        self.init_from_spec(spec=None)

    def _placeholder(self) -> Tensor:
        """NectarGAN's ``last_loss_map`` before a loss's first call: zeros of an input."""
        channels = _config_value(self.config, "dataloader.load.input_nc")
        size = _config_value(self.config, "dataloader.load.crop_size")
        if isinstance(channels, int) and isinstance(size, int):
            return torch.zeros((1, channels, size, size))
        return torch.empty(0)

    @property
    def buffer_size(self) -> int:
        """Values each loss buffers before an automatic flush; settable at any time."""
        return self.native.history_buffer_size

    @buffer_size.setter
    def buffer_size(self, size: float) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, float)) or math.isnan(size):
            raise TypeError(f"LossManager: `buffer_size` expected a number, got {size!r}.")
        # NectarGAN flushes once a history holds >= buffer_size values: 0 keeps one
        self.native.history_buffer_size = max(1, min(math.ceil(size), _MAX_BUFFER))

    # ------------------------------------------------------------------ registration
    def init_from_spec(
        self, spec: Callable[..., Mapping[str, Any]] | None, *args: Any, **kwargs: Any
    ) -> dict[str, LMLoss]:
        """Replace every registered loss with a spec's (``None``: remove them all).

        ``spec(*args, **kwargs)`` returns ``{name: LMLoss}``; NectarGAN's own ``LMLoss``
        objects are converted. Buffered values of the losses replaced are written to
        the log first, and a loss registered again continues its series.

        Returns:
            The registered losses (``loss_fns``).

        Raises:
            RuntimeError: The spec's result is not ``{name: LMLoss}`` (as NectarGAN);
                nothing changes. Exceptions raised by the spec itself keep their type.
        """
        if spec is None:
            entries: dict[str, LMLoss] = {}
        else:
            result = spec(*args, **kwargs)
            owner = f"LossManager.init_from_spec({getattr(spec, '__name__', 'spec')})"
            try:
                if not isinstance(result, Mapping):
                    raise TypeError(f"expected dict[str, LMLoss], got {type(result).__name__}")
                entries = {str(k): LMLoss.adopt(v, f"entry {k!r}") for k, v in result.items()}
                natives = [self._native_entry(name, e) for name, e in entries.items()]
            except (TypeError, ValueError, KeyError) as exc:
                raise RuntimeError(
                    f"{owner}: unable to initialize from the spec: {exc} "
                    "(spec functions must return dict[str, LMLoss])."
                ) from exc
        for name in list(self.native.get_registered_losses()):
            self.native.remove_loss(name)  # writes its values first
        for old in self.loss_fns.values():
            old._native = None
        self.loss_fns = {}
        if spec is not None:
            self.native.init_from_spec(lambda: {n.name: n for n in natives})
            for (name, entry), native in zip(entries.items(), natives, strict=True):
                self._bind(name, entry, native)
                entry.last_loss_map = self.dummy.clone()
        return self.loss_fns

    def register_loss_fn(
        self,
        loss_name: str,
        loss_fn: Callable[..., Any],
        loss_weight: float = 1.0,
        schedule: Any = None,
        tags: list[str] | None = None,
    ) -> None:
        """Register a loss (NectarGAN's signature; each gets its own default schedule).

        Raises:
            ValueError: The name is in use, or breaks nectarloss's naming rule.
            TypeError: ``loss_fn`` is not callable, or ``schedule`` lacks a field.
            KeyError: The schedule names a curve other than linear or exponential.
        """
        if loss_name in self.loss_fns:
            raise ValueError(f"Loss function name already in use: {loss_name}")
        if isinstance(loss_fn, nn.Module):
            loss_fn = loss_fn.to(self.device)
        entry = LMLoss(
            loss_name,
            loss_fn,
            loss_weight,
            schedule,
            last_loss_map=self.dummy.clone(),
            tags=[] if tags is None else tags,
        )
        self._register(loss_name, entry)

    def _register(self, name: str, entry: LMLoss) -> records.LMLoss:
        """Register ``entry`` natively (replacing a native loss of that name) and bind it."""
        native = self._native_entry(name, entry)
        if name in self.native:  # dropped from `loss_fns` by hand, or replaced there
            self.native.remove_loss(name)  # writes its values first
        self.native.init_from_spec(lambda: {name: native})
        self._bind(name, entry, native)
        return native

    def _native_entry(self, name: str, entry: LMLoss) -> records.LMLoss:
        """A checked native entry for ``entry`` (weights come from ``entry`` per call)."""
        if is_scheduled(entry.schedule):
            curve_of(entry.schedule, name)  # an unknown curve fails now, not at a call
        tags = entry.tags
        native = records.LMLoss(
            name=name,
            function=entry.function,
            loss_weight=max(float(entry.loss_weight), 0.0),  # the header's; never applied
            tags=[tags] if isinstance(tags, str) else list(tags),
            check_inputs=False,  # torch's own input rules, as NectarGAN
        ).validated()
        return native

    def _bind(self, name: str, entry: LMLoss, native: records.LMLoss) -> None:
        entry._native = native
        changes = self._logged.setdefault(name, [])
        note_logged_weight(changes, native.num_steps, entry.loss_weight)
        entry._logged = changes
        self.loss_fns[name] = entry

    # ------------------------------------------------------------------ per-step path
    def compute_loss_xy(
        self,
        loss_name: str,
        x: Any,
        y: Any,
        epoch: int = 0,
        loss_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Tensor:
        """Run a loss on ``x`` (prediction) and ``y`` (target); return it weighted.

        ``loss_kwargs={"weight_kwargs": {...}}`` goes to the schedule's curve (e.g.
        ``epsilon`` for ``exponential``). Never syncs.

        Raises:
            KeyError: No loss has that name.
        """
        return self._compute(loss_name, (x, y), epoch, loss_kwargs)

    def compute_loss_xyz(
        self,
        loss_name: str,
        x: Any,
        y: Any,
        z: Any,
        epoch: int = 0,
        loss_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Tensor:
        """:meth:`compute_loss_xy` for a three-input loss (triplet, margin ranking)."""
        return self._compute(loss_name, (x, y, z), epoch, loss_kwargs)

    def _compute(
        self,
        loss_name: str,
        inputs: tuple[Any, ...],
        epoch: int,
        loss_kwargs: Mapping[str, Mapping[str, Any]] | None,
    ) -> Tensor:
        entry = self.loss_fns.get(loss_name)
        if entry is None:
            raise KeyError(
                f"Invalid loss type: {loss_name!r}. Valid types are: {list(self.loss_fns)}"
            )
        native = entry._native if type(entry) is LMLoss else None
        if native is None:  # written into `loss_fns` directly: register it now
            entry = self._adopted(loss_name, entry)
            native = self._register(loss_name, entry)
        if torch.compiler.is_compiling() and is_scheduled(entry.schedule):
            raise RuntimeError(
                f"{loss_name}: NectarGAN's schedules compute the weight on the host, so a "
                "scheduled loss cannot run in a compiled step; compute it outside the "
                "compiled region, or use nectarloss.LossManager, whose schedules compile."
            )
        weight_kwargs = loss_kwargs.get("weight_kwargs", {}) if loss_kwargs else {}
        weight = entry.weight_at(epoch, **weight_kwargs)
        note_logged_weight(entry._logged, native.num_steps, entry.loss_weight)
        # The adapter's one hook into the native per-step path: the weight is ours, and
        # the epoch is NectarGAN's business (any number its curves take).
        return self.native._run(native, inputs, None, None, {}, weight=weight)

    def _adopted(self, name: str, entry: object) -> LMLoss:
        """``entry`` as one of ours (NectarGAN's own is converted and put in its place)."""
        if type(entry) is LMLoss:
            return entry
        adopted = LMLoss.adopt(entry, f"loss_fns[{name!r}]")
        self.loss_fns[name] = adopted
        return adopted

    # ------------------------------------------------------------------ queries
    def _select(self, query: Sequence[str] | None) -> dict[str, LMLoss]:
        """Losses with a tag in ``query`` (NectarGAN matches tags only), or all."""
        return {
            name: self._adopted(name, e)
            for name, e in list(self.loss_fns.items())
            if query is None or any(tag in e.tags for tag in query)
        }

    def get_registered_losses(
        self, query: Sequence[str] | None = None, strip: bool = True
    ) -> dict[str, LMLoss]:
        """Copies of the losses with a tag in ``query`` (``strip``: without history)."""
        return {name: e.snapshot(strip) for name, e in self._select(query).items()}

    def get_loss_values(
        self, query: Sequence[str] | None = None, precision: int = 2
    ) -> dict[str, float]:
        """Latest weighted value of each selected loss, rounded (one host copy)."""
        selected = self._select(query)
        weighted: list[Tensor | None] = []
        for e in selected.values():
            n = e._native
            if n is None or n.last_value is None or n.last_weight is None:
                weighted.append(None)
            else:  # NectarGAN's (loss * weight).item(): the same torch op, the same bits
                weighted.append(n.last_value * n.last_weight)
        host = values_to_host(list(selected), weighted, [1.0] * len(weighted))
        return {name: round(v, precision) for name, v in zip(selected, host, strict=True)}

    def get_loss_tensors(self, query: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Weighted output of each selected loss's latest call, on the CPU."""
        return {name: e.last_loss_map for name, e in self._select(query).items()}

    def get_loss_weights(
        self, query: Sequence[str] | None = None, precision: int = 2
    ) -> dict[str, float]:
        """Each selected loss's ``schedule.current_value`` (the latest weight), rounded."""
        return {
            name: round(float(e.schedule.current_value), precision)
            for name, e in self._select(query).items()
        }

    def print_losses(
        self, epoch: int, iter: int, precision: int = 2, capture: bool = False
    ) -> str | None:
        """Print (or return) ``"(epoch: e, iters: i) Loss: name: value ..."``."""
        values = self.get_loss_values(precision=precision)
        text = f"(epoch: {epoch}, iters: {iter}) Loss:" + "".join(
            f" {name}: {value}" for name, value in values.items()
        )
        if capture:
            return text
        print(text)
        return None

    def print_weights(self, precision: int = 2, capture: bool = False) -> str | None:
        """Print (or return) ``"Loss weights: name: weight ..."``."""
        weights = self.get_loss_weights(precision=precision)
        text = "Loss weights:" + "".join(f" {name}: {w}" for name, w in weights.items())
        if capture:
            return text
        print(text)
        return None

    # ------------------------------------------------------------------ logs
    def _bypassed(self, method: str) -> bool:
        if self.enable_logging:
            return False
        warnings.warn(
            f"Call to LossManager.{method}() with `enable_logging=False`. Bypassing.",
            stacklevel=3,
        )
        return True

    def update_loss_log(self, silent: bool = True, capture: bool = False) -> str | None:
        """Flush every loss to ``loss_log.jsonl``, then rewrite ``loss_log.json``.

        Returns:
            With ``silent=False`` and ``capture=True``, NectarGAN's timing message.
        """
        if self._bypassed("update_loss_log"):
            return None
        start = time.perf_counter()
        self.native.update_loss_log()
        self._write_json()
        if silent:
            return None
        message = (
            f"LossManager: Logs updated. Time taken: {time.perf_counter() - start:.3f} seconds"
        )
        if capture:
            return message
        print(message)
        return None

    def export_base_log(self) -> None:
        """Write ``loss_log.json`` from the log as it stands (NectarGAN: at the start).

        Raises:
            RuntimeError: The file cannot be written.
        """
        if self._bypassed("export_base_log"):
            return
        self._write_json()

    def _write_json(self) -> None:
        """Rewrite ``<experiment_dir>/loss_log.json`` from ``loss_log.jsonl`` (rank 0)."""
        source = self.native.log_path
        path = self.experiment_dir / "loss_log.json"
        if source is None or not is_main_rank():
            return
        empty: LogColumn[float] = LogColumn(array("d"))
        columns: dict[str, tuple[LogColumn[float], LogColumn[float]]] = {}
        if source.exists() and source.stat().st_size:
            log = read_log(source)
            for name in [*log.info, *log.losses]:  # registration order, as NectarGAN
                series = log.losses.get(name)
                if series is None:
                    columns.setdefault(name, (empty, empty))
                    continue
                described = log.info.get(name, {}).get("weight")
                weights = array("d", series.weights)
                self._use_logged_weights(name, series.steps, weights, described)
                loss = multiply(series.values, series.weights, self._dtype_of(name, series))
                columns[name] = (loss, LogColumn(weights))
        for name in self.loss_fns:
            columns.setdefault(name, (empty, empty))
        try:
            write_nectargan_json(path, columns, header=self._header(), nan_tokens=True)
        except OSError as exc:
            raise RuntimeError(f"Unable to save loss log to: {path.as_posix()}") from exc
        self.loss_log = path

    def _dtype_of(self, name: str, series: Any) -> torch.dtype:
        """The dtype the loss computes in: its latest value's, else float32 if it fits."""
        entry = self.loss_fns.get(name)
        native = entry._native if type(entry) is LMLoss else None
        if native is not None and native.last_value is not None:
            return native.last_value.dtype
        return torch.float32 if all_float32(series.values) else torch.float64

    def _use_logged_weights(
        self, name: str, steps: Sequence[int], weights: array[float], described: object
    ) -> None:
        """Put the weights NectarGAN logs (``loss_weight``) in place of applied ones.

        Steps this manager recorded get the ``loss_weight`` of their call; earlier
        ones (a resumed run's) the weight the log's header describes for the loss.
        """
        changes = self._logged.get(name, [])
        ours = bisect_left(steps, changes[0][0]) if changes else len(steps)
        if isinstance(described, (int, float)) and not isinstance(described, bool):
            weights[:ours] = array("d", [float(described)]) * ours
        weights[ours:] = array("d", logged_weights(changes, steps[ours:]))

    def _header(self) -> dict[str, Any]:
        """NectarGAN's header fields: device, dataroot, dataset_length, experiment."""
        dataroot = _config_value(self.config, "dataloader.dataroot")
        if self._dataset_length is None:
            train = None if dataroot is None else Path(dataroot, "train")
            if train is not None and train.is_dir():
                self._dataset_length = sum(1 for _ in train.iterdir())
            else:
                where = "config has no dataloader.dataroot" if train is None else f"no {train}"
                warnings.warn(
                    f"LossManager: {where} to count the log's `dataset_length` from; writing 0.",
                    stacklevel=4,
                )
                self._dataset_length = 0
        return {
            "device": f"{self.device}",
            "dataroot": f"{dataroot}",
            "dataset_length": self._dataset_length,
            "experiment": f"{self.experiment_dir.name}",
        }

    def close(self) -> None:
        """Flush, rewrite ``loss_log.json`` and release the log (not in NectarGAN)."""
        if self.enable_logging:
            self.native.update_loss_log()
            self._write_json()
        self.native.close()

    def __repr__(self) -> str:
        return f"nectargan.LossManager(losses={list(self.loss_fns)}, native={self.native!r})"

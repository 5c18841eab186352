"""NectarGAN's ``LMHistory`` and ``LMLoss`` over a native :class:`nectarloss.LMLoss`."""

from __future__ import annotations

import copy
import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from nectarloss import records
from nectarloss.columns import product_as
from nectarloss.compat.nectargan.schedules import (
    Schedule,
    curve_of,
    is_scheduled,
)
from nectarloss.validation import add_note


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

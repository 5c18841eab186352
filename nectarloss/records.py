"""Per-loss records: :class:`LMLoss` (a registered loss) and :class:`LMHistory` (its buffer).

``LMHistory`` keeps the recent raw loss means in a preallocated tensor on the loss's
device. Writing a value is a device-side copy into the next slot, never a host sync.
Weights and step numbers are host numbers the manager already knows: weights are
stored run-length encoded (a new run only when the weight changes) and steps are
consecutive, so a recorded step costs 4 bytes (one float32 on the device).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from nectarloss.losses import LossEntry
from nectarloss.schedules import Schedule

__all__ = ["LMHistory", "LMLoss", "check_weight"]


def check_weight(owner: str, value: object, argument: str = "loss_weight") -> float:
    """Return ``value`` as a float, or raise if it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: `{argument}` expected a float, got {type(value).__name__}.")
    weight = float(value)
    if not (weight >= 0.0 and math.isfinite(weight)):
        raise ValueError(f"{owner}: `{argument}` expected a finite float >= 0, got {weight}.")
    return weight


class LMHistory:
    """Recent raw loss means of one loss, on its device, plus host-side weights and steps.

    Args:
        capacity: Number of values after which the manager flushes the buffer. The
            buffer is preallocated at this size on the first commit; if a flush fails,
            recording goes on and the buffer grows, so no value is ever dropped.
        device: Where the buffer lives. ``None`` allocates it lazily on the device of
            the first recorded value.
        weight_of_step: For a weight that is a pure function of the step (a
            ``unit="step"`` schedule): weights are then not stored but re-evaluated
            when read, so every step costs 4 bytes even though the weight changes at
            every step.

    Values are float32 on the device, or float64 once a float64 value is recorded (so
    a finite float64 loss beyond float32's range is kept). Weights are stored run-length
    encoded in two compact arrays: nothing when the weight is constant, 12 bytes per
    step when it changes at every call.

    Example:
        >>> h = LMHistory(capacity=4)
        >>> h.record(torch.tensor(0.5), weight=2.0, step=0)
        >>> h.record(torch.tensor(0.25), weight=2.0, step=1)
        >>> h.losses, h.weights, list(h.steps)
        ([0.5, 0.25], [2.0, 2.0], [0, 1])
    """

    __slots__ = (
        "capacity",
        "count",
        "first_step",
        "_flush_at",
        "_values",
        "_staged",
        "_num_committed",
        "_run_starts",
        "_run_weights",
        "_weight_of_step",
        "_device",
    )

    #: Values are staged in a short list of 0-d tensors and committed to the buffer
    #: with one ``torch.stack`` per this many steps (cheaper than a copy per step).
    STAGE_SIZE = 128
    #: Largest ``capacity`` accepted (step offsets within a buffer are 32-bit).
    MAX_CAPACITY = 2**31 - 1

    def __init__(
        self,
        capacity: int = 50_000,
        device: torch.device | str | None = None,
        weight_of_step: Callable[[int], float] | None = None,
    ) -> None:
        if (
            isinstance(capacity, bool)
            or not isinstance(capacity, int)
            or not 0 <= capacity <= self.MAX_CAPACITY
        ):
            raise ValueError(
                f"LMHistory: `capacity` expected an int in [0, {self.MAX_CAPACITY}], "
                f"got {capacity!r}."
            )
        self.capacity = capacity
        self.count = 0
        self.first_step = 0
        self._flush_at = capacity
        self._device = torch.device(device) if device is not None else None
        self._values: Tensor | None = None
        self._staged: list[Tensor] = []
        self._num_committed = 0
        self._run_starts = array("I")
        self._run_weights = array("d")
        self._weight_of_step = weight_of_step

    # -- writing (per step, never syncs) ------------------------------------------------
    def record(self, value: Tensor, weight: float, step: int) -> None:
        """Store a detached 0-d raw loss mean, the weight applied and its step number.

        The value stays on its own device; nothing is read back to the host. Values
        are committed to the preallocated buffer in batches (see :attr:`STAGE_SIZE`).
        If committing fails (out of memory), nothing is recorded and the error
        propagates.
        """
        count = self.count
        staged = self._staged
        staged.append(value)
        if len(staged) >= self.STAGE_SIZE:
            try:
                self._commit()
            except BaseException:
                staged.pop()
                raise
        if count == 0:
            self.first_step = step
        if self._weight_of_step is None:
            weights = self._run_weights
            if not weights or weights[-1] != weight:
                self._run_starts.append(count)
                weights.append(weight)
        self.count = count + 1

    @property
    def flush_due(self) -> bool:
        """Whether the buffer holds enough values for the manager to flush it."""
        return self.count >= self._flush_at

    def postpone_flush(self) -> None:
        """After a failed flush: keep recording, and try again ``capacity`` values later."""
        self._flush_at = self.count + max(self.capacity, 1)

    def _commit(self) -> None:
        """Move staged values into the device buffer (one stack and one copy)."""
        staged = self._staged
        if not staged:
            return
        device = staged[-1].device
        if any(t.device != device for t in staged):
            staged = [t.to(device) for t in staged]
        stacked = torch.stack(staged).reshape(-1)
        dtype = torch.float64 if stacked.dtype == torch.float64 else torch.float32
        start = self._num_committed
        end = start + stacked.numel()
        values = self._values
        if (
            values is None
            or values.device != device
            or values.numel() < end
            or (dtype == torch.float64 and values.dtype != dtype)
        ):
            values = self._allocate(device, dtype, end)
        values[start:end] = stacked
        self._num_committed = end
        self._staged = []

    def _allocate(self, device: torch.device, dtype: torch.dtype, needed: int) -> Tensor:
        """(Re)allocate the buffer with room for ``needed`` values, keeping committed ones."""
        old = self._values
        if old is not None and old.dtype == torch.float64:
            dtype = torch.float64
        size = max(self.capacity, needed)
        if old is not None and needed > old.numel():
            size = max(size, 2 * old.numel())  # grown past capacity: amortised doubling
        values = torch.empty(size, dtype=dtype, device=device)
        if old is not None and self._num_committed:
            values[: self._num_committed] = old[: self._num_committed].to(device)
        self._values = values
        self._device = device
        return values

    def clear(self) -> None:
        """Forget the recorded values (after a flush). The buffer stays allocated."""
        self.first_step += self.count
        self.count = 0
        self._flush_at = self.capacity
        self._num_committed = 0
        self._staged = []
        self._run_starts = array("I")
        self._run_weights = array("d")

    def to(self, device: torch.device | str) -> LMHistory:
        """Move the buffer (and any unflushed values) to ``device``. Returns ``self``."""
        target = torch.device(device)
        self._staged = [t.to(target) for t in self._staged]
        if self._values is not None:
            self._allocate(target, self._values.dtype, self._num_committed)
        self._device = target
        return self

    def state_dict(self) -> dict[str, Any]:
        """Unflushed values (a CPU tensor), their weights and first step. Syncs once."""
        return {
            "first_step": self.first_step,
            "values": self.values_tensor().detach().to("cpu", copy=True),
            "weight_runs": [
                [index, weight]
                for index, weight in zip(self._run_starts, self._run_weights, strict=True)
            ],
        }

    def check_state(self, state: Mapping[str, Any], owner: str = "LMHistory") -> None:
        """Raise ``ValueError`` unless ``state`` is a valid :meth:`state_dict`."""
        values = state.get("values")
        if not isinstance(values, Tensor) or values.dim() != 1 or not values.is_floating_point():
            raise ValueError(f"{owner}: history `values` expected a 1-D float tensor.")
        first_step = state.get("first_step")
        if isinstance(first_step, bool) or not isinstance(first_step, int) or first_step < 0:
            raise ValueError(
                f"{owner}: history `first_step` expected an int >= 0, got {first_step!r}."
            )
        runs = state.get("weight_runs")
        if not isinstance(runs, (list, tuple)):
            raise ValueError(f"{owner}: history `weight_runs` expected a list of [index, weight].")
        previous = -1
        for run in runs:
            ok = isinstance(run, (list, tuple)) and len(run) == 2
            index, weight = (run[0], run[1]) if ok else (None, None)
            if (
                not ok
                or isinstance(index, bool)
                or not isinstance(index, int)
                or not previous < index < max(values.numel(), 1)
                or (previous == -1 and index != 0)
            ):
                raise ValueError(
                    f"{owner}: history `weight_runs` expected increasing indices from 0 "
                    f"below the {values.numel()} values, got {run!r}."
                )
            check_weight(owner, weight, "history weight")
            previous = index
        if values.numel() and not runs and self._weight_of_step is None:
            raise ValueError(
                f"{owner}: history `weight_runs` expected a weight for its "
                f"{values.numel()} values, got none."
            )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (values go to the buffer's device).

        Raises:
            ValueError: The state is malformed; the history is then unchanged.
        """
        self.check_state(state)
        values: Tensor = state["values"]
        self.clear()
        self.first_step = int(state["first_step"])
        for index, weight in state["weight_runs"]:
            self._run_starts.append(int(index))
            self._run_weights.append(float(weight))
        self.count = values.numel()
        if self.count:
            dtype = torch.float64 if values.dtype == torch.float64 else torch.float32
            buffer = self._allocate(self._device or values.device, dtype, self.count)
            buffer[: self.count] = values.to(buffer.device)
            self._num_committed = self.count
        self._flush_at = max(self.capacity, self.count)

    # -- reading (may sync) ----------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        """Whether the buffer holds ``capacity`` values."""
        return self.count >= self.capacity

    @property
    def device(self) -> torch.device | None:
        """The buffer's device (``None`` until the first value if none was given)."""
        return self._device

    @property
    def steps(self) -> range:
        """Step numbers of the buffered values."""
        return range(self.first_step, self.first_step + self.count)

    def values_tensor(self) -> Tensor:
        """The buffered raw means as a 1-D view on the buffer's device (float32 or 64)."""
        self._commit()
        if self._values is None:
            return torch.empty(0, dtype=torch.float32, device=self._device)
        return self._values[: self.count]

    @property
    def weights(self) -> list[float]:
        """Weights applied at each buffered step (host values, no sync)."""
        if self._weight_of_step is not None:
            return [self._weight_of_step(step) for step in self.steps]
        out: list[float] = []
        starts, weights = self._run_starts, self._run_weights
        for i, (start, weight) in enumerate(zip(starts, weights, strict=True)):
            end = starts[i + 1] if i + 1 < len(starts) else self.count
            out.extend([weight] * (end - start))
        return out

    @property
    def losses(self) -> list[float]:
        """Buffered raw (unweighted, post-modifier) loss means. Reading syncs once."""
        values: list[float] = self.values_tensor().tolist()
        return values

    @property
    def weighted_losses(self) -> list[float]:
        """Buffered weighted loss means (raw times weight). Reading syncs once."""
        return [v * w for v, w in zip(self.losses, self.weights, strict=True)]

    @property
    def weight_nbytes(self) -> int:
        """Host bytes held by the stored weight runs (0 for a constant weight's one run)."""
        starts, weights = self._run_starts, self._run_weights
        return len(starts) * starts.itemsize + len(weights) * weights.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes held by the device buffer."""
        return 0 if self._values is None else self._values.numel() * self._values.element_size()

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"LMHistory(count={self.count}, capacity={self.capacity}, device={self._device})"


@dataclass(eq=False)
class LMLoss:
    """One registered loss: its module, weight, schedule, tags, modifiers and history.

    Args:
        name: Unique name within a manager (``"G_L1"``).
        function: The loss module or callable; it must return a Tensor.
        loss_weight: Constant weight, used when ``schedule`` is ``None``.
        schedule: Optional weight schedule; when given it defines the weight.
        tags: Lookup tags (``["G"]``).
        modifiers: Per-sample modifiers applied in order (see ``nectarloss.modifiers``).
        last_loss_map: Detached output of the latest call (set by the manager).
        history: The recent values (allocated by the manager at registration).
    """

    name: str
    function: Callable[..., Any]
    loss_weight: float = 1.0
    schedule: Schedule | None = None
    tags: list[str] = field(default_factory=list)
    modifiers: list[Any] = field(default_factory=list)
    last_loss_map: Tensor | None = None
    history: LMHistory = field(default_factory=lambda: LMHistory(capacity=0))
    #: Raw (unweighted, post-modifier) mean of the latest call, detached, on the device.
    last_value: Tensor | None = field(default=None, repr=False)
    #: Weight applied at the latest call.
    last_weight: float | None = field(default=None, repr=False)
    #: Number of calls so far (the step counter for ``unit="step"`` schedules).
    num_steps: int = field(default=0, repr=False)
    #: The catalog entry of ``function`` when it is a known loss (set at registration);
    #: used to check the number of inputs of each call.
    catalog_entry: LossEntry | None = field(default=None, repr=False)

    def weight_at(self, epoch: float, step: int) -> float:
        """The weight this loss gets at ``epoch`` / ``step`` (host math, no sync)."""
        schedule = self.schedule
        if schedule is None:
            return self.loss_weight
        t = epoch if schedule.unit == "epoch" else step
        try:
            value = schedule.value(t)
        except TypeError as exc:  # a custom curve returned a non-number
            raise TypeError(f"{self.name}: {exc}") from exc
        return check_weight(self.name, value, f"schedule value at {schedule.unit} {t}")

    @property
    def current_weight(self) -> float:
        """The weight applied at the latest call, or the one the next call would get."""
        if self.last_weight is not None:
            return self.last_weight
        if self.schedule is not None and self.schedule.current_value is not None:
            return self.schedule.current_value
        return self.loss_weight

    def state_dict(self) -> dict[str, Any]:
        """Counters, current weight, unflushed history and module/modifier state.

        Holds only tensors and plain values, so ``torch.load(..., weights_only=True)``
        reads it. ``last_loss_map`` is not saved.
        """
        function = self.function
        return {
            "num_steps": self.num_steps,
            "loss_weight": self.loss_weight,
            "last_weight": self.last_weight,
            "current_value": None if self.schedule is None else self.schedule.current_value,
            "last_value": None if self.last_value is None else self.last_value.detach().cpu(),
            "history": self.history.state_dict(),
            "function": function.state_dict() if isinstance(function, torch.nn.Module) else {},
            "modifiers": [m.state_dict() for m in self.modifiers],
        }

    #: Keys of :meth:`state_dict`.
    STATE_KEYS = frozenset(
        {
            "num_steps",
            "loss_weight",
            "last_weight",
            "current_value",
            "last_value",
            "history",
            "function",
            "modifiers",
        }
    )

    def check_state(self, state: object) -> None:
        """Raise ``ValueError`` unless ``state`` is a valid :meth:`state_dict` for this loss."""
        owner = self.name
        if not isinstance(state, Mapping):
            raise ValueError(f"{owner}: state expected a mapping, got {type(state).__name__}.")
        missing = sorted(self.STATE_KEYS - set(state))
        if missing:
            raise ValueError(f"{owner}: state is missing {missing}.")
        num_steps = state["num_steps"]
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
            raise ValueError(f"{owner}: state `num_steps` expected an int >= 0, got {num_steps!r}.")
        try:
            check_weight(owner, state["loss_weight"], "loss_weight")
            for key in ("last_weight", "current_value"):
                if state[key] is not None:
                    check_weight(owner, state[key], key)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        last = state["last_value"]
        if last is not None and not (isinstance(last, Tensor) and last.numel() == 1):
            raise ValueError(f"{owner}: state `last_value` expected None or a 1-element tensor.")
        history = state["history"]
        if not isinstance(history, Mapping):
            raise ValueError(f"{owner}: state `history` expected a mapping.")
        self.history.check_state(history, owner=owner)
        if history["values"].numel() and history["first_step"] + history[
            "values"
        ].numel() > num_steps:
            raise ValueError(
                f"{owner}: state history ends at step "
                f"{history['first_step'] + history['values'].numel() - 1}, past `num_steps` "
                f"{num_steps}."
            )
        modifiers = state["modifiers"]
        if not isinstance(modifiers, (list, tuple)) or len(modifiers) != len(self.modifiers):
            got = len(modifiers) if isinstance(modifiers, (list, tuple)) else modifiers
            raise ValueError(
                f"{owner}: state has {got} modifier state(s), the loss has {len(self.modifiers)}."
            )
        if not isinstance(state["function"], Mapping):
            raise ValueError(f"{owner}: state `function` expected a mapping.")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved.

        Raises:
            ValueError: The state is malformed (checked before anything changes).
        """
        self.check_state(state)
        if isinstance(self.function, torch.nn.Module) and state["function"]:
            self.function.load_state_dict(state["function"])
        for modifier, modifier_state in zip(self.modifiers, state["modifiers"], strict=True):
            modifier.load_state_dict(modifier_state)
        self.num_steps = int(state["num_steps"])
        self.loss_weight = float(state["loss_weight"])
        self.last_weight = state["last_weight"]
        if self.schedule is not None:
            self.schedule.current_value = state["current_value"]
        last = state["last_value"]
        device = self.history.device
        self.last_value = None if last is None else (last.to(device) if device else last)
        self.history.load_state_dict(state["history"])

    def stripped(self) -> LMLoss:
        """A shallow copy with an empty history (NectarGAN's ``strip=True``)."""
        copy = LMLoss(
            name=self.name,
            function=self.function,
            loss_weight=self.loss_weight,
            schedule=self.schedule,
            tags=list(self.tags),
            modifiers=list(self.modifiers),
            last_loss_map=self.last_loss_map,
            history=LMHistory(capacity=0),
        )
        copy.last_value, copy.last_weight, copy.num_steps = (
            self.last_value,
            self.last_weight,
            self.num_steps,
        )
        return copy

    def has_tag(self, tags: Sequence[str]) -> bool:
        """Whether any of ``tags`` is this loss's name or one of its tags."""
        return any(t == self.name or t in self.tags for t in tags)

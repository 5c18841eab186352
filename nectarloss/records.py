"""Per-loss records: :class:`LMLoss` (a registered loss) and :class:`LMHistory` (its buffer).

``LMHistory`` keeps the recent raw loss means in a preallocated tensor on the loss's
device. Writing a value is a device-side copy into the next slot, never a host sync.
Weights and step numbers are host numbers the manager already knows: weights are
stored run-length encoded (a new run only when the weight changes) and steps are
consecutive, so a recorded step costs 4 bytes (one float32 on the device).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
        capacity: Number of values the buffer holds before it must be flushed.
        device: Where the buffer lives. ``None`` allocates it lazily on the device of
            the first recorded value.
        weight_of_step: For a weight that is a pure function of the step (a
            ``unit="step"`` schedule): weights are then not stored but re-evaluated
            when read, so every step costs 4 bytes even though the weight changes at
            every step.

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
        "_values",
        "_staged",
        "_num_committed",
        "_weight_runs",
        "_weight_of_step",
        "_device",
    )

    #: Values are staged in a short list of 0-d tensors and committed to the buffer
    #: with one ``torch.stack`` per this many steps (cheaper than a copy per step).
    STAGE_SIZE = 128

    def __init__(
        self,
        capacity: int = 50_000,
        device: torch.device | str | None = None,
        weight_of_step: Callable[[int], float] | None = None,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"LMHistory: `capacity` expected an int >= 0, got {capacity!r}.")
        self.capacity = capacity
        self.count = 0
        self.first_step = 0
        self._device = torch.device(device) if device is not None else None
        self._values: Tensor | None = None
        self._staged: list[Tensor] = []
        self._num_committed = 0
        self._weight_runs: list[tuple[int, float]] = []
        self._weight_of_step = weight_of_step

    # -- writing (per step, never syncs) ------------------------------------------------
    def record(self, value: Tensor, weight: float, step: int) -> None:
        """Store a detached 0-d raw loss mean, the weight applied and its step number.

        The value stays on its own device; nothing is read back to the host. Values
        are committed to the preallocated buffer in batches (see :attr:`STAGE_SIZE`).

        Raises:
            RuntimeError: If the buffer is full (flush or :meth:`clear` it first).
        """
        count = self.count
        if count >= self.capacity:
            raise RuntimeError(
                f"LMHistory: buffer full ({self.capacity} values); flush it before recording."
            )
        if count == 0:
            self.first_step = step
        if self._weight_of_step is None:
            runs = self._weight_runs
            if not runs or runs[-1][1] != weight:
                runs.append((count, weight))
        staged = self._staged
        staged.append(value)
        self.count = count + 1
        if len(staged) >= self.STAGE_SIZE:
            self._commit()

    def _commit(self) -> None:
        """Move staged values into the device buffer (one stack and one copy)."""
        staged = self._staged
        if not staged:
            return
        device = staged[-1].device
        if self._values is None or self._values.device != device:
            self._allocate(device)
        if any(t.device != device for t in staged):
            staged = [t.to(device) for t in staged]
        start = self._num_committed
        values = self._values
        if values is None:  # pragma: no cover - _allocate always sets it
            raise RuntimeError("LMHistory: buffer allocation failed.")
        values[start : start + len(staged)] = torch.stack(staged).reshape(-1)
        self._num_committed = start + len(staged)
        self._staged = []

    def _allocate(self, device: torch.device) -> None:
        committed = self._values[: self._num_committed] if self._values is not None else None
        self._values = torch.empty(self.capacity, dtype=torch.float32, device=device)
        if committed is not None and committed.numel():
            self._values[: committed.numel()] = committed.to(device)
        self._device = device

    def clear(self) -> None:
        """Forget the recorded values (after a flush). The buffer stays allocated."""
        self.first_step += self.count
        self.count = 0
        self._num_committed = 0
        self._staged = []
        self._weight_runs = []

    def to(self, device: torch.device | str) -> LMHistory:
        """Move the buffer (and any unflushed values) to ``device``. Returns ``self``."""
        target = torch.device(device)
        self._staged = [t.to(target) for t in self._staged]
        if self._values is not None:
            self._allocate(target)
        self._device = target
        return self

    def state_dict(self) -> dict[str, Any]:
        """Unflushed values (a CPU tensor), their weights and first step. Syncs once."""
        return {
            "first_step": self.first_step,
            "values": self.values_tensor().detach().to("cpu", copy=True),
            "weight_runs": [[index, weight] for index, weight in self._weight_runs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (values go to the buffer's device)."""
        values = state["values"]
        if not isinstance(values, Tensor) or values.dim() != 1:
            raise ValueError("LMHistory: `values` expected a 1-D tensor in the state dict.")
        if values.numel() > self.capacity:
            raise ValueError(
                f"LMHistory: state holds {values.numel()} values, more than the capacity "
                f"{self.capacity}; flush before saving or raise history_buffer_size."
            )
        self.clear()
        self.first_step = int(state["first_step"])
        self._weight_runs = [(int(i), float(w)) for i, w in state["weight_runs"]]
        self.count = values.numel()
        if self.count:
            self._allocate(self._device or values.device)
            if self._values is not None:
                self._values[: self.count] = values.to(self._values.device)
            self._num_committed = self.count

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
        """The buffered raw means as a 1-D float32 view on the buffer's device."""
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
        runs = self._weight_runs
        for i, (start, weight) in enumerate(runs):
            end = runs[i + 1][0] if i + 1 < len(runs) else self.count
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

    def weight_at(self, epoch: int, step: int) -> float:
        """The weight this loss gets at ``epoch`` / ``step`` (host math, no sync)."""
        schedule = self.schedule
        if schedule is None:
            return self.loss_weight
        t = epoch if schedule.unit == "epoch" else step
        return check_weight(self.name, schedule.value(t), f"schedule value at {schedule.unit} {t}")

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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        if len(state["modifiers"]) != len(self.modifiers):
            raise ValueError(
                f"{self.name}: state has {len(state['modifiers'])} modifier(s), the loss has "
                f"{len(self.modifiers)}."
            )
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

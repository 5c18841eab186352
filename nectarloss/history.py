"""``LMHistory``: the recent raw values of one loss, on its device.

``LMHistory`` keeps the recent raw loss means in a preallocated tensor on the loss's
device. Writing a value is a device-side copy into the next slot, never a host sync.
Weights and step numbers are host numbers the manager already knows: weights are
stored run-length encoded (a new run only when the weight changes) and steps are
consecutive, so a recorded step costs 4 bytes (one float32 on the device).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from nectarloss.device_column import DeviceColumn
from nectarloss.segment import DeviceSegment, concrete_device
from nectarloss.validation import check_weight

__all__ = ["LMHistory"]


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
        "segment",
        "_weight_of_time",
        "first_step",
        "_flush_at",
        "_values",
        "_device_weights",
        "_run_starts",
        "_run_weights",
        "_weight_of_step",
    )

    #: Values are staged in a short list of 0-d tensors and committed to the buffer
    #: with one ``torch.stack`` per this many steps (cheaper than a copy per step).
    STAGE_SIZE = DeviceColumn.STAGE_SIZE
    #: Largest ``capacity`` accepted (step offsets within a buffer are 32-bit).
    MAX_CAPACITY = 2**31 - 1

    def __init__(
        self,
        capacity: int = 50_000,
        device: torch.device | str | None = None,
        weight_of_step: Callable[[int], float] | None = None,
        weight_of_time: Callable[[float], float] | None = None,
        device_weights: bool = False,
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
        where = concrete_device(device) if device is not None else None
        self._values = DeviceColumn(capacity, where)
        #: The weights applied, on the device, for a balanced loss (whose weight is a
        #: tensor); ``None`` keeps host weights in the two run arrays below.
        self._device_weights = DeviceColumn(capacity, where) if device_weights else None
        self._run_starts = array("I")
        self._run_weights = array("d")
        self._weight_of_step = weight_of_step
        self._weight_of_time = weight_of_time
        #: Values recorded by compiled or captured steps, until :meth:`settle`.
        self.segment: DeviceSegment | None = None

    # -- writing (per step, never syncs) ------------------------------------------------
    def record(self, value: Tensor, weight: float | Tensor, step: int) -> None:
        """Store a detached 0-d raw loss mean, the weight applied and its step number.

        The value stays on its own device; nothing is read back to the host. Values
        are committed to the preallocated buffer in batches (see :attr:`STAGE_SIZE`).
        ``weight`` is a host float, or, for a history made with ``device_weights``, a
        detached 0-d tensor on the value's device. If committing fails (out of memory),
        nothing is recorded and the error propagates.
        """
        count = self.count
        device_weights = self._device_weights
        if device_weights is not None:
            if not isinstance(weight, Tensor):
                weight = torch.tensor(float(weight), dtype=torch.float64, device=value.device)
            self._values.append(value)
            try:
                device_weights.append(weight)
            except BaseException:
                self._values.drop_last()
                raise
        else:
            if isinstance(weight, Tensor):
                raise TypeError("LMHistory: a tensor weight needs device_weights=True.")
            self._values.append(value)
        if count == 0:
            self.first_step = step
        if device_weights is None and self._weight_of_step is None:
            self._add_weight(count, weight)  # type: ignore[arg-type]
        self.count = count + 1

    def _add_weight(self, index: int, weight: float) -> None:
        weights = self._run_weights
        if not weights or weights[-1] != weight:
            self._run_starts.append(index)
            weights.append(weight)

    # -- compiled and captured steps ----------------------------------------------------------
    def ensure_segment(
        self, device: torch.device, dtype: torch.dtype = torch.float32, keep_latest: bool = False
    ) -> None:
        """Allocate the :class:`DeviceSegment` compiled steps record into.

        Again only when the device, the dtype (float64 losses keep float64) or
        ``keep_latest`` (a manager without a log) differ.
        """
        dtype = torch.float64 if dtype == torch.float64 else torch.float32
        device = concrete_device(device)
        segment = self.segment
        if (
            segment is not None
            and segment.device == device
            and segment.values.dtype == dtype
            and segment.keep_latest == keep_latest
        ):
            return
        self._replace_segment(device, dtype, keep_latest)

    def _replace_segment(self, device: torch.device, dtype: torch.dtype, keep_latest: bool) -> None:
        """Take in the current segment, then record into a new one sized ``capacity``."""
        self.settle()
        self.segment = DeviceSegment(self.capacity, device, dtype, keep_latest)
        self.segment.base_step.fill_(self.first_step + self.count)

    def settle(self, owner: str = "LMHistory") -> None:
        """Move what compiled or captured steps recorded into the history (syncs once).

        Their weights are re-evaluated on the host where the weight is a built-in curve
        of the epoch or step, so the log gets exactly what an eager run would.
        """
        segment = self.segment
        if segment is None or not (segment.used or segment.captured):
            return
        recorded, values, aux = segment.peek(owner)
        resolved: list[float] = []
        if self._weight_of_step is None:  # first, so a bad epoch changes nothing
            of_time = self._weight_of_time
            resolved = aux if of_time is None else [of_time(t) for t in aux]
        if segment.keep_latest and recorded:  # no log: the latest value alone
            next_step = self.first_step + self.count
            self.clear(settle=False)
            self.first_step = next_step + recorded - 1
        if values.numel():
            self._values.extend(values)
            for i, weight in enumerate(resolved):
                self._add_weight(self.count + i, weight)
            self.count += values.numel()
        segment.reset(self.first_step + self.count)

    @property
    def latest_weight(self) -> float | None:
        """The latest buffered value's weight; no sync.

        ``None`` when empty, or when the weights are device values (a balanced loss).
        """
        if not self.count or self._device_weights is not None:
            return None
        if self._weight_of_step is not None:
            return self._weight_of_step(self.first_step + self.count - 1)
        return self._run_weights[-1]

    @property
    def flush_due(self) -> bool:
        """Whether the buffer holds enough values for the manager to flush it."""
        return self.count >= self._flush_at

    def set_capacity(self, capacity: int) -> None:
        """Flush after ``capacity`` values from now on (the buffer grows when it must)."""
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"LMHistory: `capacity` expected an int >= 0, got {capacity!r}.")
        self.capacity = self._flush_at = min(capacity, self.MAX_CAPACITY)
        segment = self.segment
        if segment is not None and segment.capacity != self.capacity:
            self._replace_segment(segment.device, segment.values.dtype, segment.keep_latest)

    def postpone_flush(self) -> None:
        """After a failed flush: keep recording, and try again ``capacity`` values later."""
        self._flush_at = self.count + max(self.capacity, 1)

    def clear(self, settle: bool = True) -> None:
        """Forget the recorded values (after a flush). The buffer stays allocated."""
        if settle:
            self.settle()
        self.first_step += self.count
        self.count = 0
        self._flush_at = self.capacity
        self._values.clear()
        if self._device_weights is not None:
            self._device_weights.clear()
        self._run_starts = array("I")
        self._run_weights = array("d")

    def to(self, device: torch.device | str) -> LMHistory:
        """Move the buffer (and any unflushed values) to ``device``. Returns ``self``."""
        target = concrete_device(device)
        segment = self.segment
        if segment is not None:
            self._replace_segment(target, segment.values.dtype, segment.keep_latest)
        self._values.to(target)
        if self._device_weights is not None:
            self._device_weights.to(target)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Unflushed values (a CPU tensor), their weights and first step. Syncs once."""
        self.settle()
        state: dict[str, Any] = {
            "first_step": self.first_step,
            "values": self.values_tensor().detach().to("cpu", copy=True),
            "weight_runs": [
                [index, weight]
                for index, weight in zip(self._run_starts, self._run_weights, strict=True)
            ],
        }
        device_weights = self.weights_tensor()
        if device_weights is not None:
            state["weight_values"] = device_weights.detach().to("cpu", copy=True)
        return state

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
        if self._device_weights is not None:
            weight_values = state.get("weight_values")
            if (
                not isinstance(weight_values, Tensor)
                or weight_values.dim() != 1
                or not weight_values.is_floating_point()
                or weight_values.numel() != values.numel()
            ):
                raise ValueError(
                    f"{owner}: history `weight_values` expected a 1-D float tensor of "
                    f"{values.numel()} weights (a balanced loss's), got "
                    f"{type(weight_values).__name__}."
                )
            return
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
        self._values.load(values)
        if self._device_weights is not None:
            self._device_weights.load(state["weight_values"])
        self._flush_at = max(self.capacity, self.count)
        if self.segment is not None:
            self.segment.base_step.fill_(self.first_step + self.count)

    # -- reading (may sync) ----------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        """Whether the buffer holds ``capacity`` values."""
        return self.count >= self.capacity

    @property
    def device(self) -> torch.device | None:
        """The buffer's device (``None`` until the first value if none was given)."""
        return self._values.device

    @property
    def steps(self) -> range:
        """Step numbers of the buffered values."""
        return range(self.first_step, self.first_step + self.count)

    def values_tensor(self) -> Tensor:
        """The buffered raw means as a 1-D view on the buffer's device (float32 or 64)."""
        self.settle()
        return self._values.tensor(self.count)

    def weights_tensor(self) -> Tensor | None:
        """The buffered device weights as a 1-D view (``None`` for host weights)."""
        weights = self._device_weights
        return None if weights is None else weights.tensor(self.count)

    def pending_weights(self) -> list[float] | Tensor:
        """The buffered weights as a flush takes them.

        Device weights stay a tensor (copied with the values); host weights are a list.
        """
        device_weights = self.weights_tensor()
        return self.weights if device_weights is None else device_weights

    @property
    def weights(self) -> list[float]:
        """Weights applied at each buffered step, as host values.

        No sync once settled, except for device weights (copied to the host once).
        """
        self.settle()
        device_weights = self.weights_tensor()
        if device_weights is not None:
            return [float(w) for w in device_weights.tolist()]
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
        """Host bytes held by the stored weight runs: 12 per run (a constant weight: one)."""
        starts, weights = self._run_starts, self._run_weights
        return len(starts) * starts.itemsize + len(weights) * weights.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes held by the device buffer."""
        weights = self._device_weights
        return self._values.nbytes + (0 if weights is None else weights.nbytes)

    @property
    def num_staged(self) -> int:
        """Values recorded but not yet stacked into the device buffer (< :attr:`STAGE_SIZE`)."""
        return self._values.num_staged

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"LMHistory(count={self.count}, capacity={self.capacity}, device={self.device})"

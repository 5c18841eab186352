"""``DeviceSegment``: values recorded inside a compiled or CUDA-graph-captured step.

A compiled step cannot touch host state without recompiling (every changing Python
int is a guard) and a captured one cannot run Python at all on replay. So inside them
a loss records with device operations only: the value and one float64 of context (the
weight applied, or the epoch when the host can recompute the weight from it) go to the
next slot of preallocated device buffers (12 bytes a slot), at an index held in a
device counter. The host learns how many there are when the history is settled (at a
flush or a query: one small copy), and only then numbers them.
"""

from __future__ import annotations

import sys
import warnings

import torch
from torch import Tensor

__all__ = ["DeviceSegment", "concrete_device"]


def concrete_device(device: str | torch.device) -> torch.device:
    """``device`` as its tensors report it, the only form devices are compared in.

    ``cuda`` becomes ``cuda:0`` (the current device) and ``cpu:0`` becomes ``cpu``.

    Examples:
        >>> concrete_device("cpu:0")
        device(type='cpu')
    """
    device = torch.device(device)
    if device.type == "cpu":
        return torch.device("cpu")
    if device.index is None and device.type != "meta":
        return torch.empty(0, device=device).device  # the backend's current device
    return device


class DeviceSegment:
    """Device buffers for up to ``capacity`` values, written at a device-side index.

    Args:
        capacity: Values it holds; a further value overwrites a spare slot and is
            counted as lost (reported when settled).
        device: Where the buffers live (the loss's device).
        dtype: The values' dtype.

    Example:
        >>> seg = DeviceSegment(4, torch.device("cpu"))
        >>> seg.record(torch.tensor(0.5), 2.0)
        >>> seg.record(torch.tensor(0.25), torch.tensor(3.0, dtype=torch.float64))
        >>> recorded, values, aux = seg.peek()
        >>> recorded, values.tolist(), aux
        (2, [0.5, 0.25], [2.0, 3.0])
    """

    __slots__ = (
        "capacity",
        "device",
        "is_cuda",
        "keep_latest",
        "values",
        "aux",
        "count",
        "base_step",
        "last",
        "used",
        "captured",
    )

    def __init__(
        self,
        capacity: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        keep_latest: bool = False,
    ) -> None:
        self.capacity = capacity
        #: Keep only the latest value (a manager without a log): every value goes to slot 0.
        self.keep_latest = keep_latest
        #: Where the buffers live (kept as plain attributes: read at every eager call).
        self.device = concrete_device(device)
        self.is_cuda = self.device.type == "cuda"
        slots = capacity + 1  # the last slot takes values past capacity
        self.values = torch.zeros(slots, dtype=dtype, device=device)
        #: Per value, its weight or its epoch (whichever the history resolves weights from).
        self.aux = torch.zeros(slots, dtype=torch.float64, device=device)
        #: Values recorded since the last settle (may exceed ``capacity``: lost ones).
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        #: The step number of the first value (kept by the host for step schedules).
        self.base_step = torch.zeros((), dtype=torch.int64, device=device)
        #: The latest value, in a fixed place (a captured graph's outputs get reused).
        self.last = torch.zeros((), dtype=dtype, device=device)
        #: Set by :meth:`record` (on the host, after a compiled call): settle me.
        self.used = False
        #: A CUDA graph captured a record: its replays write without running Python,
        #: so every settle reads the counter from then on.
        self.captured = False
        if self.is_cuda:  # fixed addresses, so CUDA graphs may write them
            for t in (self.values, self.aux, self.count, self.base_step, self.last):
                torch._dynamo.mark_static_address(t)

    def record(self, value: Tensor, aux: Tensor | float) -> None:
        """Write one value and its weight or epoch at the device counter (no sync)."""
        bound = 0 if self.keep_latest else self.capacity
        index = self.count.clamp(max=bound).reshape(1)
        value = value.detach().reshape(1).to(self.values.dtype)
        self.values.index_put_((index,), value)
        self.aux.index_put_((index,), _as_tensor(aux, self.aux))
        self.last.copy_(value.reshape(()))
        self.count.add_(1)
        self.used = True

    def next_step(self) -> Tensor:
        """The step number the next value gets, as a device int64 (no sync)."""
        return self.base_step + self.count

    def peek(self, owner: str = "LMHistory") -> tuple[int, Tensor, list[float]]:
        """How many calls recorded, the values kept (on the device) and their aux.

        Reads the counter and the aux back (one host copy each). With ``keep_latest``
        only the latest value is kept; otherwise values past ``capacity`` were lost and
        a ``RuntimeWarning`` says how many. Call :meth:`reset` once they are taken in.
        """
        recorded = int(self.count)
        kept = min(recorded, 1 if self.keep_latest else self.capacity)
        if recorded > kept and not self.keep_latest:
            warnings.warn(
                f"{owner}: {recorded - kept} values recorded in compiled or captured steps "
                f"were lost: the buffer holds {self.capacity} between flushes. Call "
                "update_loss_log() more often or raise history_buffer_size.",
                RuntimeWarning,
                stacklevel=_user_stacklevel(),
            )
        aux: list[float] = self.aux[:kept].tolist()
        return recorded, self.values[:kept].clone(), aux

    def reset(self, base_step: int) -> None:
        """Empty it; the next value gets step ``base_step``."""
        self.count.zero_()
        self.base_step.fill_(base_step)
        self.used = False


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside nectarloss (for warnings)."""
    package = __file__.rsplit("/", 1)[0]
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(package):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    return level


def _as_tensor(value: Tensor | float, like: Tensor) -> Tensor:
    """``value`` as a 1-element tensor of ``like``'s dtype and device."""
    if isinstance(value, Tensor):
        return value.detach().reshape(1).to(like.device, like.dtype)
    return torch.full((1,), value, dtype=like.dtype, device=like.device)

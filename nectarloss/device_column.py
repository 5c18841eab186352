"""``DeviceColumn``: a growable 1-D buffer on a device, written one 0-d tensor at a time.

Appending never reads anything back to the host: values are staged in a short list of
0-d tensors and committed to a preallocated buffer with one ``torch.stack`` and one copy
per :attr:`DeviceColumn.STAGE_SIZE` values (cheaper than a copy per value). The buffer is
float32, or float64 once a float64 value arrives, so a finite float64 value beyond
float32's range is kept. :class:`~nectarloss.history.LMHistory` holds one for the raw
values and, for a balanced loss, one for the weights applied.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DeviceColumn"]


class DeviceColumn:
    """Values on a device: staged 0-d tensors, committed in batches to a preallocated buffer.

    Args:
        capacity: The size the buffer is first allocated at; it grows (doubling) when
            more values must be kept.
        device: Where the buffer lives. ``None`` follows the first committed value.

    Example:
        >>> column = DeviceColumn(capacity=4)
        >>> column.append(torch.tensor(0.5))
        >>> column.append(torch.tensor(0.25))
        >>> column.tensor(2).tolist()
        [0.5, 0.25]
    """

    __slots__ = ("capacity", "_buffer", "_staged", "_num_committed", "_device")

    #: Values staged before one ``torch.stack`` commits them.
    STAGE_SIZE = 128

    def __init__(self, capacity: int, device: torch.device | None = None) -> None:
        self.capacity = capacity
        self._device = device
        self._buffer: Tensor | None = None
        self._staged: list[Tensor] = []
        self._num_committed = 0

    @property
    def device(self) -> torch.device | None:
        """The buffer's device (``None`` until the first value if none was given)."""
        return self._device

    @property
    def dtype(self) -> torch.dtype | None:
        """The buffer's dtype (``None`` before the first commit)."""
        return None if self._buffer is None else self._buffer.dtype

    @property
    def nbytes(self) -> int:
        """Bytes held by the device buffer."""
        buffer = self._buffer
        return 0 if buffer is None else buffer.numel() * buffer.element_size()

    @property
    def num_staged(self) -> int:
        """Values appended but not yet committed to the buffer."""
        return len(self._staged)

    def append(self, value: Tensor) -> None:
        """Stage a 0-d tensor (no sync). Every :attr:`STAGE_SIZE` values are committed.

        If committing fails (out of memory), the value is not kept and the error
        propagates.
        """
        staged = self._staged
        staged.append(value)
        if len(staged) >= self.STAGE_SIZE:
            try:
                self.commit()
            except BaseException:
                staged.pop()
                raise

    def drop_last(self) -> None:
        """Forget the latest appended value (staged or committed)."""
        if self._staged:
            self._staged.pop()
        elif self._num_committed:
            self._num_committed -= 1

    def extend(self, values: Tensor) -> None:
        """Commit what is staged, then a 1-D tensor of values after it."""
        self.commit()
        self._commit_values([values])

    def commit(self) -> None:
        """Move staged values into the buffer (one stack and one copy).

        The staged list is taken in one step, so a value another thread stages
        meanwhile waits for the next commit instead of being dropped.
        """
        taken, self._staged = self._staged, []
        if not taken:
            return
        try:
            self._commit_values(taken)
        except BaseException:
            self._staged = taken + self._staged
            raise

    def _commit_values(self, staged: list[Tensor]) -> None:
        device = staged[-1].device
        if any(t.device != device for t in staged):
            staged = [t.to(device) for t in staged]
        stacked = torch.stack(staged).reshape(-1)
        dtype = torch.float64 if stacked.dtype == torch.float64 else torch.float32
        start = self._num_committed
        end = start + stacked.numel()
        buffer = self._buffer
        if (
            buffer is None
            or buffer.device != device
            or buffer.numel() < end
            or (dtype == torch.float64 and buffer.dtype != dtype)
        ):
            buffer = self._allocate(device, dtype, end)
        buffer[start:end] = stacked
        self._num_committed = end

    def _allocate(self, device: torch.device, dtype: torch.dtype, needed: int) -> Tensor:
        """(Re)allocate the buffer with room for ``needed`` values, keeping committed ones."""
        old = self._buffer
        if old is not None and old.dtype == torch.float64:
            dtype = torch.float64
        size = max(self.capacity, needed)
        if old is not None and needed > old.numel():
            size = max(size, 2 * old.numel())  # grown past capacity: amortised doubling
        buffer = torch.empty(size, dtype=dtype, device=device)
        if old is not None and self._num_committed:
            buffer[: self._num_committed] = old[: self._num_committed].to(device)
        self._buffer = buffer
        self._device = device
        return buffer

    def tensor(self, count: int) -> Tensor:
        """The first ``count`` values as a 1-D view on the buffer's device."""
        self.commit()
        if self._buffer is None:
            return torch.empty(0, dtype=torch.float32, device=self._device)
        return self._buffer[:count]

    def load(self, values: Tensor) -> None:
        """Replace the contents with ``values`` (1-D), on the buffer's device."""
        self.clear()
        if values.numel():
            dtype = torch.float64 if values.dtype == torch.float64 else torch.float32
            buffer = self._allocate(self._device or values.device, dtype, values.numel())
            buffer[: values.numel()] = values.to(buffer.device)
            self._num_committed = values.numel()

    def clear(self) -> None:
        """Forget the values. The buffer stays allocated."""
        self._num_committed = 0
        self._staged = []

    def to(self, device: torch.device) -> None:
        """Move the buffer and any staged values to ``device``."""
        self._staged = [t.to(device) for t in self._staged]
        if self._buffer is not None:
            self._allocate(device, self._buffer.dtype, self._num_committed)
        self._device = device

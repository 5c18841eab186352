"""Tools to check that a training loop does not synchronise with the device.

:class:`SyncCounter` counts, inside its ``with`` block:

* ``scalar_reads``: ``aten._local_scalar_dense`` calls (``.item()``, ``float(t)``,
  ``bool(t)``, ``if t > 0``), each a blocking read of one value;
* ``host_copies``: copies that land on the CPU: ``aten._to_copy`` / ``aten.copy_`` to a
  CPU tensor from another device, any explicit ``.to("cpu")``, and the Python-level
  ``Tensor.cpu()``, ``Tensor.tolist()`` and ``Tensor.numpy()`` (which do not reach the
  dispatcher on CPU tensors, so they are counted where they are called).

It works on CPU, so a CPU-only test suite can prove a loop is sync-free on CUDA.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["SyncCounter"]

_PY_HOST_METHODS = ("cpu", "tolist", "numpy")


def _is_cpu(device: object) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cpu"
    return isinstance(device, str) and device.split(":")[0] == "cpu"


class _DispatchCounter(TorchDispatchMode):  # type: ignore[no-untyped-call]
    def __init__(self, owner: SyncCounter) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.owner = owner

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name == "_local_scalar_dense":
            self.owner.scalar_reads += 1
        elif name == "_to_copy" and _is_cpu(kwargs.get("device")):
            self.owner.host_copies += 1
        elif name == "copy_" and len(args) >= 2:
            dst, src = args[0], args[1]
            if (
                isinstance(src, torch.Tensor)
                and dst.device.type == "cpu"
                and src.device.type != "cpu"
            ):
                self.owner.host_copies += 1
        return func(*args, **kwargs)


class SyncCounter:
    """Count host syncs and device-to-host copies in a block.

    Example:
        >>> x = torch.ones(3)
        >>> with SyncCounter() as counter:
        ...     y = x * 2
        ...     _ = y.sum().item()
        >>> counter.scalar_reads, counter.host_copies
        (1, 0)
    """

    def __init__(self) -> None:
        self.scalar_reads = 0
        self.host_copies = 0
        self._mode = _DispatchCounter(self)
        self._originals: dict[str, Callable[..., Any]] = {}

    @property
    def total(self) -> int:
        """Scalar reads plus host copies."""
        return self.scalar_reads + self.host_copies

    def reset(self) -> None:
        """Set both counts back to zero."""
        self.scalar_reads = 0
        self.host_copies = 0

    def _wrap(self, method: str) -> Callable[..., Any]:
        original = self._originals[method]

        def counted(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if tensor.device.type == "cpu":  # elsewhere the dispatcher sees the copy
                self.host_copies += 1
            return original(tensor, *args, **kwargs)

        return counted

    def __enter__(self) -> SyncCounter:
        for method in _PY_HOST_METHODS:
            self._originals[method] = getattr(torch.Tensor, method)
            setattr(torch.Tensor, method, self._wrap(method))
        self._mode.__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._mode.__exit__(exc_type, exc, tb)  # type: ignore[no-untyped-call]
        for method, original in self._originals.items():
            setattr(torch.Tensor, method, original)
        self._originals.clear()

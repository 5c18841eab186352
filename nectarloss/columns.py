"""Compact read-only columns of logged numbers, as :func:`nectarloss.log.read_log` returns.

A long run logs millions of values. As Python lists they cost 32 bytes each (a list
slot and a float object); a :class:`LogColumn` keeps them in a stdlib
:class:`array.array` (8 bytes each) and reads like a list: ``len``, indexing,
slicing, iteration, ``in`` and ``==`` against a list. The arithmetic the reader needs
(weighted values, statistics that skip NaN/Inf) runs on a zero-copy torch view of the
array, not element by element in Python.

Storage is the stdlib array rather than NumPy, which is not a dependency of nectarloss
(torch's wheel does not require it), or torch tensors, whose indexing returns 0-d
tensors instead of numbers. NumPy users get a zero-copy read-only view with
``numpy.asarray(column)``.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, SupportsIndex, TypeVar, overload

import torch

__all__ = ["ColumnStats", "LogColumn", "column_stats", "multiply"]

_T = TypeVar("_T", int, float)

_REPR_ITEMS = 6  # a longer column's repr shows its first and last 3 items
_TORCH_DTYPES = {"d": torch.float64, "q": torch.int64}


class LogColumn(Sequence[_T]):
    """A read-only sequence of numbers backed by an :class:`array.array`.

    It reads like a list: ``len``, indexing, slicing (which returns a
    :class:`LogColumn`), iteration, ``in``; it equals a list, tuple, array or column
    holding the same numbers, with NaN equal to NaN (two reads of one log compare
    equal). It is not hashable.

    Args:
        data: The numbers (``array("d", ...)`` for floats, ``array("q", ...)`` for
            ints). The column takes it over without copying: do not change it after.

    Example:
        >>> from array import array
        >>> column = LogColumn(array("d", [0.5, 0.25, 0.125]))
        >>> column[0], len(column), column[1:] == [0.25, 0.125]
        (0.5, 3, True)
    """

    __slots__ = ("_data",)

    def __init__(self, data: array[_T]) -> None:
        if not isinstance(data, array):
            raise TypeError(
                f"LogColumn: `data` expected an array.array, got {type(data).__name__}."
            )
        self._data: array[_T] = data

    @property
    def typecode(self) -> str:
        """The array typecode: ``"d"`` (float64) or ``"q"`` (int64)."""
        return self._data.typecode

    def __len__(self) -> int:
        return len(self._data)

    @overload
    def __getitem__(self, index: SupportsIndex) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> LogColumn[_T]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> _T | LogColumn[_T]:
        if isinstance(index, slice):
            return LogColumn(self._data[index])
        return self._data[index]

    def __iter__(self) -> Iterator[_T]:
        return iter(self._data)

    def __reversed__(self) -> Iterator[_T]:
        return reversed(self._data)

    def __contains__(self, value: object) -> bool:
        return value in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LogColumn):
            other = other._data
        if not isinstance(other, (array, list, tuple)):
            return NotImplemented
        data = self._data
        if len(other) != len(data):
            return False
        if isinstance(other, array) and other.typecode == data.typecode:
            if other.tobytes() == data.tobytes():  # equal bits: equal, NaN included
                return True
        return all(a == b or (a != a and b != b) for a, b in zip(data, other, strict=True))

    def __repr__(self) -> str:
        data = self._data
        if len(data) <= _REPR_ITEMS:
            return f"LogColumn({data.typecode!r}, {data.tolist()!r})"
        half = _REPR_ITEMS // 2
        head = ", ".join(map(repr, data[:half]))
        tail = ", ".join(map(repr, data[-half:]))
        return f"LogColumn({data.typecode!r}, [{head}, ..., {tail}], len={len(data)})"

    def tolist(self) -> list[_T]:
        """The numbers as a list."""
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """A read-only NumPy view (no copy unless ``dtype`` or ``copy`` asks for one)."""
        import numpy as np

        view = np.frombuffer(self._data, dtype=np.dtype(self._data.typecode))
        view.flags.writeable = False
        if dtype is not None and np.dtype(dtype) != view.dtype:
            return view.astype(dtype)
        return view.copy() if copy else view


def _tensor(column: LogColumn[Any]) -> torch.Tensor:
    """A zero-copy CPU tensor over the column's array (do not write to it)."""
    data = column._data
    dtype = _TORCH_DTYPES[data.typecode]
    if not data:  # torch.frombuffer refuses an empty buffer
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(data, dtype=dtype)


def all_float32(column: LogColumn[float]) -> bool:
    """Whether every value is a float32 value (or not finite): a float32 loss's log."""
    t = _tensor(column).to(torch.float64)
    return bool(((t.to(torch.float32).to(torch.float64) == t) | ~t.isfinite()).all())


def multiply(
    values: LogColumn[float], weights: LogColumn[float], dtype: torch.dtype = torch.float64
) -> LogColumn[float]:
    """Element-wise ``values * weights``; ``values`` itself when every weight is 1.

    With a ``dtype`` other than float64 the product is rounded as torch computes a loss
    of that dtype times a Python float (in float32, then rounded to ``dtype``), which is
    what NectarGAN records.

    Raises:
        ValueError: The columns differ in length.
    """
    if len(values) != len(weights):
        raise ValueError(
            f"multiply: `weights` expected {len(values)} items (as many as `values`), "
            f"got {len(weights)}."
        )
    w = _tensor(weights).to(torch.float64)
    if bool((w == 1.0).all()):
        return values
    out: array[float] = array("d", [0.0]) * len(values)
    _tensor(LogColumn(out)).copy_(product_as(_tensor(values), w, dtype))
    return LogColumn(out)


def product_as(values: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``values * weights`` rounded as torch multiplies a ``dtype`` loss by a Python float.

    That is in float64 for float64, else in float32, rounded to ``dtype``: what
    ``(loss * weight).item()`` gives for a loss whose mean is ``values``.

    Example:
        >>> product_as(torch.tensor([0.1]), torch.tensor([3.0]), torch.float32).item() == (
        ...     torch.tensor(0.1) * 3.0).item()
        True
    """
    if dtype == torch.float64:
        return values.to(torch.float64) * weights.to(torch.float64)
    return (values.to(torch.float32) * weights.to(torch.float32)).to(dtype)


@dataclass(frozen=True)
class ColumnStats:
    """Statistics of a column's finite values (NaN where there is none)."""

    count: int
    num_finite: int
    mean: float
    min: float
    max: float


def column_stats(column: LogColumn[float]) -> ColumnStats:
    """Mean, min and max of the finite values of ``column`` (NaN and Inf skipped)."""
    t = _tensor(column).to(torch.float64)
    finite_mask = torch.isfinite(t)
    num_finite = int(finite_mask.sum())
    if num_finite == 0:
        return ColumnStats(len(column), 0, math.nan, math.nan, math.nan)
    finite = t if num_finite == len(column) else t[finite_mask]
    return ColumnStats(
        count=len(column),
        num_finite=num_finite,
        mean=float(finite.sum()) / num_finite,
        min=float(finite.min()),
        max=float(finite.max()),
    )

"""Checks of user input shared by the manager: loss names, tags and loss inputs."""

from __future__ import annotations

import math
import numbers
import unicodedata
from collections.abc import Iterable
from typing import Any, TypeVar

from torch import Tensor

from nectarloss.losses import LossEntry

T = TypeVar("T")

__all__ = [
    "add_note",
    "check_choice",
    "check_count",
    "check_epoch",
    "check_inputs",
    "check_name",
    "check_tags",
    "check_weight",
    "shape_of",
]


def shape_of(x: Any) -> Any:
    """The shape of a Tensor, ``None`` for anything else."""
    return x.shape if isinstance(x, Tensor) else None


def check_inputs(owner: str, catalog: LossEntry, inputs: tuple[Any, ...]) -> None:
    """Check a catalog loss's inputs: Tensors, one device, equal shapes where element-wise.

    Raises:
        TypeError: An input is not a Tensor.
        ValueError: Devices differ, or an element-wise loss got shapes that differ.
    """
    first = inputs[0]
    names = catalog.inputs
    for name, x in zip(names, inputs, strict=True):
        if not isinstance(x, Tensor):
            raise TypeError(f"{owner}: `{name}` expected a Tensor, got {type(x).__name__}.")
        if x.device != first.device:
            raise ValueError(
                f"{owner}: `{name}` expected a tensor on {first.device} like `{names[0]}`, "
                f"got {x.device}."
            )
    if catalog.same_shape and inputs[1].shape != first.shape:
        raise ValueError(
            f"{owner}: `{names[1]}` expected shape {tuple(first.shape)} like `{names[0]}`, "
            f"got {tuple(inputs[1].shape)}."
        )


def check_weight(owner: str, value: object, argument: str = "loss_weight") -> float:
    """Return ``value`` as a float, or raise if it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: `{argument}` expected a float, got {type(value).__name__}.")
    weight = float(value)
    if not (weight >= 0.0 and math.isfinite(weight)):
        raise ValueError(f"{owner}: `{argument}` expected a finite float >= 0, got {weight}.")
    return weight


def check_choice(argument: str, value: T, choices: tuple[T, ...], owner: str = "LossManager") -> T:
    """Return ``value`` if it is one of ``choices``; else a ``ValueError`` listing them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{owner}: `{argument}` expected {listed}, got {value!r}.")
    return value


def check_count(owner: str, argument: str, value: object, maximum: int) -> int:
    """Return ``value`` if it is an int in ``[1, maximum]``; else a clear error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: `{argument}` expected an int, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{owner}: `{argument}` expected an int >= 1, got {value}.")
    if value > maximum:
        raise ValueError(
            f"{owner}: `{argument}` expected at most {maximum} values per loss, got {value}; "
            "flush more often instead."
        )
    return value


def check_epoch(owner: str, epoch: object) -> int | float:
    """Return ``epoch`` if it is a finite number >= 0 (an int, or a float for fractions)."""
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real):
        raise TypeError(f"{owner}: `epoch` expected an int, got {type(epoch).__name__}.")
    try:
        ok = math.isfinite(epoch) and float(epoch) >= 0
    except OverflowError:  # an int beyond float's range
        ok = False
    if not ok:
        raise ValueError(f"{owner}: `epoch` expected a finite number >= 0, got {epoch!r:.40}.")
    return epoch if isinstance(epoch, (int, float)) else float(epoch)


def add_note(exc: BaseException, note: str) -> None:
    """Attach ``note`` to ``exc`` (shown under its traceback) where Python supports it."""
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(note)


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid loss name (no path separators or control chars)."""
    if not isinstance(name, str):
        raise TypeError(f"LossManager: `loss_name` expected a str, got {type(name).__name__}.")
    if not name or name.strip() != name:
        raise ValueError(
            f"LossManager: `loss_name` expected a non-empty name without surrounding spaces, "
            f"got {name!r}."
        )
    bad = [c for c in name if c in "/\\" or unicodedata.category(c).startswith("C")]
    if bad:
        raise ValueError(
            f"LossManager: `loss_name` expected no path separators or control characters, "
            f"got {name!r}."
        )
    return name


def check_tags(owner: str, tags: object) -> list[str]:
    """Return ``tags`` as a list of str (a single str becomes a one-item list)."""
    if tags is None:
        return []
    if isinstance(tags, str):
        return [tags]
    if not isinstance(tags, Iterable):
        raise TypeError(f"{owner}: `tags` expected a list of str, got {type(tags).__name__}.")
    out = list(tags)
    for tag in out:
        if not isinstance(tag, str):
            raise TypeError(f"{owner}: `tags` expected a list of str, got item {tag!r}.")
    return out

"""Checks of user input, shared by every module: names, numbers, tensors, tags.

One rule each: a loss name (:func:`check_name`, :func:`loss_name_problem`), a float in a
range (:func:`check_float` and its short forms :func:`check_positive` and
:func:`check_weight`), a bool, a Tensor, and the "did you mean" suggestions for an
unknown name (:func:`closest`). Messages read ``"<owner>: `<argument>` expected <what>,
got <value>."``.

This module imports only the standard library and ``torch.Tensor``, so that every other
module (``functional/`` included) may use it.

Example:
    >>> check_positive("P2", "k", 0.5)
    0.5
    >>> check_positive("P2", "k", 0)
    Traceback (most recent call last):
        ...
    ValueError: P2: `k` expected a finite float > 0, got 0.0.
    >>> closest("L1Los", ["L1Loss", "MSELoss"])
    ['L1Loss']
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from torch import Tensor

T = TypeVar("T")

__all__ = [
    "add_note",
    "check_bool",
    "check_choice",
    "check_count",
    "check_epoch",
    "check_float",
    "check_inputs",
    "check_name",
    "check_positive",
    "check_tags",
    "check_tensor",
    "check_weight",
    "closest",
    "did_you_mean",
    "loss_name_problem",
    "shape_of",
    "weight_and_schedule_problem",
]

_MAX_SUGGESTIONS = 3
_PATH_SEPARATORS = "/\\"


class InputSignature(Protocol):
    """What :func:`check_inputs` needs of a catalog entry (a ``LossEntry``)."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the positional inputs, in order."""

    @property
    def same_shape(self) -> bool:
        """Whether the first two inputs must have the same shape."""


def shape_of(x: Any) -> Any:
    """The shape of a Tensor, ``None`` for anything else."""
    return x.shape if isinstance(x, Tensor) else None


def check_inputs(owner: str, catalog: InputSignature, inputs: tuple[Any, ...]) -> None:
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


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_float(
    owner: str,
    argument: str,
    value: object,
    what: str,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
    finite: bool = True,
    type_what: str | None = None,
) -> float:
    """Return ``value`` as a float if it is a real number within the bounds, else raise.

    Args:
        owner: The class, function or loss name the message starts with.
        argument: The argument's name.
        value: What the caller passed.
        what: The expectation, as the message says it (``"a finite float > 0"``).
        low: The lowest accepted value, if any (excluded with ``open_low``).
        high: The highest accepted value, if any (excluded with ``open_high``).
        open_low: Exclude ``low`` itself.
        open_high: Exclude ``high`` itself.
        finite: Reject infinities (NaN is always rejected where a bound is given).
        type_what: The expectation in the ``TypeError`` message, if not ``what``.

    Returns:
        ``value`` as a float.

    Raises:
        TypeError: ``value`` is not a real number (a bool is not one here).
        ValueError: ``value`` is outside the bounds, or not finite with ``finite``.

    Example:
        >>> check_float("SuperLoss", "momentum", 1, "a float in (0, 1]", low=0.0, high=1.0,
        ...             open_low=True)
        1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner}: `{argument}` expected {type_what or what}, "
            f"got {type(value).__name__} {_short_repr(value)}."
        )
    try:
        result = float(value)
    except OverflowError:  # an int beyond float's range
        result = -math.inf if value < 0 else math.inf
    ok = (not finite or math.isfinite(result)) and not math.isnan(result)
    if low is not None:
        ok = ok and (result > low if open_low else result >= low)
    if high is not None:
        ok = ok and (result < high if open_high else result <= high)
    if not ok:
        raise ValueError(f"{owner}: `{argument}` expected {what}, got {result!r}.")
    return result


def check_positive(owner: str, argument: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise."""
    return check_float(owner, argument, value, "a finite float > 0", low=0.0, open_low=True)


def check_weight(owner: str, value: object, argument: str = "loss_weight") -> float:
    """Return ``value`` as a float if it is a finite number >= 0, else raise."""
    return check_float(owner, argument, value, "a finite float >= 0", low=0.0, type_what="a float")


def weight_and_schedule_problem(loss_weight: float, has_schedule: bool) -> str | None:
    """Why ``loss_weight`` cannot go with a schedule, or ``None`` when it can.

    A schedule's ``initial_value`` and ``target_value`` are the weights, so a loss with a
    schedule keeps the default ``loss_weight`` of 1.0 rather than silently losing it.

    Example:
        >>> weight_and_schedule_problem(100.0, has_schedule=True).split(";")[0]
        'loss_weight=100.0 and a schedule both give the weight'
        >>> weight_and_schedule_problem(1.0, has_schedule=True) is None
        True
    """
    if not has_schedule or loss_weight == 1.0:
        return None
    return (
        f"loss_weight={loss_weight} and a schedule both give the weight; the schedule's "
        "initial_value and target_value are the weights, so leave loss_weight at 1.0 or "
        "drop the schedule"
    )


def check_bool(owner: str, argument: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{owner}: `{argument}` expected a bool, got {type(value).__name__} "
            f"{_short_repr(value)}."
        )
    return value


def check_tensor(owner: str, argument: str, value: object) -> Tensor:
    """Return ``value`` if it is a Tensor, else raise ``TypeError``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{owner}: `{argument}` expected a Tensor, got {type(value).__name__}.")
    return value


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
    if type(epoch) is int and 0 <= epoch <= 2**53:  # the common case, checked first
        return epoch
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


def loss_name_problem(name: str) -> str | None:
    r"""Why ``name`` cannot name a loss, or ``None`` if it can.

    A loss name is the user's string (``G_GAN``, ``D real``): non-empty, without
    surrounding whitespace, path separators (``/`` and backslash) or characters that do not
    print (control and format characters, and every separator but the plain space:
    U+00A0, U+2028, ...). The manager, the loss catalog and the spec models all ask here.

    Example:
        >>> loss_name_problem("G L1") is None, loss_name_problem("G\u00a0L1")
        (True, 'free of path separators and control characters')
    """
    if not name or name.strip() != name:
        return "non-empty, without surrounding spaces"
    if any(c in _PATH_SEPARATORS or not c.isprintable() for c in name):
        return "free of path separators and control characters"
    return None


def check_name(name: object, owner: str = "LossManager", argument: str = "loss_name") -> str:
    """Return ``name`` if it is a valid loss name (see :func:`loss_name_problem`), else raise.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is not a valid loss name.
    """
    if not isinstance(name, str):
        raise TypeError(f"{owner}: `{argument}` expected a str, got {type(name).__name__}.")
    if loss_name_problem(name) is not None:
        raise ValueError(
            f"{owner}: `{argument}` expected a non-empty name without surrounding "
            f"whitespace, path separators or control characters, got {name!r}."
        )
    return name


def closest(name: str, candidates: list[str]) -> list[str]:
    """Return up to three of ``candidates`` closest to ``name`` (case slips included).

    Example:
        >>> closest("superloss", ["SuperLoss", "MinSNR"])
        ['SuperLoss']
    """
    close = difflib.get_close_matches(name, candidates, n=_MAX_SUGGESTIONS)
    if close:
        return close
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=_MAX_SUGGESTIONS)
    return [lowered[m] for m in matches]


def did_you_mean(name: str, candidates: list[str]) -> str:
    """Return ``" (did you mean 'x' or 'y'?)"`` for the closest candidates, or ``""``."""
    close = closest(name, candidates)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def check_tags(owner: str, tags: object) -> list[str]:
    """Return ``tags`` as a list of non-empty str (a single str becomes a one-item list).

    The one tag rule: the manager and the spec models both call it.
    """
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, Iterable):
        raise TypeError(f"{owner}: `tags` expected a list of str, got {type(tags).__name__}.")
    out = list(tags)
    for tag in out:
        if not isinstance(tag, str):
            raise TypeError(f"{owner}: `tags` expected a list of str, got item {tag!r}.")
        if not tag:
            raise ValueError(f'{owner}: `tags` expected non-empty tag strings, got "".')
    return out


def check_path(owner: str, argument: str, value: object) -> Path:
    """Return ``value`` (a ``str`` or ``os.PathLike``) as a non-empty :class:`Path`, else raise.

    Raises:
        TypeError: ``value`` is neither a str nor a path.
        ValueError: ``value`` is the empty string.
    """
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"{owner}: `{argument}` expected a path (str or os.PathLike), "
            f"got {type(value).__name__} {_short_repr(value)}."
        )
    if isinstance(value, str) and not value:
        raise ValueError(f'{owner}: `{argument}` expected a non-empty path, got "".')
    return Path(value)

"""Spec errors (the classes live in :mod:`nectarloss.errors`) and their messages' pieces.

Every mistake in a spec raises one :class:`SpecError` naming the file, the JSON path
(:func:`json_path`) and what was expected; an unknown name comes with the closest valid
ones (:func:`did_you_mean`). The other spec modules raise :class:`Problem` at a location
inside one entry and turn it into a :class:`SpecError` for the whole document.

Example:
    >>> str(SpecError("a.json", [(json_path(("losses", "G L1", "weight")), "expected a number")]))
    'a.json: losses["G L1"].weight expected a number.'
    >>> did_you_mean("L1Los", ["L1Loss", "MSELoss"])
    " (did you mean 'L1Loss'?)"
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

from nectarloss.errors import Problem, SpecError
from nectarloss.validation import closest, did_you_mean

__all__ = ["Loc", "Problem", "SpecError", "closest", "did_you_mean", "json_path", "show"]

#: A location inside a spec document: keys and list indices from the root.
Loc = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][\w$-]*$")


def json_path(loc: Sequence[str | int]) -> str:
    """Render a location as a JSON path: ``losses.G_L1.modifiers[0].threshold``.

    Example:
        >>> json_path(("losses", "G L1", "modifiers", 0, "threshold"))
        'losses["G L1"].modifiers[0].threshold'
    """
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif _PLAIN_KEY.match(item):
            out += f".{item}" if out else item
        else:
            out += "[" + orjson.dumps(item).decode() + "]"
    return out


def show(value: object, limit: int = 60) -> str:
    """A short JSON-like rendering of ``value`` for messages."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.replace('"', '\\"') + '"'
    elif isinstance(value, dict):
        text = "an object"
    elif isinstance(value, list):
        text = f"a list of {len(value)}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

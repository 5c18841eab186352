"""Spec errors and the pieces of their messages.

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

import difflib
import re
from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["Loc", "Problem", "SpecError", "closest", "did_you_mean", "json_path", "show"]

#: A location inside a spec document: keys and list indices from the root.
Loc = tuple[str | int, ...]

_MAX_PROBLEMS = 20
_MAX_SUGGESTIONS = 3
_PLAIN_KEY = re.compile(r"^[A-Za-z_$][\w$-]*$")


class SpecError(ValueError):
    r"""A spec file (or dict) is malformed; the message says where and what was expected.

    The message reads ``"<file>: <json path> expected <what>, got <value>."``, or lists
    each problem on its own line when there are several.

    Args:
        source: The file (or ``"<dict>"``, ``"<string>"``, ``"dump_spec"``).
        problems: ``(json_path, detail)`` pairs; ``json_path`` may be ``""`` for the
            whole document.

    Attributes:
        source: As given.
        problems: As given, a list.
        path: The JSON path of the first problem.

    Example:
        >>> str(SpecError("a.json", [("losses.G_L1.weight", "expected a number, got \"x\"")]))
        'a.json: losses.G_L1.weight expected a number, got "x".'
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = [(str(p), str(d)) for p, d in problems]
        super().__init__(_render(source, self.problems))

    @property
    def path(self) -> str:
        """The JSON path of the first problem (``""`` for the whole document)."""
        return self.problems[0][0] if self.problems else ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.problems))


def _render(source: str, problems: list[tuple[str, str]]) -> str:
    lines = []
    for path, detail in problems[:_MAX_PROBLEMS]:
        text = f"{path} {detail}" if path else detail
        lines.append(text if text.endswith((".", "?", "!")) else text + ".")
    if not lines:
        return f"{source}: invalid spec."
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    more = len(problems) - len(lines)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    body = "\n".join(f"  - {line}" for line in lines)
    return f"{source}: {len(problems)} problems:\n{body}{tail}"


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


class Problem(Exception):
    """One problem at a location inside a document; the caller turns it into a SpecError."""

    def __init__(self, loc: Loc, detail: str) -> None:
        super().__init__(detail)
        self.loc = loc
        self.detail = detail


# ----------------------------------------------------------------------------- suggestions
def closest(name: str, candidates: list[str]) -> list[str]:
    """Return up to three of ``candidates`` closest to ``name`` (case slips included).

    Example:
        >>> closest("L1Los", ["L1Loss", "MSELoss"])
        ['L1Loss']
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

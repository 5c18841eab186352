"""Exceptions and warnings raised by nectarloss: every class, in one place.

The modules that raise them re-export them where users imported them first
(``nectarloss.log.LogFormatError``, ``nectarloss.specs.SpecError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "CliError",
    "ExistingLogError",
    "LogFormatError",
    "LogInUseError",
    "LogWriteError",
    "MissingDependencyError",
    "NonFiniteLossError",
    "NonFiniteLossWarning",
    "Problem",
    "RankMismatchError",
    "SinkWarning",
    "SpecError",
    "UnknownLossError",
]

_MAX_PROBLEMS = 20


class LogWriteError(OSError):
    """A flush could not write the log. The buffered values are kept for the next flush."""


class LogFormatError(ValueError):
    """A loss log that cannot be read: not ours, or corrupt before its last line."""


class LogInUseError(RuntimeError):
    """Another manager (in this process or another) is writing the same log."""


class ExistingLogError(FileExistsError):
    """The log already holds a run; pass ``resume=True`` or ``overwrite=True``."""


class NonFiniteLossError(ValueError):
    """A loss produced NaN or Inf (``nonfinite="raise"`` or ``nonfinite_check="step"``)."""


class NonFiniteLossWarning(UserWarning):
    """A loss produced NaN or Inf (``nonfinite="warn"``, reported at flush time)."""


class SinkWarning(UserWarning):
    """A sink raised while taking a flush's values; it is disabled (the log has them).

    Attributes:
        sink: The sink's name.
    """

    def __init__(self, message: str, sink: str = "") -> None:
        super().__init__(message)
        self.sink = sink


class MissingDependencyError(ImportError):
    """An optional package (a sink's, an integration's) is missing.

    The message is the one-line install hint (``pip install 'nectarloss[tensorboard]'``).
    """


class UnknownLossError(KeyError, ValueError):
    """No loss under the requested name, in a manager or in the loss catalog.

    A ``KeyError`` (a lookup by name that failed) with a readable message, and a
    ``ValueError`` (what the catalog raised for an unknown name before).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RankMismatchError(RuntimeError):
    """Ranks disagree about what a collective flush or query would merge.

    Raised on every rank alike (each decides from the same gathered metadata), so no
    rank is left waiting in a collective. Nothing buffered is cleared.
    """


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


class Problem(Exception):
    """One problem at a location inside a spec; the caller turns it into a SpecError.

    Args:
        loc: Keys and list indices from the document's root.
        detail: What was expected there, e.g. ``'expected a number, got "x"'``.
    """

    def __init__(self, loc: tuple[str | int, ...], detail: str) -> None:
        super().__init__(detail)
        self.loc = loc
        self.detail = detail


class CliError(Exception):
    """A user-facing error of the command line: printed on one line, exit code 2."""

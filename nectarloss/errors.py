"""Exceptions and warnings raised by nectarloss."""

from __future__ import annotations

__all__ = [
    "ExistingLogError",
    "LogFormatError",
    "LogInUseError",
    "LogWriteError",
    "NonFiniteLossError",
    "NonFiniteLossWarning",
    "RankMismatchError",
    "UnknownLossError",
]


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


class UnknownLossError(KeyError):
    """No loss registered under the requested name (a ``KeyError`` with a readable message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RankMismatchError(RuntimeError):
    """Ranks disagree about what a collective flush or query would merge.

    Raised on every rank alike (each decides from the same gathered metadata), so no
    rank is left waiting in a collective. Nothing buffered is cleared.
    """

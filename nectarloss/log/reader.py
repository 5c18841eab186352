"""Reading a loss log: every value of every loss, in compact columns, and statistics."""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from nectarloss.columns import LogColumn, column_stats, multiply
from nectarloss.errors import LogFormatError
from nectarloss.log.format import NONFINITE_NAMES, check_header, resolve_log_path

__all__ = ["LogFollower", "LogUpdate", "LossLog", "LossSeries", "read_log", "summarize_log"]


def _decode_values(values: list[Any]) -> array[float]:
    """Logged values as float64, with ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` decoded.

    Raises:
        ValueError: An item is neither a number nor one of those names.
    """
    try:
        return array("d", values)
    except TypeError:
        pass
    decoded: list[Any] = [NONFINITE_NAMES.get(v, v) if isinstance(v, str) else v for v in values]
    try:
        return array("d", decoded)
    except TypeError:
        bad = next(v for v in decoded if not isinstance(v, (int, float)))
        raise ValueError(f"expected numbers, got {_json_text(bad)}") from None


def _json_text(value: object) -> str:
    """A short JSON rendering of a value for an error message."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _column(typecode: Literal["q", "d"], items: Iterable[Any], owner: str) -> LogColumn[Any]:
    """``items`` as a column (a column of the right type is shared: columns are read-only)."""
    if isinstance(items, LogColumn) and items.typecode == typecode:
        return items
    try:
        return LogColumn(array(typecode, items))
    except (TypeError, OverflowError) as exc:
        what = "integers" if typecode == "q" else "numbers"
        raise TypeError(f"LossSeries: `{owner}` expected {what} ({exc}).") from None


class LossSeries:
    """Every logged value of one loss, in order, in compact read-only columns.

    ``steps`` (ints), ``values`` (raw, unweighted) and ``weights`` (floats) are
    :class:`~nectarloss.columns.LogColumn` s: 8 bytes per item, read like lists
    (indexing, slicing, ``len``, iteration, ``==`` against a list).

    Args:
        steps: Step numbers.
        values: Raw loss values, NaN/Inf included.
        weights: The weight applied at each step.

    Raises:
        ValueError: The three differ in length.
        TypeError: A step is not an int, or a value or weight not a number.

    Example:
        >>> series = LossSeries(steps=[0, 1], values=[0.5, 0.25], weights=[2.0, 2.0])
        >>> series.weighted == [1.0, 0.5], series.steps[-1]
        (True, 1)
    """

    __slots__ = ("steps", "values", "weights")

    def __init__(
        self,
        steps: Iterable[int] = (),
        values: Iterable[float] = (),
        weights: Iterable[float] = (),
    ) -> None:
        self.steps: LogColumn[int] = _column("q", steps, "steps")
        self.values: LogColumn[float] = _column("d", values, "values")
        self.weights: LogColumn[float] = _column("d", weights, "weights")
        for name in ("values", "weights"):
            if len(getattr(self, name)) != len(self.steps):
                raise ValueError(
                    f"LossSeries: `{name}` expected {len(self.steps)} items (as many as "
                    f"`steps`), got {len(getattr(self, name))}."
                )

    @property
    def weighted(self) -> LogColumn[float]:
        """Values times their weights (computed on each access; ``values`` if all are 1)."""
        return multiply(self.values, self.weights)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LossSeries):
            return NotImplemented
        return (
            self.steps == other.steps
            and self.values == other.values
            and self.weights == other.weights
        )

    def __repr__(self) -> str:
        return f"LossSeries(steps={self.steps!r}, values={self.values!r}, weights={self.weights!r})"


@dataclass
class LossLog:
    """A parsed loss log: the header, registration info and every loss's series."""

    header: dict[str, Any]
    losses: dict[str, LossSeries]
    info: dict[str, dict[str, Any]]
    truncated: bool = False


def read_log(path: str | os.PathLike[str]) -> LossLog:
    """Read a loss log: every value of every loss, in order.

    The file is read one line at a time and each loss's numbers go into compact
    columns (8 bytes per number), so memory follows the values, not the file size. A
    last line without its newline that does not parse (a crash mid-write) is skipped
    and reported as ``truncated=True``.

    Args:
        path: The log file, or an experiment directory (its ``loss_log.jsonl``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        LogFormatError: If the file is not a nectarloss log, has a log version this
            nectarloss does not read, or a line before the last is corrupt or malformed
            (the message gives the file and the line number).
    """
    parser = _LineParser(resolve_log_path(path))
    truncated = False
    with parser.path.open("rb") as fh:
        for raw in fh:
            if not parser.feed(raw):
                truncated = True
                break
    if parser.header is None:
        if truncated:
            raise LogFormatError(
                f"{parser.path}: the header line is cut short (a crash mid-write)."
            )
        raise LogFormatError(f"{parser.path}: empty log, expected a header line.")
    return LossLog(
        header=parser.header, losses=parser.take_losses(), info=parser.info, truncated=truncated
    )


class _LineParser:
    """The one reading of log lines: header, ``register`` and ``chunk`` lines, checked.

    :func:`read_log` feeds it a whole file; :class:`LogFollower` the lines a run appended
    since its last poll.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.number = 0  # lines fed so far
        self.header: dict[str, Any] | None = None
        self.info: dict[str, dict[str, Any]] = {}
        self.columns: dict[str, tuple[array[int], array[float], array[float]]] = {}

    def feed(self, raw: bytes) -> bool:
        """Parse one line (with its newline, if it has one) into the columns.

        Returns:
            ``False`` for a last line without its newline that does not parse (a crash
            mid-write): nothing was read from it. ``True`` otherwise.

        Raises:
            LogFormatError: The line is corrupt or malformed, or the first is no header.
        """
        self.number += 1
        if raw.isspace():
            return True
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if not raw.endswith(b"\n"):  # the last line, cut by a crash mid-write
                return False
            raise LogFormatError(
                f"{self.path}: line {self.number} is not valid JSON ({exc})."
            ) from exc
        where = f"{self.path}: line {self.number}"
        if not isinstance(obj, dict):
            raise LogFormatError(f"{where} expected a JSON object, got {_json_text(obj)}.")
        kind = obj.get("kind")
        if self.header is None:
            self.header = check_header(obj, where)
            self.info.update(_registered(obj, where))
        elif kind == "chunk":
            _read_chunk(obj, raw, where, self.columns)
        elif kind == "register":
            self.info.update(_registered(obj, where))
        elif kind == "header":
            raise LogFormatError(f"{where} is a second header; a log has one, on line 1.")
        else:
            raise LogFormatError(f"{where} has unknown kind {kind!r}.")
        return True

    def take_losses(self) -> dict[str, LossSeries]:
        """The values read since the last call, per loss (the columns start empty again)."""
        losses = {
            name: LossSeries(LogColumn(steps), LogColumn(values), LogColumn(weights))
            for name, (steps, values, weights) in self.columns.items()
        }
        self.columns = {}
        return losses


@dataclass
class LogUpdate:
    """What :meth:`LogFollower.poll` read: the lines a run appended since the last poll.

    Attributes:
        reset: The log was read from its start (the first read, or the file was
            truncated or replaced): drop what earlier updates gave.
        header: The log's header line (``None`` until it is written).
        info: Registration info from the header and ``register`` lines read in this
            poll, by loss name.
        losses: The values read in this poll, per loss, in order.
    """

    reset: bool
    header: dict[str, Any] | None
    info: dict[str, dict[str, Any]]
    losses: dict[str, LossSeries]

    @property
    def changed(self) -> bool:
        """Whether anything was read (or the log started over)."""
        return self.reset or bool(self.info) or bool(self.losses)


class LogFollower:
    """Follows a log while a run appends to it, reading only what is new.

    Each :meth:`poll` parses the complete lines written since the last one, from the
    byte offset where that one stopped; a last line still being written is left for the
    next poll. A file that shrank, was replaced (another inode), whose header line
    changed (a run that started over with ``overwrite=True``) or whose last line read is
    no longer where it was (a resume cut the log back and wrote past the old end between
    two polls) is read again from its start, and the update says ``reset``. A missing
    file reads as an empty update.

    Args:
        path: The log file (``loss_log.jsonl``).

    Example:
        >>> follower = LogFollower("runs/exp1/loss_log.jsonl")  # doctest: +SKIP
        >>> update = follower.poll()  # doctest: +SKIP
        >>> {name: list(s.values) for name, s in update.losses.items()}  # doctest: +SKIP
        {'G_L1': [0.5, 0.25]}
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._parser = _LineParser(self.path)
        self._offset = 0
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file read
        self._header_raw = b""
        self._last_raw = b""  # the last complete line read, which ends at the offset

    @property
    def offset(self) -> int:
        """Bytes read so far: the next poll starts here."""
        return self._offset

    @property
    def header(self) -> dict[str, Any] | None:
        """The header line, once read."""
        return self._parser.header

    def poll(self) -> LogUpdate:
        """Read the complete lines appended since the last poll.

        Returns:
            The new lines' registrations and values.

        Raises:
            LogFormatError: A complete line is corrupt or malformed (as :func:`read_log`).
            OSError: The file exists but cannot be read.
        """
        reset = False
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return LogUpdate(reset=False, header=self.header, info={}, losses={})
        with fh:
            stat = os.fstat(fh.fileno())
            identity = (stat.st_dev, stat.st_ino)
            if self._identity is None or self._started_over(fh, stat.st_size, identity):
                reset = True
                self._restart(identity)
            if stat.st_size > self._offset:
                fh.seek(self._offset)
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break  # still being written: the next poll reads it whole
                    if self._parser.number == 0:
                        self._header_raw = raw
                    self._parser.feed(raw)
                    self._offset += len(raw)
                    self._last_raw = raw
        info = self._parser.info
        self._parser.info = {}
        return LogUpdate(
            reset=reset, header=self.header, info=info, losses=self._parser.take_losses()
        )

    def _started_over(self, fh: BinaryIO, size: int, identity: tuple[int, int]) -> bool:
        """Whether the file was truncated, replaced, or begins with another header."""
        if identity != self._identity or size < self._offset:
            return True
        if not self._header_raw:
            return False
        fd, last = fh.fileno(), self._last_raw
        if os.pread(fd, len(self._header_raw), 0) != self._header_raw:
            return True
        return os.pread(fd, len(last), self._offset - len(last)) != last

    def _restart(self, identity: tuple[int, int]) -> None:
        self._parser = _LineParser(self.path)
        self._offset = 0
        self._identity = identity
        self._header_raw = b""
        self._last_raw = b""


def _registered(obj: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """The ``losses`` of a header or register line: name -> registration info."""
    if "losses" not in obj:
        raise LogFormatError(f"{where}: `losses` missing.")
    losses = obj["losses"]
    if not isinstance(losses, dict):
        raise LogFormatError(f"{where}: `losses` expected an object, got {_json_text(losses)}.")
    for name, entry in losses.items():
        if not isinstance(entry, dict):
            raise LogFormatError(
                f"{where}: `losses.{name}` expected an object, got {_json_text(entry)}."
            )
    return losses


def _read_chunk(
    obj: dict[str, Any],
    raw: bytes,
    where: str,
    columns: dict[str, tuple[array[int], array[float], array[float]]],
) -> None:
    """Check a chunk line and append its numbers to its loss's columns."""
    if "loss" not in obj:
        raise LogFormatError(f"{where}: chunk `loss` missing.")
    name = obj["loss"]
    if not isinstance(name, str):
        raise LogFormatError(f"{where}: chunk `loss` expected a string, got {_json_text(name)}.")
    where = f"{where} (chunk of {name!r})"
    lists: list[list[Any]] = []
    for key in _CHUNK_KEYS:
        if key not in obj:
            raise LogFormatError(f"{where}: `{key}` missing.")
        items = obj[key]
        if not isinstance(items, list):
            raise LogFormatError(f"{where}: `{key}` expected a list, got {_json_text(items)}.")
        lists.append(items)
    steps, values, weights = lists
    if not len(steps) == len(values) == len(weights):
        raise LogFormatError(
            f"{where}: `steps`, `values` and `weights` expected equal lengths, got steps "
            f"{len(steps)}, values {len(values)}, weights {len(weights)}."
        )
    if _may_hold_booleans(raw, name):  # array() would take a JSON boolean as 1 or 0
        for key, items in zip(_CHUNK_KEYS, lists, strict=True):
            if any(isinstance(v, bool) for v in items):
                what = "integers" if key == "steps" else "numbers"
                raise LogFormatError(f"{where}: `{key}` expected {what}, got a boolean.")
    try:
        new_steps = array("q", steps)
    except (TypeError, OverflowError):
        bad = next(v for v in steps if not isinstance(v, int) or not -(2**63) <= v < 2**63)
        raise LogFormatError(
            f"{where}: `steps` expected integers, got {_json_text(bad)}."
        ) from None
    decoded: list[array[float]] = []
    for key, items in (("values", values), ("weights", weights)):
        try:
            decoded.append(_decode_values(items))
        except ValueError as exc:
            raise LogFormatError(f"{where}: `{key}` {exc}.") from None
    if name not in columns:
        columns[name] = (array("q"), array("d"), array("d"))
    column_steps, column_values, column_weights = columns[name]
    column_steps.extend(new_steps)
    column_values.extend(decoded[0])
    column_weights.extend(decoded[1])


def _may_hold_booleans(raw: bytes, name: str) -> bool:
    """Whether a chunk line may hold a JSON ``true`` or ``false``.

    The letters ``r`` and ``f`` occur in no JSON number and no chunk key, so a line
    without them outside its loss name holds neither. Looking for one byte is a
    ``memchr``; looking for the words in every line would cost a fifth of the read.
    """
    rest = raw.replace(orjson.dumps(name), b"", 1)
    if b"r" not in rest and b"f" not in rest:
        return False
    return b"true" in rest or b"false" in rest


_CHUNK_KEYS = ("steps", "values", "weights")


def summarize_log(
    log: LossLog | str | os.PathLike[str], weighted: bool = True
) -> dict[str, dict[str, float]]:
    """Per-loss statistics of a log: ``last``, ``mean``, ``min``, ``max``, ``weight``, ``count``.

    Statistics use weighted values by default (raw with ``weighted=False``) and skip
    NaN/Inf values (``nonfinite`` counts them); ``weight`` is the last weight logged.
    A loss with no finite value reads ``nan``.
    """
    parsed = log if isinstance(log, LossLog) else read_log(log)
    out: dict[str, dict[str, float]] = {}
    for name, series in parsed.losses.items():
        values = series.weighted if weighted else series.values
        stats = column_stats(values)
        nan = math.nan
        out[name] = {
            "last": values[-1] if values else nan,
            "mean": stats.mean,
            "min": stats.min,
            "max": stats.max,
            "weight": series.weights[-1] if series.weights else nan,
            "count": float(stats.count),
            "nonfinite": float(stats.count - stats.num_finite),
        }
    return out

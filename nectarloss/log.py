"""The JSON Lines loss log: writer, reader and NectarGAN export.

``<experiment_dir>/loss_log.jsonl`` holds one JSON object per line, written with orjson
and only ever appended to:

* line 1, ``{"kind": "header", "format": "nectarloss.loss_log", "version": 1,
  "created": ISO time, "losses": {name: {"tags": [...], "weight": w, "schedule": ...}}}``
* ``{"kind": "register", "losses": {...}}`` for losses registered after the header,
* ``{"kind": "chunk", "loss": name, "steps": [...], "values": [...], "weights": [...]}``,
  one per loss per flush: raw (unweighted) values and the weight applied at each step.

:func:`read_log` joins the chunks of every loss in order and ignores a truncated last
line (a crash in the middle of a write).
"""

from __future__ import annotations

import errno
import math
import os
import sys
import weakref
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from nectarloss.columns import LogColumn, column_stats, multiply
from nectarloss.errors import ExistingLogError, LogInUseError

__all__ = [
    "LOG_FILENAME",
    "LOG_FORMAT",
    "LOG_VERSION",
    "LogFormatError",
    "LossLog",
    "LossLogWriter",
    "LossSeries",
    "export_nectargan",
    "read_log",
    "summarize_log",
]

LOG_FORMAT = "nectarloss.loss_log"
LOG_VERSION = 1
LOG_FILENAME = "loss_log.jsonl"


_NONFINITE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_nonfinite(values: list[float], bad: list[int]) -> list[float | str]:
    """JSON has no NaN/Inf: write those values as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    out: list[float | str] = list(values)
    for i in bad:
        v = values[i]
        out[i] = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return out


def _decode_values(values: list[Any]) -> array[float]:
    """Logged values as float64, with ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` decoded.

    Raises:
        ValueError: An item is neither a number nor one of those names.
    """
    try:
        return array("d", values)
    except TypeError:
        pass
    decoded: list[Any] = [_NONFINITE_NAMES.get(v, v) if isinstance(v, str) else v for v in values]
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


class LogFormatError(ValueError):
    """A loss log that cannot be read: not ours, or corrupt before its last line."""


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


def header_line(losses: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The first line of a new log."""
    return {
        "kind": "header",
        "format": LOG_FORMAT,
        "version": LOG_VERSION,
        "created": datetime.now(timezone.utc).isoformat(),
        "losses": losses,
    }


class LossLogWriter:
    """Appends lines to a loss log; never rewrites what is there. One writer per log.

    The writer holds an exclusive lock on ``<log>.lock`` (``fcntl.flock``; the OS
    releases it when the process dies) from construction until :meth:`close`, so a
    second writer on the same log, in this process or another, is refused.

    Args:
        path: The ``.jsonl`` file. Its parent directory must exist.
        fsync: Whether to ``os.fsync`` after each append (slower, survives power loss).
        mode: What to do with a log that already holds lines: ``"new"`` refuses it
            (:class:`ExistingLogError`), ``"resume"`` appends to it after checking its
            header and cutting a crash-torn last line, ``"overwrite"`` empties it.

    Raises:
        LogInUseError: Another writer holds the log.
        ExistingLogError: ``mode="new"`` and the log is not empty.
        LogFormatError: ``mode="resume"`` and the file is not a nectarloss log.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fsync: bool = False,
        mode: Literal["new", "resume", "overwrite"] = "new",
    ) -> None:
        if mode not in ("new", "resume", "overwrite"):
            raise ValueError(
                f"LossLogWriter: `mode` expected 'new', 'resume' or 'overwrite', got {mode!r}."
            )
        self.path = Path(path)
        self.fsync = fsync
        self._lock_fd: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._pending_cut: int | None = None
        self._pid = os.getpid()
        #: The size and header time this writer left the log with (checked on re-locking).
        self._known_size: int | None = None
        self._known_created: str | None = None
        self.acquire()
        try:
            self._has_header = self._open_existing(mode)
            header = self.header() if self._has_header else None
        except BaseException:
            self.close()
            raise
        self._known_size = self.size
        self._known_created = None if header is None else header.get("created")

    # -- ownership ---------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        """The lock file next to the log."""
        return self.path.with_name(self.path.name + ".lock")

    def acquire(self) -> None:
        """Take the log's lock (a no-op if this writer holds it).

        Raises:
            LogInUseError: Another writer holds it.
        """
        if os.getpid() != self._pid:
            raise LogInUseError(
                f"{self.path}: this log belongs to the LossManager of process {self._pid}; "
                f"process {os.getpid()} is a fork of it (a DataLoader worker?) and may not "
                "write it. Compute losses in the process that built the manager, or give "
                "the child its own manager and experiment_dir."
            )
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
        try:
            _lock_exclusive(fd)
        except BlockingIOError:
            os.close(fd)
            raise LogInUseError(
                f"{self.path.parent}: its log {self.path.name} is being written by another "
                "LossManager (in this process or another one); a log has one writer at a "
                "time. Close that manager first, or use a different experiment_dir."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)
        if self._known_size is None:  # first lock: nothing to compare yet
            return
        header = self.header() if self.size else None
        now = (self.size, None if header is None else header.get("created"))
        if now != (self._known_size, self._known_created):
            self.close()
            raise LogInUseError(
                f"{self.path}: the log changed while this writer had released it "
                f"({self._known_size} -> {now[0]} bytes, header {self._known_created!r} -> "
                f"{now[1]!r}); another run took it over."
            )

    def close(self) -> None:
        """Release the lock. :meth:`append` takes it again if the writer is used later."""
        if self._finalizer is not None:
            self._finalizer()  # closing the descriptor releases the flock
        self._finalizer = None
        self._lock_fd = None

    @property
    def is_locked(self) -> bool:
        """Whether this writer holds the log's lock."""
        return self._lock_fd is not None

    def _open_existing(self, mode: str) -> bool:
        if self.size == 0:
            return False
        if mode == "overwrite":
            self.truncate(0)
            return False
        if mode == "new":
            raise ExistingLogError(
                f"{self.path} already holds the log of a run ({self.size} bytes). Pass "
                "resume=True to continue that run's log, overwrite=True to replace it, or "
                "use a new experiment_dir."
            )
        self._check_header()
        self._drop_partial_last_line()
        return self.size > 0

    def _check_header(self) -> None:
        with self.path.open("rb") as fh:
            first = fh.readline()
        try:
            head = orjson.loads(first)
        except orjson.JSONDecodeError as exc:
            raise LogFormatError(
                f"{self.path}: line 1 is not a nectarloss log header ({exc}); pass "
                "overwrite=True to replace the file."
            ) from exc
        if not isinstance(head, dict) or head.get("format") != LOG_FORMAT:
            raise LogFormatError(
                f"{self.path}: line 1 is not a nectarloss log header; pass overwrite=True "
                "to replace the file."
            )

    def _drop_partial_last_line(self) -> None:
        """Cut a last line left without its newline by a crash, so appends stay valid.

        Reads only the file's tail (back to the last newline), never the whole log.
        """
        chunk = 1 << 16
        with self.path.open("r+b") as fh:
            end = fh.seek(0, os.SEEK_END)
            position = end
            while position > 0:
                start = max(position - chunk, 0)
                fh.seek(start)
                newline = fh.read(position - start).rfind(b"\n")
                if newline >= 0:
                    cut = start + newline + 1
                    break
                position = start
            else:
                cut = 0
            if cut < end:
                fh.truncate(cut)
        self._known_size = cut

    # -- reading the file's state ------------------------------------------------------
    @property
    def size(self) -> int:
        """Current size of the log file in bytes (0 if it does not exist)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def header(self) -> dict[str, Any] | None:
        """The parsed header line, or ``None`` for an empty log."""
        if self.size == 0:
            return None
        with self.path.open("rb") as fh:
            head: dict[str, Any] = orjson.loads(fh.readline())
        return head

    def ends_a_line(self, offset: int) -> bool:
        """Whether ``offset`` is 0 or just past a newline of the log."""
        if offset == 0:
            return True
        if not 0 < offset <= self.size:
            return False
        with self.path.open("rb") as fh:
            fh.seek(offset - 1)
            return fh.read(1) == b"\n"

    @property
    def has_header(self) -> bool:
        """Whether the file already starts with a header line."""
        return self._has_header

    # -- writing -----------------------------------------------------------------------
    def truncate(self, size: int) -> None:
        """Cut the log back to ``size`` bytes (a resume discarding lines written after it)."""
        os.truncate(self.path, size)
        self._has_header = size > 0
        self._known_size = size
        if size == 0:
            self._known_created = None

    def append(self, lines: list[dict[str, Any]]) -> int:
        """Append ``lines`` with unbuffered writes. Returns the number of bytes written.

        Either every line is written or none: a write the kernel accepted only in part
        (a full disk, a file-size limit) or an exception in the middle (a signal) is
        cut back to the last complete line before the error propagates.

        Raises:
            OSError: The write failed; the file is left exactly as it was.
        """
        self.acquire()
        payload = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_CLOEXEC, 0o644)
        try:
            if self._pending_cut is not None:  # an earlier failure could not cut its tail
                os.ftruncate(fd, self._pending_cut)
                self._pending_cut = None
            start = os.fstat(fd).st_size
            try:
                _write_all(fd, payload)
                if self.fsync:
                    os.fsync(fd)
            except BaseException:
                self._cut(fd, start)
                raise
            self._known_size = start + len(payload)
        finally:
            os.close(fd)
        for line in lines:
            if line.get("kind") == "header":
                self._has_header = True
                self._known_created = line.get("created")
        return len(payload)

    def _cut(self, fd: int, size: int) -> None:
        """Remove a partial append; if even that fails, the next append cuts first."""
        try:
            os.ftruncate(fd, size)
        except OSError:
            self._pending_cut = size


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _lock_exclusive(fd: int) -> None:
    """Lock ``fd``'s file without waiting; ``BlockingIOError`` if another holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            raise BlockingIOError(str(exc)) from exc
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _write_all(fd: int, payload: bytes) -> None:
    """``os.write`` until every byte is written (a regular file may take part of a write)."""
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "the log write made no progress")
        view = view[written:]


def read_log(path: str | os.PathLike[str]) -> LossLog:
    """Read a loss log: every value of every loss, in order.

    The file is read one line at a time and each loss's numbers go into compact
    columns (8 bytes per number), so memory follows the values, not the file size. A
    last line without its newline that does not parse (a crash mid-write) is skipped
    and reported as ``truncated=True``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        LogFormatError: If the file is not a nectarloss log, has a log version this
            nectarloss does not read, or a line before the last is corrupt or malformed
            (the message gives the file and the line number).
    """
    p = Path(path)
    header: dict[str, Any] | None = None
    info: dict[str, dict[str, Any]] = {}
    columns: dict[str, tuple[array[int], array[float], array[float]]] = {}
    truncated = False
    with p.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if raw.isspace():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if not raw.endswith(b"\n"):  # the last line, cut by a crash mid-write
                    truncated = True
                    break
                raise LogFormatError(f"{p}: line {number} is not valid JSON ({exc}).") from exc
            where = f"{p}: line {number}"
            if not isinstance(obj, dict):
                raise LogFormatError(f"{where} expected a JSON object, got {_json_text(obj)}.")
            kind = obj.get("kind")
            if header is None:
                header = _check_header(obj, where)
                info.update(_registered(obj, where))
            elif kind == "chunk":
                _read_chunk(obj, raw, where, columns)
            elif kind == "register":
                info.update(_registered(obj, where))
            elif kind == "header":
                raise LogFormatError(f"{where} is a second header; a log has one, on line 1.")
            else:
                raise LogFormatError(f"{where} has unknown kind {kind!r}.")
    if header is None:
        if truncated:
            raise LogFormatError(f"{p}: the header line is cut short (a crash mid-write).")
        raise LogFormatError(f"{p}: empty log, expected a header line.")
    losses = {
        name: LossSeries(LogColumn(steps), LogColumn(values), LogColumn(weights))
        for name, (steps, values, weights) in columns.items()
    }
    return LossLog(header=header, losses=losses, info=info, truncated=truncated)


def _check_header(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """``obj`` if it is a header of a log version this nectarloss reads."""
    if obj.get("kind") != "header" or obj.get("format") != LOG_FORMAT:
        raise LogFormatError(f"{where} expected a nectarloss log header.")
    version = obj.get("version")
    if isinstance(version, bool) or version != LOG_VERSION:
        raise LogFormatError(
            f"{where}: log version {version!r} is not supported; this nectarloss reads "
            f"version {LOG_VERSION} (a newer nectarloss may read this log)."
        )
    return obj


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
_EXPORT_BATCH = 1 << 16  # values serialised per orjson call by export_nectargan


def export_nectargan(
    log: LossLog | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    weighted: bool = True,
) -> Path:
    """Write NectarGAN's ``loss_log.json`` layout from a loss log.

    The layout is ``{"LOSSMANAGER_LOG": {"loss_functions": {name: {"loss": [...],
    "weights": [...]}}}}``. ``loss`` holds weighted means by default, as NectarGAN
    records them; pass ``weighted=False`` for raw means. NaN and Inf are written as
    ``null`` (JSON has neither). The file is written in pieces, so a long log never
    exists as one list of Python floats.

    Returns:
        The path written.
    """
    parsed = log if isinstance(log, LossLog) else read_log(log)
    out = Path(out_path)
    with out.open("wb") as fh:
        fh.write(b'{\n  "LOSSMANAGER_LOG": {\n    "loss_functions": {')
        for i, (name, series) in enumerate(parsed.losses.items()):
            fh.write(b"," if i else b"")
            fh.write(b"\n      " + orjson.dumps(name) + b': {\n        "loss": ')
            _write_json_list(fh, series.weighted if weighted else series.values)
            fh.write(b',\n        "weights": ')
            _write_json_list(fh, series.weights)
            fh.write(b"\n      }")
        fh.write(b"\n    }\n  }\n}\n" if parsed.losses else b"}\n  }\n}\n")
    return out


def _write_json_list(fh: BinaryIO, column: LogColumn[float]) -> None:
    """Write ``column`` as one JSON list, ``_EXPORT_BATCH`` numbers at a time."""
    fh.write(b"[")
    for start in range(0, len(column), _EXPORT_BATCH):
        fh.write(b"," if start else b"")
        fh.write(orjson.dumps(column[start : start + _EXPORT_BATCH].tolist())[1:-1])
    fh.write(b"]")


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

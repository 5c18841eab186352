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

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

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


def _decode_values(values: list[Any]) -> list[float]:
    return [_NONFINITE_NAMES[v] if isinstance(v, str) else v for v in values]


class LogFormatError(ValueError):
    """A loss log that cannot be read: not ours, or corrupt before its last line."""


@dataclass
class LossSeries:
    """Every logged value of one loss, in order."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    @property
    def weighted(self) -> list[float]:
        """Values times their weights."""
        return [v * w for v, w in zip(self.values, self.weights, strict=True)]


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
    """Appends lines to a loss log; never rewrites what is there.

    Args:
        path: The ``.jsonl`` file. Its parent directory must exist.
        fsync: Whether to ``os.fsync`` after each append (slower, survives power loss).
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._has_header = self._check_existing()

    def _check_existing(self) -> bool:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with self.path.open("rb") as fh:
            first = fh.readline()
        try:
            head = orjson.loads(first)
        except orjson.JSONDecodeError as exc:
            raise LogFormatError(
                f"{self.path}: line 1 is not a nectarloss log header ({exc})."
            ) from exc
        if not isinstance(head, dict) or head.get("format") != LOG_FORMAT:
            raise LogFormatError(f"{self.path}: line 1 is not a nectarloss log header.")
        self._drop_partial_last_line()
        return True

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

    @property
    def size(self) -> int:
        """Current size of the log file in bytes (0 if it does not exist)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def header(self) -> dict[str, Any] | None:
        """The parsed header line, or ``None`` for an empty log."""
        if self.size == 0:
            return None
        with self.path.open("rb") as fh:
            head: dict[str, Any] = orjson.loads(fh.readline())
        return head

    def truncate(self, size: int) -> None:
        """Cut the log back to ``size`` bytes (a resume discarding lines written after it)."""
        with self.path.open("r+b") as fh:
            fh.truncate(size)
        self._has_header = size > 0

    @property
    def has_header(self) -> bool:
        """Whether the file already starts with a header line."""
        return self._has_header

    def append(self, lines: list[dict[str, Any]]) -> int:
        """Append ``lines`` (one ``write`` call). Returns the number of bytes written.

        Raises:
            OSError: If the write fails; the file then holds at most whole earlier lines
                plus possibly a partial last line, which :func:`read_log` ignores.
        """
        payload = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        with self.path.open("ab") as fh:
            start = fh.tell()
            try:
                fh.write(payload)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            except OSError:
                _truncate_quietly(fh, start)
                raise
        if any(line.get("kind") == "header" for line in lines):
            self._has_header = True
        return len(payload)


def _truncate_quietly(fh: Any, size: int) -> None:
    """Best effort: remove a partially written append so the file ends on a whole line."""
    try:
        fh.truncate(size)
    except OSError:
        pass


def read_log(path: str | os.PathLike[str]) -> LossLog:
    """Read a loss log: every value of every loss, in order.

    A last line without its newline that does not parse (a crash mid-write) is
    skipped and reported as ``truncated=True``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        LogFormatError: If the file is not a nectarloss log or a line before the last
            is corrupt (the message gives the line number).
    """
    p = Path(path)
    data = p.read_bytes()
    lines = data.split(b"\n")
    header: dict[str, Any] | None = None
    losses: dict[str, LossSeries] = {}
    info: dict[str, dict[str, Any]] = {}
    truncated = False
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if number == len(lines):  # the last line, cut by a crash mid-write
                truncated = True
                break
            raise LogFormatError(f"{p}: line {number} is not valid JSON ({exc}).") from exc
        if not isinstance(obj, dict):
            raise LogFormatError(f"{p}: line {number} expected a JSON object, got {obj!r:.60}.")
        kind = obj.get("kind")
        if header is None:
            if kind != "header" or obj.get("format") != LOG_FORMAT:
                raise LogFormatError(f"{p}: line {number} expected a nectarloss log header.")
            header = obj
            info.update(obj.get("losses", {}))
        elif kind == "register":
            info.update(obj.get("losses", {}))
        elif kind == "chunk":
            series = losses.setdefault(str(obj["loss"]), LossSeries())
            series.steps.extend(obj["steps"])
            series.values.extend(_decode_values(obj["values"]))
            series.weights.extend(obj["weights"])
        else:
            raise LogFormatError(f"{p}: line {number} has unknown kind {kind!r}.")
    if header is None:
        raise LogFormatError(f"{p}: empty log, expected a header line.")
    return LossLog(header=header, losses=losses, info=info, truncated=truncated)


def export_nectargan(
    log: LossLog | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    weighted: bool = True,
) -> Path:
    """Write NectarGAN's ``loss_log.json`` layout from a loss log.

    The layout is ``{"LOSSMANAGER_LOG": {"loss_functions": {name: {"loss": [...],
    "weights": [...]}}}}``. ``loss`` holds weighted means by default, as NectarGAN
    records them; pass ``weighted=False`` for raw means.

    Returns:
        The path written.
    """
    parsed = log if isinstance(log, LossLog) else read_log(log)
    functions = {
        name: {"loss": s.weighted if weighted else s.values, "weights": s.weights}
        for name, s in parsed.losses.items()
    }
    out = Path(out_path)
    out.write_bytes(
        orjson.dumps({"LOSSMANAGER_LOG": {"loss_functions": functions}}, option=orjson.OPT_INDENT_2)
    )
    return out


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
        finite = [v for v in values if math.isfinite(v)]
        nan = math.nan
        out[name] = {
            "last": values[-1] if values else nan,
            "mean": math.fsum(finite) / len(finite) if finite else nan,
            "min": min(finite) if finite else nan,
            "max": max(finite) if finite else nan,
            "weight": series.weights[-1] if series.weights else nan,
            "count": float(len(values)),
            "nonfinite": float(len(values) - len(finite)),
        }
    return out

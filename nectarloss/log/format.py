"""The loss log's line format: constants, the header line, non-finite encoding."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nectarloss.errors import LogFormatError

__all__ = [
    "LOG_FILENAME",
    "resolve_log_path",
    "LOG_FORMAT",
    "LOG_VERSION",
    "NONFINITE_NAMES",
    "check_header",
    "chunk_line",
    "encode_nonfinite",
    "header_line",
    "nonfinite_indices",
]

LOG_FORMAT = "nectarloss.loss_log"
LOG_VERSION = 1
LOG_FILENAME = "loss_log.jsonl"

NONFINITE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_nonfinite(values: list[float], bad: list[int]) -> list[float | str]:
    """JSON has no NaN/Inf: write those values as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    out: list[float | str] = list(values)
    for i in bad:
        v = values[i]
        out[i] = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return out


def header_line(losses: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The first line of a new log."""
    return {
        "kind": "header",
        "format": LOG_FORMAT,
        "version": LOG_VERSION,
        "created": datetime.now(timezone.utc).isoformat(),
        "losses": losses,
    }


def nonfinite_indices(values: Sequence[float]) -> list[int]:
    """Indices of the NaN/Inf values (host floats)."""
    return [i for i, v in enumerate(values) if not math.isfinite(v)]


def chunk_line(
    name: str,
    steps: Sequence[int],
    values: list[float],
    weights: list[float],
    nonfinite: list[int],
) -> dict[str, Any]:
    """One flushed chunk of one loss; ``nonfinite`` indexes the NaN/Inf ``values``."""
    return {
        "kind": "chunk",
        "loss": name,
        "steps": list(steps),
        "values": encode_nonfinite(values, nonfinite) if nonfinite else values,
        "weights": weights,
    }


def check_header(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """``obj`` if it is a header of a log version this nectarloss reads (the one rule).

    Raises:
        LogFormatError: Not a nectarloss header, or an unsupported version.
    """
    if obj.get("kind") != "header" or obj.get("format") != LOG_FORMAT:
        raise LogFormatError(f"{where} expected a nectarloss log header.")
    version = obj.get("version")
    if isinstance(version, bool) or version != LOG_VERSION:
        raise LogFormatError(
            f"{where}: log version {version!r} is not supported; this nectarloss reads "
            f"version {LOG_VERSION} (a newer nectarloss may read this log)."
        )
    return obj


def resolve_log_path(path: str | os.PathLike[str]) -> Path:
    """The log file of ``path``: the path itself, or ``<path>/loss_log.jsonl`` for a directory.

    A path that does not exist yet is taken for the experiment directory a run is about
    to create (``runs/exp``, ``runs/lr0.001``), unless it ends in ``.jsonl``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run:
        ...     resolve_log_path(run).name
        'loss_log.jsonl'
    """
    p = Path(path)
    is_directory = p.is_dir() or (not p.exists() and p.suffix != ".jsonl")  # not made yet
    return p / LOG_FILENAME if is_directory else p

"""The loss log's line format: constants, the header line, non-finite encoding."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "LOG_FILENAME",
    "LOG_FORMAT",
    "LOG_VERSION",
    "NONFINITE_NAMES",
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

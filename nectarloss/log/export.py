"""NectarGAN's ``loss_log.json`` layout, written from a loss log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import orjson

from nectarloss.columns import LogColumn
from nectarloss.log.reader import LossLog, read_log

__all__ = ["export_nectargan"]

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

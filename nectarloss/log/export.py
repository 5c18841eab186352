"""NectarGAN's ``loss_log.json`` layout, written from a loss log."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from nectarloss.columns import LogColumn
from nectarloss.log.reader import LossLog, read_log

__all__ = ["export_nectargan", "write_nectargan_json"]

_EXPORT_BATCH = 1 << 16  # values serialised per orjson call

#: Per loss name, its ``loss`` and ``weights`` columns.
LossColumns = Mapping[str, tuple[LogColumn[float], LogColumn[float]]]


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
    exists as one list of Python floats, and replaced atomically, so a reader never
    sees half of it.

    Returns:
        The path written.
    """
    parsed = log if isinstance(log, LossLog) else read_log(log)
    columns = {
        name: (series.weighted if weighted else series.values, series.weights)
        for name, series in parsed.losses.items()
    }
    return write_nectargan_json(out_path, columns)


def write_nectargan_json(
    out_path: str | os.PathLike[str],
    losses: LossColumns,
    header: Mapping[str, Any] | None = None,
    nan_tokens: bool = False,
) -> Path:
    """Write ``{"LOSSMANAGER_LOG": {**header, "loss_functions": ...}}`` atomically.

    Args:
        out_path: The file to (re)place.
        losses: Per loss name, its ``loss`` and ``weights`` columns.
        header: Fields written before ``loss_functions`` (NectarGAN's ``device``,
            ``dataroot``, ``dataset_length``, ``experiment``).
        nan_tokens: Write NaN and Inf as Python's ``json`` does (``NaN``,
            ``Infinity``), which NectarGAN's own files hold and its readers parse;
            by default they are ``null`` (strict JSON).

    Returns:
        The path written.
    """
    out = Path(out_path)
    partial = out.with_name(out.name + ".partial")
    with partial.open("wb") as fh:
        fh.write(b'{\n  "LOSSMANAGER_LOG": {')
        for key, value in (header or {}).items():
            fh.write(b"\n    " + orjson.dumps(key) + b": " + orjson.dumps(value) + b",")
        fh.write(b'\n    "loss_functions": {')
        for i, (name, (loss, weights)) in enumerate(losses.items()):
            fh.write(b"," if i else b"")
            fh.write(b"\n      " + orjson.dumps(name) + b': {\n        "loss": ')
            _write_json_list(fh, loss, nan_tokens)
            fh.write(b',\n        "weights": ')
            _write_json_list(fh, weights, nan_tokens)
            fh.write(b"\n      }")
        fh.write(b"\n    }\n  }\n}\n" if losses else b"}\n  }\n}\n")
    os.replace(partial, out)
    return out


def _write_json_list(fh: BinaryIO, column: LogColumn[float], nan_tokens: bool) -> None:
    """Write ``column`` as one JSON list, ``_EXPORT_BATCH`` numbers at a time."""
    fh.write(b"[")
    for start in range(0, len(column), _EXPORT_BATCH):
        fh.write(b"," if start else b"")
        batch = column[start : start + _EXPORT_BATCH].tolist()
        text = orjson.dumps(batch)  # NaN and Inf become null
        if nan_tokens and b"null" in text:
            text = json.dumps(batch, separators=(",", ":")).encode()
        fh.write(text[1:-1])
    fh.write(b"]")

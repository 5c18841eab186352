"""WandbSink in W&B's offline mode (no network), read back from the run's .wandb file."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from sink_helpers import log_rows, run_two_losses

from nectarloss.sinks import WANDB_STEP_METRIC, FlushedChunk, WandbSink

wandb = pytest.importorskip("wandb")

_BLOCK = 32768  # the .wandb file is a LevelDB-style log of 32 KiB blocks
_HEADER = 7  # ":W&B", a 2-byte key, a version byte


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every ``history`` record (one per ``run.log``) of an offline run file."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, out = _HEADER, b"", []
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left  # zero padding to the end of the block
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                out.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return out


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def finish(run: Any) -> None:
    """End the run and the W&B service, so the run file is complete on disk."""
    run.finish()
    wandb.teardown()


def run_file(directory: Path) -> Path:
    (found,) = directory.glob("wandb/offline-run-*/run-*.wandb")
    return found


def test_offline_run_holds_the_log_at_its_steps(offline: Path) -> None:
    run = wandb.init(project="nectarloss-test", dir=str(offline), mode="offline")
    try:
        run_two_losses(offline / "run", [WandbSink(run)], steps=6)
    finally:
        finish(run)
    history = read_history(run_file(offline))
    got: dict[str, list[tuple[int, float, float, float]]] = {}
    for row in history:
        for name, prefix in (("G_L1", "G/G_L1"), ("mse", "mse")):
            if f"loss/{prefix}/raw" in row:
                got.setdefault(name, []).append(
                    (
                        row[WANDB_STEP_METRIC],
                        row[f"loss/{prefix}/raw"],
                        row[f"weight/{prefix}"],
                        row[f"loss/{prefix}/weighted"],
                    )
                )
    assert got == log_rows(offline / "run" / "loss_log.jsonl")
    assert len(history) == 6  # one run.log per step: both losses of a step together


def test_uses_the_active_run_and_logs_nan(offline: Path) -> None:
    sink = WandbSink()
    with pytest.raises(RuntimeError, match=r"WandbSink: `run` expected a W&B run"):
        sink.write([FlushedChunk("a", range(1), (1.0,), (1.0,))])
    run = wandb.init(project="nectarloss-test", dir=str(offline), mode="offline")
    try:
        sink.write([FlushedChunk("a", range(2), (math.nan, 0.5), (1.0, 4.0))])
    finally:
        finish(run)
    history = read_history(run_file(offline))
    assert [row[WANDB_STEP_METRIC] for row in history] == [0, 1]
    assert math.isnan(history[0]["loss/a/raw"]) and history[1]["loss/a/weighted"] == 2.0

"""``nectarloss demo --tensorboard``: event files TensorBoard reads, and the command."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pytest

from nectarloss.cli import main
from nectarloss.log import read_log

pytest.importorskip("tensorboard")

#: A run of a few seconds on a CPU (as tests/test_demo.py's TINY).
TINY = {
    "epochs": 2,
    "steps_per_epoch": 6,
    "batch_size": 8,
    "image_size": 16,
    "unet_depth": 3,
    "base_channels": 8,
    "num_heldout": 8,
    "log_every": 3,
    "device": "cpu",
}


def test_demo_writes_event_files_and_prints_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tmp_path / "demo.json"
    config.write_bytes(orjson.dumps(TINY))
    out = tmp_path / "demo"
    assert main(["demo", "--config", str(config), "--out", str(out), "--tensorboard"]) == 0
    assert f"tensorboard --logdir {out / 'tensorboard'}" in capsys.readouterr().out
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    log = read_log(out / "loss_log.jsonl")
    assert set(log.losses) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    for name, series in log.losses.items():
        tag = log.info[name]["tags"][0]
        events = acc.Scalars(f"loss/{tag}/{name}/weighted")
        assert [e.step for e in events] == list(series.steps) == list(range(12))
        want = [struct.unpack("f", struct.pack("f", v))[0] for v in series.weighted]
        assert [e.value for e in events] == want

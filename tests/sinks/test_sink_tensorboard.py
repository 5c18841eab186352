"""TensorBoardSink: real event files, read back with TensorBoard's EventAccumulator."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from sink_helpers import as_float32, log_rows, run_two_losses, tensorboard_scalars
from torch import nn

from nectarloss import LossManager
from nectarloss.sinks import FlushedChunk, TensorBoardSink

pytest.importorskip("tensorboard")


def test_event_files_hold_the_log_at_its_steps(tmp_path: Path) -> None:
    run_two_losses(tmp_path / "run", [TensorBoardSink(tmp_path / "tb")], steps=10)
    scalars = tensorboard_scalars(tmp_path / "tb")
    rows = log_rows(tmp_path / "run" / "loss_log.jsonl")
    assert sorted(scalars) == sorted(
        [
            "loss/G/G_L1/raw",
            "loss/G/G_L1/weighted",
            "weight/G/G_L1",
            "loss/mse/raw",
            "loss/mse/weighted",
            "weight/mse",
        ]
    )
    for name, prefix in (("G_L1", "G/G_L1"), ("mse", "mse")):
        want = rows[name]
        assert scalars[f"loss/{prefix}/raw"] == [(s, as_float32(r)) for s, r, _, _ in want]
        assert scalars[f"loss/{prefix}/weighted"] == [(s, as_float32(x)) for s, _, _, x in want]
        assert scalars[f"weight/{prefix}"] == [(s, as_float32(w)) for s, _, w, _ in want]
    assert scalars["weight/G/G_L1"][0][1] == 2.0


def test_nonfinite_values_are_written_as_they_are(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path)
    sink.write([FlushedChunk("a", range(3), (math.nan, math.inf, 1.0), (1.0, 1.0, 1.0))])
    sink.close()
    values = [v for _, v in tensorboard_scalars(tmp_path)["loss/a/raw"]]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == 1.0


def test_a_resumed_run_hides_the_steps_it_writes_again(tmp_path: Path) -> None:
    """Run 1 logs steps 0-7 and checkpoints at 4; the resumed run rewrites 4-7."""
    tb = tmp_path / "tb"
    lm = LossManager(tmp_path / "run", sinks=[TensorBoardSink(tb)])
    lm.register_loss_fn("a", nn.L1Loss())
    state = None
    for step in range(8):
        lm.compute_loss_xy("a", torch.zeros(1), torch.full((1,), float(step)))
        if step == 3:
            lm.update_loss_log()
            state = lm.state_dict()
    lm.close()
    resumed = LossManager(tmp_path / "run", resume=True, sinks=[TensorBoardSink(tb)])
    resumed.register_loss_fn("a", nn.L1Loss())
    assert state is not None
    resumed.load_state_dict(state)
    for step in range(4, 8):
        resumed.compute_loss_xy("a", torch.zeros(1), torch.full((1,), 10.0 * step))
    resumed.close()
    got = tensorboard_scalars(tb)["loss/a/raw"]
    assert got == [(s, float(s)) for s in range(4)] + [(s, 10.0 * s) for s in range(4, 8)]
    assert [(s, r) for s, r, _, _ in log_rows(tmp_path / "run" / "loss_log.jsonl")["a"]] == got


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"TensorBoardSink: `log_dir` expected a path"):
        TensorBoardSink(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"TensorBoardSink: `flush_secs` expected a finite"):
        TensorBoardSink("x", flush_secs=0)

"""Resumed runs seen through sinks and ``watch``: each step once, as in the log.

Written by a red-team pass over issue 16; each failed on the code it was written against.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from nectarloss import LossManager, read_log
from nectarloss.log import LogFollower
from nectarloss.sinks import CSVSink, TensorBoardSink

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)


def _tb_steps(log_dir: Path, tag: str) -> list[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = EventAccumulator(str(log_dir))
        acc.Reload()
    return [event.step for event in acc.Scalars(tag)]


def _csv_steps(path: Path, loss: str) -> list[int]:
    with path.open(newline="") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh) if row["loss"] == loss]


def _gan_manager(d: Path, resume: bool) -> LossManager:
    lm = LossManager(d, resume=resume, sinks=[TensorBoardSink(d / "tb"), CSVSink(d / "l.csv")])
    lm.register_loss_fn("G", nn.L1Loss())
    lm.register_loss_fn("D", nn.L1Loss())
    return lm


def _resumed_run_whose_first_flush_lacks_a_loss(d: Path) -> None:
    """G every step, D every other step (a discriminator updated every 2nd batch).

    Checkpoint after 4 steps (D at its step 2), the run goes on to 8 steps; the resumed
    run's first flush holds only G (an update_loss_log / automatic flush before D runs).
    """

    def step(lm: LossManager, i: int) -> None:
        lm.compute_loss_xy("G", torch.rand(3), torch.rand(3))
        if i % 2 == 0:
            lm.compute_loss_xy("D", torch.rand(3), torch.rand(3))

    lm = _gan_manager(d, resume=False)
    for i in range(4):
        step(lm, i)
    lm.update_loss_log()
    state = lm.state_dict()
    for i in range(4, 8):
        step(lm, i)
    lm.close()  # crash here; resume from `state`
    lm = _gan_manager(d, resume=True)
    lm.load_state_dict(state)
    lm.compute_loss_xy("G", torch.rand(3), torch.rand(3))
    lm.update_loss_log()  # first flush of the resumed run: G only
    lm.compute_loss_xy("D", torch.rand(3), torch.rand(3))
    for i in range(5, 8):
        step(lm, i)
    lm.close()


def test_resumed_tensorboard_sink_shows_a_loss_absent_from_the_first_flush_once(
    tmp_path: Path,
) -> None:
    """After a resume TB shows D's steps 2, 3 once, as the log does (D is not in the
    first flush, which starts at G's step 4)."""
    _resumed_run_whose_first_flush_lacks_a_loss(tmp_path)
    assert list(read_log(tmp_path / "loss_log.jsonl").losses["D"].steps) == [0, 1, 2, 3]
    assert _tb_steps(tmp_path / "tb", "loss/D/raw") == [0, 1, 2, 3]


def test_resumed_csv_sink_holds_a_loss_absent_from_the_first_flush_once(tmp_path: Path) -> None:
    """After a resume the CSV holds D's steps 2, 3 once (D not in the first flush)."""
    _resumed_run_whose_first_flush_lacks_a_loss(tmp_path)
    assert _csv_steps(tmp_path / "l.csv", "D") == [0, 1, 2, 3]


def test_resumed_tensorboard_sink_keeps_earlier_steps_of_a_loss_that_runs_ahead(
    tmp_path: Path,
) -> None:
    """Train loss 5 calls an epoch, val loss 2: after a resume TB keeps train's steps 2-4."""

    def epoch(lm: LossManager) -> None:
        for _ in range(5):
            lm.compute_loss_xy("train", torch.rand(3), torch.rand(3))
        for _ in range(2):
            lm.compute_loss_xy("val", torch.rand(3), torch.rand(3))
        lm.update_loss_log()

    def manager(resume: bool) -> LossManager:
        lm = LossManager(tmp_path, resume=resume, sinks=[TensorBoardSink(tmp_path / "tb")])
        lm.register_loss_fn("train", nn.L1Loss())
        lm.register_loss_fn("val", nn.L1Loss())
        return lm

    lm = manager(False)
    epoch(lm)
    state = lm.state_dict()
    epoch(lm)
    lm.close()
    lm = manager(True)
    lm.load_state_dict(state)
    epoch(lm)
    lm.close()
    assert list(read_log(tmp_path / "loss_log.jsonl").losses["train"].steps) == list(range(10))
    assert _tb_steps(tmp_path / "tb", "loss/train/raw") == list(range(10))


def test_watch_experiment_dir_that_does_not_exist_yet(tmp_path: Path, monkeypatch) -> None:
    """`nectarloss watch runs/exp` before the run makes exp/ waits for its log."""
    from rich.console import Console

    import nectarloss.watch as watch

    run = tmp_path / "run"
    polls: list[float] = []

    def fake_sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:  # the run starts between two polls
            with LossManager(run) as lm:
                lm.register_loss_fn("mse", nn.MSELoss())
                lm.compute_loss_xy("mse", torch.ones(2), torch.zeros(2))
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch.time, "sleep", fake_sleep)
    out = io.StringIO()
    assert watch.watch_log(run, interval=0.01, console=Console(file=out, width=120)) == 0
    assert "mse" in out.getvalue()


def test_log_follower_survives_a_resume_that_truncates_and_regrows_between_polls(
    tmp_path: Path,
) -> None:
    """A resume cuts the log back and appends past the old offset between polls: reset."""

    def manager(resume: bool) -> LossManager:
        lm = LossManager(tmp_path, resume=resume)
        lm.register_loss_fn("mse", nn.MSELoss())
        return lm

    lm = manager(False)
    for k in range(3):
        lm.compute_loss_xy("mse", torch.rand(2), torch.rand(2))
        lm.update_loss_log()
        if k == 0:
            state = lm.state_dict()
    lm.close()
    follower = LogFollower(tmp_path / "loss_log.jsonl")
    assert list(follower.poll().losses["mse"].steps) == [0, 1, 2]
    lm = manager(True)
    lm.load_state_dict(state)  # cuts the log back to step 0's line
    for _ in range(6):
        lm.compute_loss_xy("mse", torch.rand(2), torch.rand(2))
        lm.update_loss_log()
    lm.close()
    update = follower.poll()
    assert update.reset
    assert list(update.losses["mse"].steps) == list(range(7))


def test_csv_sink_on_a_resumed_manager_keeps_the_earlier_rows(tmp_path: Path) -> None:
    """LossManager(resume=True, sinks=[CSVSink(p)]) keeps the CSV's earlier rows."""
    with LossManager(tmp_path, sinks=[CSVSink(tmp_path / "l.csv")]) as lm:
        lm.register_loss_fn("mse", nn.MSELoss())
        for _ in range(3):
            lm.compute_loss_xy("mse", torch.rand(2), torch.rand(2))
    with LossManager(tmp_path, resume=True, sinks=[CSVSink(tmp_path / "l.csv")]) as lm:
        lm.register_loss_fn("mse", nn.MSELoss())
        for _ in range(3):
            lm.compute_loss_xy("mse", torch.rand(2), torch.rand(2))
    assert list(read_log(tmp_path / "loss_log.jsonl").losses["mse"].steps) == list(range(6))
    assert _csv_steps(tmp_path / "l.csv", "mse") == list(range(6))


def test_load_state_dict_in_the_same_run_rewinds_the_sinks_too(tmp_path: Path) -> None:
    """Values a sink got past a checkpoint are replaced when the run goes back to it."""
    from nectarloss.sinks import CSVSink, TensorBoardSink

    lm = LossManager(
        tmp_path, sinks=[TensorBoardSink(tmp_path / "tb"), CSVSink(tmp_path / "l.csv")]
    )
    lm.register_loss_fn("a", nn.L1Loss())

    def call(value: float) -> None:
        lm.compute_loss_xy("a", torch.full((2,), value), torch.zeros(2))

    call(0.0)
    call(1.0)
    lm.update_loss_log()
    state = lm.state_dict()
    call(2.0)
    call(3.0)
    lm.update_loss_log()  # the sinks hold steps 2, 3 with 2.0, 3.0
    lm.load_state_dict(state)  # back to step 2: the log is cut there
    call(20.0)
    call(30.0)
    lm.close()
    assert list(read_log(tmp_path).losses["a"].values) == [0.0, 1.0, 20.0, 30.0]
    assert _csv_steps(tmp_path / "l.csv", "a") == [0, 1, 2, 3]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = [(e.step, e.value) for e in events.Scalars("loss/a/raw")]
    assert scalars == [(0, 0.0), (1, 1.0), (2, 20.0), (3, 30.0)]

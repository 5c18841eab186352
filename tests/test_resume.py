"""Checkpoint and resume: same weights, values and log lines as an uninterrupted run."""

import io
from pathlib import Path

import orjson
import pytest
import torch
from torch import nn

from nectarloss import LossManager, Schedule, read_log
from nectarloss.log import LOG_FILENAME

NUM_STEPS = 60
CHECKPOINT_AT = 23


def build(path: Path, resume: bool = False) -> LossManager:
    lm = LossManager(path, history_buffer_size=16, resume=resume)
    lm.register_loss_fn(
        "G_L1",
        nn.L1Loss(),
        schedule=Schedule(
            schedule="cosine", start_epoch=0, end_epoch=5, initial_value=100.0, target_value=1.0
        ),
        tags=["G"],
    )
    lm.register_loss_fn(
        "G_step",
        nn.MSELoss(),
        schedule=Schedule(
            schedule="linear", end_epoch=40, initial_value=0.0, target_value=2.0, unit="step"
        ),
    )
    lm.register_loss_fn("D", nn.SmoothL1Loss(), loss_weight=0.5, tags=["D"])
    return lm


def step(lm: LossManager, i: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(i)
    x, y = torch.randn(2, 5, generator=g), torch.randn(2, 5, generator=g)
    epoch = i // 10
    out = [lm.compute_loss_xy(name, x, y, epoch=epoch) for name in ("G_L1", "G_step", "D")]
    if i % 7 == 6:
        lm.update_loss_log()
    return out


def chunk_lines(path: Path) -> list[bytes]:
    return [
        line
        for line in (path / LOG_FILENAME).read_bytes().splitlines()
        if b'"kind":"chunk"' in line
    ]


def save(lm: LossManager) -> dict[str, object]:
    buf = io.BytesIO()
    torch.save(lm.state_dict(), buf)
    buf.seek(0)
    state: dict[str, object] = torch.load(buf, weights_only=True)
    return state


def test_resume_matches_uninterrupted_run_bit_for_bit(tmp_path: Path) -> None:
    straight = build(tmp_path / "a")
    outs_a = [step(straight, i) for i in range(NUM_STEPS)]
    straight.update_loss_log()

    first = build(tmp_path / "b")
    for i in range(CHECKPOINT_AT):
        step(first, i)
    state = save(first)
    for i in range(CHECKPOINT_AT, CHECKPOINT_AT + 9):  # work lost in the "crash" (incl. a flush)
        step(first, i)
    del first

    resumed = build(tmp_path / "b", resume=True)
    resumed.load_state_dict(state)
    outs_b = [step(resumed, i) for i in range(CHECKPOINT_AT, NUM_STEPS)]
    resumed.update_loss_log()

    for a, b in zip(outs_a[CHECKPOINT_AT:], outs_b, strict=True):
        for ta, tb in zip(a, b, strict=True):
            assert torch.equal(ta, tb)
    assert chunk_lines(tmp_path / "a") == chunk_lines(tmp_path / "b")
    log_a, log_b = read_log(tmp_path / "a" / LOG_FILENAME), read_log(tmp_path / "b" / LOG_FILENAME)
    assert log_a.losses == log_b.losses
    assert straight.get_loss_weights(precision=10) == resumed.get_loss_weights(precision=10)
    assert straight.get_loss_values(precision=10) == resumed.get_loss_values(precision=10)


def test_resume_into_new_directory_writes_header(tmp_path: Path) -> None:
    lm = build(tmp_path / "a")
    for i in range(20):
        step(lm, i)
    state = save(lm)
    fresh = build(tmp_path / "new")
    fresh.load_state_dict(state)
    for i in range(20, 30):
        step(fresh, i)
    fresh.update_loss_log()
    log = read_log(tmp_path / "new" / LOG_FILENAME)
    assert (
        log.losses["G_L1"].steps[0] == 14 and log.losses["G_L1"].steps[-1] == 29
    )  # unflushed 14..19 kept
    assert (
        orjson.loads((tmp_path / "new" / LOG_FILENAME).read_bytes().splitlines()[0])["kind"]
        == "header"
    )


def test_state_dict_mismatch_errors(tmp_path: Path) -> None:
    lm = build(tmp_path / "a")
    state = save(lm)
    other = LossManager(tmp_path / "c")
    other.register_loss_fn("G_L1", nn.L1Loss())
    with pytest.raises(ValueError, match=r"missing: \[\], unexpected: \['D', 'G_step'\]"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="`version` expected 1, got 99"):
        lm.load_state_dict({**state, "version": 99})


def test_state_dict_history_beyond_capacity_loads_and_is_flushed(tmp_path: Path) -> None:
    # A checkpoint taken after a failed flush holds more than a buffer's worth.
    lm = build(tmp_path / "a")
    for i in range(5):
        step(lm, i)
    state = save(lm)
    small = LossManager(tmp_path / "s", history_buffer_size=2)
    for name, entry in lm.get_registered_losses().items():
        small.register_loss_fn(name, nn.L1Loss(), schedule=entry.schedule)
    small.load_state_dict(state)
    small.update_loss_log()
    assert list(read_log(tmp_path / "s" / LOG_FILENAME).losses["D"].steps) == list(range(5))

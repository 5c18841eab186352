# ruff: noqa: E501  (one-line docstrings say what went wrong before the fix)
"""Resumes and rollbacks at the edges: stray launcher variables, sink rewinds, watch,
balancer state by name. Written by a red-team pass; each failed before its fix."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

import nectarloss.watch as watch_module
from nectarloss import LossManager, read_log
from nectarloss.balancing import DWA, UncertaintyWeighting
from nectarloss.errors import ExistingLogError, LogInUseError
from nectarloss.log import LOG_FILENAME
from nectarloss.sinks import CSVSink


def ones(value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs whose L1 loss is ``value``."""
    return torch.full((2,), float(value)), torch.zeros(2)


def csv_rows(path: Path) -> list[tuple[int, str]]:
    with path.open(newline="") as fh:
        return [(int(r[0]), r[1]) for r in list(csv.reader(fh))[1:]]


@pytest.fixture
def stray_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """A single process that inherited LOCAL_RANK=1 (a notebook under torchrun, a job step)."""
    for name in ("RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")


# ----------------------------------------------------------------- 1. deferred writer
def l1_manager(exp: Path, **kwargs: object) -> LossManager:
    lm = LossManager(exp, **kwargs)  # type: ignore[arg-type]
    lm.register_loss_fn("L", nn.L1Loss())
    return lm


@pytest.mark.usefixtures("stray_local_rank")
def test_stray_local_rank_resume_load_state_dict_cuts_the_log(tmp_path: Path) -> None:
    """Stray LOCAL_RANK, one process: load_state_dict before a flush has no writer, so it does not cut the log back and the resumed steps are logged twice."""
    exp = tmp_path / "run"
    lm = l1_manager(exp)
    for i in range(3):
        lm.compute_loss_xy("L", *ones(i))
    lm.update_loss_log()
    state = lm.state_dict()
    for i in range(3, 6):
        lm.compute_loss_xy("L", *ones(i))
    lm.close()
    del lm

    lm = l1_manager(exp, resume=True)
    lm.load_state_dict(state)
    for i in range(3, 6):
        lm.compute_loss_xy("L", *ones(i))
    lm.close()
    assert list(read_log(exp / LOG_FILENAME).losses["L"].steps) == list(range(6))


@pytest.mark.usefixtures("stray_local_rank")
def test_stray_local_rank_export_base_log_writes_the_file(tmp_path: Path) -> None:
    """Stray LOCAL_RANK, one process: export_base_log with nothing pending returns a path it never wrote."""
    exp = tmp_path / "run"
    lm = l1_manager(exp)
    lm.compute_loss_xy("L", *ones(1.0))
    lm.close()
    del lm
    lm = l1_manager(exp, resume=True)
    out = lm.export_base_log()
    lm.close()
    assert out.is_file()


@pytest.mark.usefixtures("stray_local_rank")
def test_stray_local_rank_summary_covers_the_whole_log(tmp_path: Path) -> None:
    """Stray LOCAL_RANK, one process: summary of a resumed log with nothing new shows '-' and count 1 instead of the log's statistics."""
    exp = tmp_path / "run"
    lm = l1_manager(exp)
    for i in range(4):
        lm.compute_loss_xy("L", *ones(i))
    lm.close()
    del lm
    lm = l1_manager(exp, resume=True)
    stats = lm._summary_stats()
    lm.close()
    assert stats["L"]["count"] == 4


@pytest.mark.usefixtures("stray_local_rank")
def test_stray_local_rank_existing_log_refused_at_construction(tmp_path: Path) -> None:
    """Stray LOCAL_RANK, one process: a new run on an existing log is not refused at construction (ExistingLogError only at the first flush, maybe hours later)."""
    exp = tmp_path / "run"
    with l1_manager(exp) as lm:
        lm.compute_loss_xy("L", *ones(1.0))
    with pytest.raises(ExistingLogError):
        l1_manager(exp)


@pytest.mark.usefixtures("stray_local_rank")
def test_stray_local_rank_second_manager_refused_at_construction(tmp_path: Path) -> None:
    """Stray LOCAL_RANK, one process: no lock is taken at construction, so two managers on one directory are both built (one run, one writer)."""
    exp = tmp_path / "run"
    first = l1_manager(exp)
    try:
        with pytest.raises(LogInUseError):
            l1_manager(exp)
    finally:
        first.close()


# ----------------------------------------------------------------- 2. sink rewind
def test_load_state_dict_rollback_does_not_show_steps_twice_in_csv(tmp_path: Path) -> None:
    """A rollback (load_state_dict of an earlier checkpoint) after the CSV sink was fed: the log is cut back but the CSV keeps the abandoned steps, so they appear twice."""
    csv_path = tmp_path / "l.csv"
    lm = LossManager(tmp_path / "run", sinks=[CSVSink(csv_path)])
    lm.register_loss_fn("L", nn.L1Loss())
    for i in range(3):
        lm.compute_loss_xy("L", *ones(i))
    lm.update_loss_log()
    state = lm.state_dict()
    for i in range(3, 6):
        lm.compute_loss_xy("L", *ones(i))
    lm.update_loss_log()
    lm.load_state_dict(state)  # roll back (e.g. after a divergence)
    for i in range(3, 6):
        lm.compute_loss_xy("L", *ones(10 + i))
    lm.close()
    logged = list(read_log(tmp_path / "run" / LOG_FILENAME).losses["L"].steps)
    assert logged == list(range(6))
    assert [step for step, _ in csv_rows(csv_path)] == logged


def test_resume_with_new_loss_keeps_a_removed_losses_rows_in_csv(tmp_path: Path) -> None:
    """Resume that drops loss B and adds loss C (starts at 0): the sink is rewound to 0 but only registered losses are re-fed, so B's logged rows vanish from the CSV."""
    exp, csv_path = tmp_path / "run", tmp_path / "l.csv"
    lm = LossManager(exp, sinks=[CSVSink(csv_path)])
    lm.register_loss_fn("A", nn.L1Loss())
    lm.register_loss_fn("B", nn.L1Loss())
    for _ in range(3):
        lm.compute_loss_xy("A", *ones(1.0))
        lm.compute_loss_xy("B", *ones(2.0))
    lm.close()
    del lm
    lm = LossManager(exp, resume=True, sinks=[CSVSink(csv_path)])
    lm.register_loss_fn("A", nn.L1Loss())
    lm.register_loss_fn("C", nn.L1Loss())
    lm.compute_loss_xy("A", *ones(1.0))
    lm.compute_loss_xy("C", *ones(3.0))
    lm.close()
    log = read_log(exp / LOG_FILENAME)
    assert list(log.losses["B"].steps) == [0, 1, 2]
    assert [step for step, name in csv_rows(csv_path) if name == "B"] == [0, 1, 2]


# ----------------------------------------------------------------- 3. watch
def test_watch_waits_for_a_dotted_experiment_dir_not_made_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """watch runs/lr0.001 before the run starts: the suffix makes it a file path, and once the run creates the directory poll() raises IsADirectoryError."""
    run = tmp_path / "lr0.001"
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            with LossManager(run) as lm:
                lm.register_loss_fn("G_L1", nn.L1Loss())
                lm.compute_loss_xy("G_L1", *ones(1.0))
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch_module.time, "sleep", fake_sleep)
    out = io.StringIO()
    assert watch_module.watch_log(run, interval=0.01, console=Console(file=out, width=120)) == 0
    assert "G_L1" in out.getvalue()


# ----------------------------------------------------------------- 4. balancers
def uw_manager(order: str) -> tuple[LossManager, UncertaintyWeighting]:
    uw = UncertaintyWeighting()
    lm = LossManager(enable_logging=False)
    for name in order:
        lm.register_loss_fn(name, nn.L1Loss(), balancer=uw)
    return lm, uw


def test_uncertainty_reregistered_loss_resumes_with_its_own_log_var() -> None:
    """UW: A removed and registered again (members [B, A], slots A:0 B:1); a fresh manager registering B, A loads the slots positionally, so A gets B's learnt s."""
    lm, uw = uw_manager("AB")
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([1.0, 2.0]))  # A: 1, B: 2
    lm.remove_loss("A")
    lm.register_loss_fn("A", nn.L1Loss(), balancer=uw)
    state = lm.state_dict()
    lm2, uw2 = uw_manager(list(lm.get_registered_losses()))  # the same order: B, A
    lm2.load_state_dict(state)
    assert uw2.log_vars[uw2.slots["A"]].item() == 1.0
    assert uw2.log_vars[uw2.slots["B"]].item() == 2.0


def test_uncertainty_resume_after_remove_into_fresh_manager() -> None:
    """UW: after remove_loss('B') the slot stays, so a fresh manager registering the remaining losses cannot load the checkpoint (shape (3,) vs (2,))."""
    lm, _ = uw_manager("ABC")
    lm.remove_loss("B")
    state = lm.state_dict()
    lm2, _ = uw_manager("AC")
    lm2.load_state_dict(state)


@pytest.mark.parametrize("kind", ["uw", "dwa"])
def test_balancer_state_is_not_swapped_by_registration_order(kind: str) -> None:
    """A checkpoint loaded into a manager registering the group in another order: per-member balancer state is restored by position, silently swapping the losses' weights."""

    def build(order: str) -> tuple[LossManager, nn.Module]:
        bal: nn.Module = UncertaintyWeighting() if kind == "uw" else DWA()
        lm = LossManager(enable_logging=False)
        for name in order:
            lm.register_loss_fn(name, nn.L1Loss(), balancer=bal)  # type: ignore[arg-type]
        return lm, bal

    lm, bal = build("AB")
    x = torch.ones(2, requires_grad=True)
    for epoch, (a, b) in enumerate([(1.0, 1.0), (0.5, 1.0), (0.5, 1.0)]):
        lm.compute_loss_xy("A", x * a, torch.zeros(2), epoch=epoch)
        lm.compute_loss_xy("B", x * b, torch.zeros(2), epoch=epoch)
    if kind == "uw":
        with torch.no_grad():
            bal.log_vars.copy_(torch.tensor([1.0, 2.0]))
    before = lm.get_loss_weights(precision=6)
    lm2, _ = build("BA")
    try:
        lm2.load_state_dict(lm.state_dict())
    except ValueError:
        return  # refusing is fine; a silent swap is not
    for name in "AB":
        lm2.compute_loss_xy(name, x, torch.zeros(2), epoch=2)
        lm.compute_loss_xy(name, x, torch.zeros(2), epoch=2)
    after = lm2.get_loss_weights(precision=6)
    assert after == lm.get_loss_weights(precision=6), (before, after)


def test_csv_sink_drops_a_torn_last_row_on_resume(tmp_path: Path) -> None:
    """A crash mid-row left '1' (from '12,L,...') as the CSV's last line: the resumed sink keeps it as a one-column row at step 1 instead of dropping the torn line."""
    exp, csv_path = tmp_path / "run", tmp_path / "l.csv"
    with LossManager(exp, sinks=[CSVSink(csv_path)]) as lm:
        lm.register_loss_fn("L", nn.L1Loss())
        for i in range(3):
            lm.compute_loss_xy("L", *ones(i))
    with csv_path.open("a") as fh:
        fh.write("1")  # torn: the start of the row of step 12 of a crashed run
    with LossManager(exp, resume=True, sinks=[CSVSink(csv_path)]) as lm:
        lm.register_loss_fn("L", nn.L1Loss())
        lm.compute_loss_xy("L", *ones(3))
    with csv_path.open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    assert all(len(row) == 5 for row in rows), rows

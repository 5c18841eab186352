"""Sinks in the manager: what they get, when, and what a failing sink changes (nothing)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from sink_helpers import log_rows, run_two_losses
from torch import nn

from nectarloss import LossManager
from nectarloss.errors import SinkWarning
from nectarloss.sinks import FlushedChunk, Sink, by_step, scalar_names


class Recorder(Sink):
    """Keeps every chunk it is given, and counts closes."""

    def __init__(self) -> None:
        self.writes: list[list[FlushedChunk]] = []
        self.closed = 0

    def write(self, chunks: Sequence[FlushedChunk]) -> None:
        self.writes.append(list(chunks))

    def close(self) -> None:
        self.closed += 1


class Failing(Sink):
    """Raises from its n-th write on."""

    def __init__(self, fail_from: int = 0) -> None:
        self.calls = 0
        self.fail_from = fail_from

    def write(self, chunks: Sequence[FlushedChunk]) -> None:
        self.calls += 1
        if self.calls > self.fail_from:
            raise OSError("disk of the sink is full")


def recorded_rows(sink: Recorder) -> dict[str, list[tuple[int, float, float, float]]]:
    out: dict[str, list[tuple[int, float, float, float]]] = {}
    for chunks in sink.writes:
        for chunk in chunks:
            out.setdefault(chunk.name, []).extend(chunk.rows())
    return out


def test_sinks_get_exactly_what_the_log_holds(tmp_path: Path) -> None:
    sink = Recorder()
    run_two_losses(tmp_path, [sink], steps=10, flush_every=4)
    assert recorded_rows(sink) == log_rows(tmp_path / "loss_log.jsonl")
    assert [len(w) for w in sink.writes] == [2, 2, 2]  # flushes at 4, 8 and close
    assert sink.writes[0][0].tags == ("G", "pixel") and sink.writes[0][1].tags == ()
    assert sink.writes[1][0].steps == range(4, 8)
    assert sink.closed == 1


def test_add_sink_gets_later_flushes_only(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", torch.zeros(2), torch.ones(2))
    lm.update_loss_log()
    sink = lm.add_sink(Recorder())
    assert isinstance(sink, Recorder) and lm.sinks == (sink,)
    lm.compute_loss_xy("a", torch.zeros(2), torch.ones(2))
    lm.update_loss_log()
    lm.update_loss_log()  # nothing pending: no write
    assert [[c.steps for c in w] for w in sink.writes] == [[range(1, 2)]]
    with pytest.raises(ValueError, match="added already"):
        lm.add_sink(sink)
    lm.close()


def test_automatic_flush_of_a_full_buffer_feeds_sinks(tmp_path: Path) -> None:
    sink = Recorder()
    lm = LossManager(tmp_path, history_buffer_size=3, sinks=[sink])
    lm.register_loss_fn("a", nn.L1Loss())
    for _ in range(7):
        lm.compute_loss_xy("a", torch.zeros(2), torch.ones(2))
    assert [w[0].steps for w in sink.writes] == [range(0, 3), range(3, 6)]
    lm.close()
    assert recorded_rows(sink) == log_rows(tmp_path / "loss_log.jsonl")


def test_failing_sink_is_reported_once_disabled_and_loses_nothing(tmp_path: Path) -> None:
    good, bad = Recorder(), Failing(fail_from=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm = run_two_losses(tmp_path, [bad, good], steps=12, flush_every=4)
    reports = [w for w in caught if issubclass(w.category, SinkWarning)]
    assert len(reports) == 1
    message = str(reports[0].message)
    assert "sink Failing raised OSError" in message and "disk of the sink is full" in message
    assert "--tensorboard" in message and str(tmp_path / "loss_log.jsonl") in message
    assert isinstance(reports[0].message, SinkWarning) and reports[0].message.sink == "Failing"
    assert bad.calls == 2  # the second flush failed; the third and close did not call it
    assert lm.sinks == (good,)
    rows = log_rows(tmp_path / "loss_log.jsonl")
    assert [r[0] for r in rows["G_L1"]] == list(range(12))  # every value is in the log
    assert recorded_rows(good) == rows  # the other sink got everything


def test_sink_exception_never_becomes_the_flush_error(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, sinks=[Failing()])
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", torch.zeros(2), torch.ones(2))
    with pytest.warns(SinkWarning):
        lm.update_loss_log()  # does not raise
    lm.close()
    assert [r[0] for r in log_rows(tmp_path / "loss_log.jsonl")["a"]] == [0]


def test_nonfinite_values_reach_sinks_before_a_raising_policy(tmp_path: Path) -> None:
    sink = Recorder()
    lm = LossManager(tmp_path, sinks=[sink], nonfinite="raise")
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", torch.tensor([math.inf]), torch.zeros(1))
    with pytest.raises(ValueError, match="non-finite"):
        lm.update_loss_log()
    assert math.isinf(sink.writes[0][0].values[0])
    lm.close()


def test_remove_sink_stops_feeding_and_closes_it(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.L1Loss())
    kept, removed = lm.add_sink(Recorder()), lm.add_sink(Recorder())
    lm.compute_loss_xy("a", torch.zeros(2), torch.ones(2))
    lm.update_loss_log()
    lm.compute_loss_xy("a", torch.zeros(2), torch.ones(2))  # buffered: not fed to it
    assert lm.remove_sink(removed) is removed
    assert lm.sinks == (kept,) and removed.closed == 1
    lm.close()
    assert [[c.steps for c in w] for w in removed.writes] == [[range(0, 1)]]
    assert [[c.steps for c in w] for w in kept.writes] == [[range(0, 1)], [range(1, 2)]]
    assert removed.closed == 1 and kept.closed == 1  # the manager closes only its own
    with pytest.raises(ValueError, match=r"LossManager: `sink` Recorder is not among the sinks"):
        lm.remove_sink(removed)
    with pytest.raises(TypeError, match="expected nectarloss.sinks.Sink instances, got str"):
        lm.remove_sink("tb")  # type: ignore[arg-type]


def test_bad_sink_arguments() -> None:
    with pytest.raises(TypeError, match=r"LossManager: `sinks` expected a list"):
        LossManager(enable_logging=False, sinks=Recorder())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"expected nectarloss.sinks.Sink instances, got str"):
        LossManager(enable_logging=False, sinks=["tb"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"`sinks` expected enable_logging=True"):
        LossManager(enable_logging=False, sinks=[Recorder()])
    lm = LossManager(enable_logging=False)
    with pytest.raises(ValueError, match=r"add_sink expected enable_logging=True"):
        lm.add_sink(Recorder())
    assert lm.sinks == ()


def test_flushed_chunk_checks_lengths_and_names() -> None:
    with pytest.raises(ValueError, match=r"FlushedChunk: `values` and `weights` expected 2"):
        FlushedChunk("a", range(2), (1.0,), (1.0, 1.0))
    chunk = FlushedChunk("a", range(5, 7), (0.5, 1.5), (3.0, 3.0), ("D",))
    assert chunk.weighted == (1.5, 4.5)
    assert scalar_names(chunk) == ("loss/D/a/raw", "loss/D/a/weighted", "weight/D/a")
    other = FlushedChunk("b", range(6, 7), (2.0,), (1.0,))
    assert list(by_step([chunk, other])) == [5, 6]
    assert by_step([chunk, other])[6]["loss/b/weighted"] == 2.0

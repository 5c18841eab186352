"""replay_log and ``nectarloss export LOG --tensorboard DIR --csv FILE``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sink_helpers import as_float32, log_rows, run_two_losses, tensorboard_scalars

from nectarloss.cli import main
from nectarloss.sinks import CSVSink, replay_log
from nectarloss.sinks import replay as replay_module


def test_export_tensorboard_and_csv_equal_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_two_losses(tmp_path / "run", [], steps=9)
    log = tmp_path / "run" / "loss_log.jsonl"
    tb, out_csv = tmp_path / "tb", tmp_path / "l.csv"
    assert main(["export", str(log), "--tensorboard", str(tb), "--csv", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert f"tensorboard --logdir {tb}" in printed and f"{out_csv}: 18 values" in printed
    assert "loss_log.json" not in printed  # -o not given: no NectarGAN export
    rows = log_rows(log)
    scalars = tensorboard_scalars(tb)
    assert scalars["loss/G/G_L1/weighted"] == [(s, as_float32(x)) for s, _, _, x in rows["G_L1"]]
    assert scalars["weight/mse"] == [(s, w) for s, _, w, _ in rows["mse"]]
    with out_csv.open(newline="") as fh:
        got = [(int(r["step"]), r["loss"], float(r["raw"])) for r in csv.DictReader(fh)]
    assert sorted(got) == sorted((s, n, r) for n, v in rows.items() for s, r, _, _ in v)
    # exporting again into the same directory shows each step once (the first write purges)
    assert main(["export", str(log), "--tensorboard", str(tb)]) == 0
    assert tensorboard_scalars(tb) == scalars


def test_export_without_targets_still_writes_nectargan_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_two_losses(tmp_path / "run", [], steps=2)
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(tmp_path / "run" / "loss_log.jsonl")]) == 0
    assert (tmp_path / "loss_log.json").exists()
    assert "loss_log.json" in capsys.readouterr().out


def test_replay_in_pieces_keeps_every_step_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "_PIECE", 4)
    run_two_losses(tmp_path / "run", [], steps=10)
    count = replay_log(tmp_path / "run" / "loss_log.jsonl", [CSVSink(tmp_path / "l.csv")])
    assert count == 20
    with (tmp_path / "l.csv").open(newline="") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r["loss"] == "mse"]
    assert steps == list(range(10))


def test_export_tensorboard_needs_a_dir_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "x.jsonl", "--tensorboard"])

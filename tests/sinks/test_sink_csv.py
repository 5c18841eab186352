"""CSVSink: one long-format file, read back with the csv module."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from sink_helpers import log_rows, run_two_losses

from nectarloss.sinks import CSV_COLUMNS, CSVSink, FlushedChunk


def read_csv(path: Path) -> dict[str, list[tuple[int, float, float, float]]]:
    out: dict[str, list[tuple[int, float, float, float]]] = {}
    with path.open(newline="") as fh:
        rows = csv.DictReader(fh)
        assert tuple(rows.fieldnames or ()) == CSV_COLUMNS
        for row in rows:
            out.setdefault(row["loss"], []).append(
                (int(row["step"]), float(row["raw"]), float(row["weight"]), float(row["weighted"]))
            )
    return out


def test_csv_holds_the_log_exactly(tmp_path: Path) -> None:
    run_two_losses(tmp_path / "run", [CSVSink(tmp_path / "losses.csv")], steps=10)
    assert read_csv(tmp_path / "losses.csv") == log_rows(tmp_path / "run" / "loss_log.jsonl")


def test_nonfinite_values_are_written_as_nan_and_inf(tmp_path: Path) -> None:
    sink = CSVSink(tmp_path / "l.csv")
    sink.write([FlushedChunk("a", range(2), (math.nan, -math.inf), (1.0, 2.0))])
    sink.close()
    lines = (tmp_path / "l.csv").read_text().splitlines()
    assert lines[1:] == ["0,a,nan,1.0,nan", "1,a,-inf,2.0,-inf"]


def test_new_sink_replaces_the_file_and_a_rewind_keeps_the_rows_before_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.csv"
    path.write_text("old\n")
    first = CSVSink(path)
    first.write(
        [
            FlushedChunk("a", range(4), (0.0, 1.0, 2.0, 3.0), (1.0,) * 4),
            FlushedChunk("b", range(2), (5.0, 6.0), (1.0, 1.0)),
        ]
    )
    first.close()
    resumed = CSVSink(path)
    resumed.rewind(1)  # the run goes on from step 1: rows 1 and later are written again
    resumed.write([FlushedChunk("a", range(1, 3), (10.0, 20.0), (1.0, 1.0))])
    resumed.close()
    got = read_csv(path)
    assert [(s, r) for s, r, _, _ in got["a"]] == [(0, 0.0), (1, 10.0), (2, 20.0)]
    assert [(s, r) for s, r, _, _ in got["b"]] == [(0, 5.0)]


def test_rewind_refuses_a_foreign_csv(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("x,y\n1,2\n")
    sink = CSVSink(path)
    sink.rewind(0)
    with pytest.raises(ValueError, match=r"CSVSink: `path` expected a CSV with columns"):
        sink.write([FlushedChunk("a", range(1), (1.0,), (1.0,))])


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"CSVSink: `path` expected a path"):
        CSVSink(None)  # type: ignore[arg-type]

"""console.py: the one-line value layout, summary tables, log headers and plain printing."""

import math
from pathlib import Path

import pytest
import torch
from rich.table import Table
from torch import nn

from nectarloss import LossManager, Schedule, SuperLoss, read_log
from nectarloss.console import (
    format_values,
    get_console,
    log_header_text,
    print_line,
    render_text,
    summary_table,
)
from nectarloss.log import LOG_FILENAME, LossLog

STAT_COLUMNS = ("last", "mean", "min", "max", "weight")


def table_rows(table: Table) -> list[list[str]]:
    """The table as plain text, one list of cells per body row (header and borders dropped)."""
    lines = render_text(table, width=200).splitlines()
    return [[c.strip() for c in line.split("│")[1:-1]] for line in lines if "│" in line]


def stats_row(**row: float) -> dict[str, float]:
    return {**dict.fromkeys(STAT_COLUMNS, 1.0), **row}


# -------------------------------------------------------------------------- format_values
def test_format_values_is_nectargans_line() -> None:
    line = format_values("Losses", {"G_GAN": 0.5, "G_L1": 12.3456, "D": 3})
    assert line == "Losses: G_GAN: 0.50 G_L1: 12.35 D: 3.00"


def test_format_values_precision() -> None:
    assert format_values("w", {"a": 1 / 3}, precision=4) == "w: a: 0.3333"
    assert format_values("w", {"a": 2.5}, precision=0) == "w: a: 2"


def test_format_values_of_nothing_is_the_title() -> None:
    assert format_values("Loss weights", {}) == "Loss weights:"


def test_format_values_writes_non_finite_values_as_python_does() -> None:
    assert format_values("v", {"a": math.nan, "b": math.inf, "c": -math.inf}) == (
        "v: a: nan b: inf c: -inf"
    )


# ---------------------------------------------------------------------------- summary_table
def test_summary_table_columns_title_and_rows() -> None:
    stats = {"G_L1": {"last": 0.5, "mean": 0.75, "min": 0.25, "max": 1.0, "weight": 100.0}}
    table = summary_table({**stats, "D": stats_row(count=12)}, title="run 1")
    assert table.title == "run 1"
    assert [c.header for c in table.columns] == ["loss", *STAT_COLUMNS, "count"]
    assert table_rows(table) == [
        ["G_L1", "0.5000", "0.7500", "0.2500", "1.0000", "100.0000", "0"],  # no count: 0
        ["D", "1.0000", "1.0000", "1.0000", "1.0000", "1.0000", "12"],
    ]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (math.nan, "-"),  # no value (a loss never computed, or only non-finite values)
        (0.0, "0.0000"),
        (1.5, "1.5000"),
        (-2.25, "-2.2500"),
        (9999.0, "9999.0000"),
        (12345.678, "1.235e+04"),  # from 1e4 up: significant digits, not decimals
        (-2e5, "-2e+05"),
        (0.00012345, "0.0001234"),  # below 1e-3: significant digits
        (1e-9, "1e-09"),
        (0.001, "0.0010"),
        (math.inf, "inf"),
    ],
)
def test_summary_table_number_formats(value: float, cell: str) -> None:
    (row,) = table_rows(summary_table({"a": stats_row(last=value)}))
    assert row[1] == cell


def test_summary_table_precision_and_float_count() -> None:
    (row,) = table_rows(summary_table({"a": stats_row(mean=1 / 3, count=7.0)}, precision=2))
    assert row[2] == "0.33" and row[-1] == "7"


def test_summary_table_of_no_losses_has_only_the_header() -> None:
    table = summary_table({})
    assert table.row_count == 0 and table.title is None
    assert "loss" in render_text(table)


def test_summary_table_needs_every_statistic() -> None:
    with pytest.raises(KeyError, match="weight"):
        summary_table({"a": {"last": 1.0, "mean": 1.0, "min": 1.0, "max": 1.0}})


# --------------------------------------------------------------------------- log_header_text
def test_log_header_text_of_a_written_log(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=100.0, tags=["G", "pix"])
    lm.register_loss_fn(
        "G_SL",
        nn.L1Loss(reduction="none"),
        schedule=Schedule(schedule="linear", initial_value=1.0, target_value=0.0, end_epoch=10),
        modifiers=[SuperLoss()],
    )
    lm.compute_loss_xy("G_L1", torch.ones(2), torch.zeros(2))
    lm.close()
    log = read_log(tmp_path / LOG_FILENAME)
    lines = log_header_text(log).splitlines()
    assert lines[0] == f"nectarloss.loss_log v1, created {log.header['created']}"
    assert lines[1:] == [
        "  G_L1: tags=G,pix weight=100.0 schedule=constant modifiers=-",
        "  G_SL: tags=- weight=1.0 schedule=linear modifiers=SuperLoss",
    ]


def test_log_header_text_of_a_sparse_or_truncated_header() -> None:
    log = LossLog(
        header={"format": "nectarloss.loss_log", "version": 1},
        losses={},
        info={"a": {"tags": "G", "modifiers": None}},  # not lists: shown as they are
        truncated=True,
    )
    assert log_header_text(log).splitlines() == [
        "nectarloss.loss_log v1, created None",
        "  a: tags=G weight=None schedule=constant modifiers=-",
        "  (last line truncated: a crash during a write; ignored)",
    ]


def test_log_header_text_without_losses() -> None:
    log = LossLog(header={"format": "f", "version": 2, "created": "now"}, losses={}, info={})
    assert log_header_text(log) == "f v2, created now"


# ------------------------------------------------------------------- printing and rendering
def test_print_line_prints_markup_as_text_on_one_line() -> None:
    long = "x" * 500
    with get_console().capture() as captured:
        print_line(f"[bold]G_L1[/bold]: 1.00 {long}")
    assert captured.get() == f"[bold]G_L1[/bold]: 1.00 {long}\n"


def test_get_console_is_shared() -> None:
    assert get_console() is get_console()


def test_render_text_is_plain_and_follows_the_width() -> None:
    table = Table(title="t")
    table.add_column("name")
    table.add_row("[red]a[/red]" + "b" * 100)
    text = render_text(table, width=40)
    assert "\x1b[" not in text  # no colour codes
    assert max(len(line) for line in text.splitlines()) <= 40
    assert render_text("plain words") == "plain words\n"


def test_log_header_names_a_custom_schedule_as_custom(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("c", nn.L1Loss(), schedule=Schedule(schedule=lambda s, t: 2.0))
    lm.register_loss_fn("k", nn.L1Loss())
    lm.compute_loss_xy("c", torch.ones(2), torch.zeros(2))
    lm.compute_loss_xy("k", torch.ones(2), torch.zeros(2))
    lm.close()
    text = log_header_text(read_log(tmp_path / LOG_FILENAME))
    assert "c: tags=" in text and "schedule=custom" in text
    assert "schedule=constant" in text  # k has no schedule

"""Console rendering with rich. Functions here format; they never touch tensors."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

from rich.console import Console, RenderableType
from rich.table import Table

from nectarloss.log import LossLog

__all__ = [
    "format_values",
    "get_console",
    "log_header_text",
    "print_line",
    "render_text",
    "summary_table",
]

_console: Console | None = None


def get_console() -> Console:
    """The shared rich console (created on first use)."""
    global _console
    if _console is None:
        _console = Console(highlight=False)
    return _console


def format_values(title: str, values: Mapping[str, float], precision: int = 2) -> str:
    """NectarGAN's one-line layout: ``"<title>: name: value name: value ..."``.

    Example:
        >>> format_values("Loss weights", {"G_GAN": 1.0, "G_L1": 100.0})
        'Loss weights: G_GAN: 1.00 G_L1: 100.00'
    """
    body = " ".join(f"{name}: {value:.{precision}f}" for name, value in values.items())
    return f"{title}: {body}" if body else f"{title}:"


def render_text(renderable: RenderableType, width: int = 100) -> str:
    """Render a rich object (a table, ...) to plain text."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def print_line(text: str) -> None:
    """Print ``text`` on the console without rich markup interpretation."""
    get_console().print(text, markup=False, highlight=False, soft_wrap=True)


def _fmt(value: float, precision: int) -> str:
    if math.isnan(value):
        return "-"
    return (
        f"{value:.{precision}g}"
        if abs(value) >= 1e4 or 0 < abs(value) < 1e-3
        else (f"{value:.{precision}f}")
    )


def summary_table(
    stats: Mapping[str, Mapping[str, float]], title: str | None = None, precision: int = 4
) -> Table:
    """A rich table of per-loss statistics (``last``, ``mean``, ``min``, ``max``, ``weight``)."""
    table = Table(title=title)
    table.add_column("loss", style="bold")
    for column in ("last", "mean", "min", "max", "weight", "count"):
        table.add_column(column, justify="right")
    for name, row in stats.items():
        cells = [_fmt(row[c], precision) for c in ("last", "mean", "min", "max", "weight")]
        table.add_row(name, *cells, str(int(row.get("count", 0))))
    return table


def log_header_text(log: LossLog) -> str:
    """A few lines describing a log's header: format, creation time, registered losses."""
    header = log.header
    lines = [f"{header.get('format')} v{header.get('version')}, created {header.get('created')}"]
    for name, info in log.info.items():
        tags = _joined(info.get("tags"))
        schedule = info.get("schedule")
        curve = schedule.get("schedule") if isinstance(schedule, dict) else "constant"
        mods = _joined(info.get("modifiers"))
        lines.append(
            f"  {name}: tags={tags} weight={info.get('weight')} schedule={curve} modifiers={mods}"
        )
    if log.truncated:
        lines.append("  (last line truncated: a crash during a write; ignored)")
    return "\n".join(lines)


def _joined(items: object) -> str:
    """A logged list of names as ``a,b`` (``-`` if empty); other JSON is shown as it is."""
    if not items:
        return "-"
    if isinstance(items, list):
        return ",".join(map(str, items))
    return str(items)

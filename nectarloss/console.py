"""Console rendering with rich. Functions here format; they never touch tensors."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from nectarloss.log import LossLog

__all__ = [
    "NONFINITE_MARK",
    "SPARK_BLOCKS",
    "format_values",
    "get_console",
    "log_header_text",
    "number_text",
    "print_line",
    "render_text",
    "sparkline",
    "summary_table",
]

#: The eight levels of a sparkline, lowest first.
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
#: A sparkline's mark for a NaN or infinite value.
NONFINITE_MARK = "×"

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
            + (f" balancer={info['balancer']}" if info.get("balancer") else "")
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


def sparkline(values: Sequence[float], width: int | None = None) -> str:
    """The values as a line of block characters, lowest ``▁`` to highest ``█``.

    The finite values are scaled between their minimum and maximum (all ``▄`` when they
    are equal); NaN and Inf are drawn as ``×``. With more values than ``width``, each
    character stands for a run of consecutive values: their finite mean, or ``×`` if
    the run holds a non-finite value.

    Args:
        values: The series, oldest first.
        width: The most characters; ``None`` for one per value.

    Returns:
        At most ``width`` characters (``""`` for no values).

    Raises:
        ValueError: ``width < 1``.

    Example:
        >>> sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
        '▁▂▃▄▅▆▇█'
        >>> sparkline([1.0, float("nan"), 1.0, 3.0, 5.0, 7.0], width=3)
        '×▁█'
    """
    if width is not None and width < 1:
        raise ValueError(f"sparkline: `width` expected an int >= 1, got {width}.")
    points: list[float] = list(values)
    num = len(points)
    if width is not None and num > width:
        buckets = [points[i * num // width : (i + 1) * num // width] for i in range(width)]
        points = [
            sum(b) / len(b) if all(math.isfinite(v) for v in b) else math.nan for b in buckets
        ]
    finite = [v for v in points if math.isfinite(v)]
    if not finite:
        return NONFINITE_MARK * len(points)
    low, high = min(finite), max(finite)
    top = len(SPARK_BLOCKS) - 1
    out = []
    for v in points:
        if not math.isfinite(v):
            out.append(NONFINITE_MARK)
        elif high == low:
            out.append(SPARK_BLOCKS[top // 2])
        else:
            out.append(SPARK_BLOCKS[round((v - low) / (high - low) * top)])
    return "".join(out)


def number_text(value: float, precision: int = 4) -> Text:
    """A statistic for a table cell; NaN and Inf spelled out in bold red.

    Args:
        value: The number.
        precision: Digits after the point (significant digits for very large or
            small numbers).

    Returns:
        ``"0.2500"``, ``"1.234e+05"``, or a red ``"NaN"``, ``"+Inf"``, ``"-Inf"``.

    Example:
        >>> number_text(0.25).plain, number_text(float("-inf")).plain
        ('0.2500', '-Inf')
    """
    if math.isnan(value):
        return Text("NaN", style="bold red")
    if math.isinf(value):
        return Text("+Inf" if value > 0 else "-Inf", style="bold red")
    return Text(_fmt(value, precision))

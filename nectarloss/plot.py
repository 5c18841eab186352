"""Loss graphs of a loss log, drawn with matplotlib (the optional ``plot`` extra).

:func:`plot_log` draws one panel per tag (or per loss). Each panel shows every loss's
weighted values (solid) and, when a weight other than 1 was applied, its raw values
(dashed), optionally smoothed with a moving average, and its weight schedule (dotted) on a
second y-axis, so every loss and the weight it ran with can be read off one image.

matplotlib (and NumPy, which it requires) is imported only when a graph is drawn, and
only its object-oriented API with the Agg canvas is used: no pyplot, no global backend
switch, no window. A long series is drawn from its envelope: per bucket of consecutive
points its minimum and maximum, at most ``2 * _MAX_BUCKETS`` points per line, which
draws the same image as every point (a panel is a few hundred pixels wide) in a
fraction of the time and memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nectarloss.log import LossLog, LossSeries, read_log, summarize_log

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "UNTAGGED",
    "group_losses",
    "moving_average",
    "plot_log",
    "run_title",
    "summarize_log",
]

GroupBy = Literal["tag", "loss"]

#: Panel title of the losses registered without a tag (``group_by="tag"``).
UNTAGGED = "untagged"

_PANEL_WIDTH = 6.4
_PANEL_HEIGHT = 3.6
_MAX_COLUMNS = 2
_MARKER_MAX_POINTS = 50  # short series get point markers, so a lone value stays visible
_MAX_BUCKETS = 2000  # a line keeps the min and max of at most this many runs of points


def _load_matplotlib() -> tuple[Any, Any]:
    """Import matplotlib's ``Figure`` and Agg canvas, or say how to install them.

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "nectarloss.plot: matplotlib is required to draw loss graphs; "
            "install nectarloss[plot] (pip install 'nectarloss[plot]')."
        ) from exc
    return Figure, FigureCanvasAgg


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` values that skips NaN and Inf.

    Each output is the mean of the finite values among the ``window`` values ending at
    that position; it is NaN when there are none. Needs NumPy (installed with
    matplotlib, ``nectarloss[plot]``).

    Args:
        values: The series.
        window: Window length, an int >= 1 (1 returns the values unchanged).

    Returns:
        The smoothed series, as long as ``values``.

    Raises:
        TypeError: ``window`` is not an int.
        ValueError: ``window < 1``.

    Example:
        >>> moving_average([1.0, 3.0, float("nan"), 5.0], 2)
        [1.0, 2.0, 3.0, 5.0]
    """
    _check_window(window)
    if window == 1:
        return list(values)
    import numpy as np

    smoothed: list[float] = _moving_average(np.asarray(values, dtype=np.float64), window).tolist()
    return smoothed


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """:func:`moving_average` on an array, by differences of cumulative sums."""
    import numpy as np

    finite = np.isfinite(values)
    total = np.cumsum(np.where(finite, values, 0.0))
    count = np.cumsum(finite, dtype=np.int64)
    if window < values.size:
        total[window:] = total[window:] - total[:-window]
        count[window:] = count[window:] - count[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = total / count  # 0 / 0: NaN where the window has no finite value
    return out


def _check_window(window: object) -> int:
    if isinstance(window, bool) or not isinstance(window, int):
        raise TypeError(f"plot_log: `smooth` expected an int >= 1, got {type(window).__name__}.")
    if window < 1:
        raise ValueError(f"plot_log: `smooth` expected an int >= 1, got {window}.")
    return window


def group_losses(log: LossLog, group_by: GroupBy = "tag") -> dict[str, list[str]]:
    """Panel title -> loss names, in registration order.

    With ``group_by="tag"`` a loss appears in the panel of each of its tags, and losses
    without a tag in the :data:`UNTAGGED` panel; with ``"loss"`` each loss has its own.
    Losses that were registered but never logged a value are left out.

    Raises:
        ValueError: ``group_by`` is neither ``"tag"`` nor ``"loss"``.
    """
    if group_by not in ("tag", "loss"):
        raise ValueError(f"plot_log: `group_by` expected 'tag' or 'loss', got {group_by!r}.")
    names = [n for n in log.info if n in log.losses]
    names += [n for n in log.losses if n not in log.info]
    if group_by == "loss":
        return {name: [name] for name in names}
    groups: dict[str, list[str]] = {}
    for name in names:
        tags = log.info.get(name, {}).get("tags") or [UNTAGGED]
        for tag in tags:
            groups.setdefault(str(tag), []).append(name)
    return groups


def _envelope(
    steps: np.ndarray, values: np.ndarray, max_buckets: int = _MAX_BUCKETS
) -> tuple[np.ndarray, np.ndarray]:
    """The points of a line to draw, in order.

    The finite ones (lines connect across NaN/Inf gaps); of a long series only the
    first, the last, and the minimum and maximum of each of ``max_buckets`` runs of
    consecutive points.
    """
    import numpy as np

    keep = np.isfinite(values)
    if not keep.all():
        steps, values = steps[keep], values[keep]
    n = values.size
    if n <= 2 * max_buckets:
        return steps, values
    size = -(-n // max_buckets)
    full = n // size * size
    rows = values[:full].reshape(-1, size)
    offsets = np.arange(0, full, size)
    parts = [rows.argmin(axis=1) + offsets, rows.argmax(axis=1) + offsets, [0, n - 1]]
    if full < n:
        tail = values[full:]
        parts.append([full + int(tail.argmin()), full + int(tail.argmax())])
    index = np.unique(np.concatenate(parts))
    return steps[index], values[index]


def _weight_changes(steps: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points of a ``steps-post`` weight line: where the weight changes, and the last."""
    import numpy as np

    if weights.size < 3:
        return steps, weights
    change = np.flatnonzero(weights[1:] != weights[:-1]) + 1
    index = np.concatenate(([0], change, [weights.size - 1]))
    index = np.unique(index)
    return _envelope(steps[index], weights[index])


def _thin(steps: np.ndarray, max_points: int = 2 * _MAX_BUCKETS) -> np.ndarray:
    """At most ``max_points`` of ``steps``: the first in each of as many equal step ranges."""
    import numpy as np

    if steps.size <= max_points:
        return steps
    low, high = int(steps.min()), int(steps.max())
    bins = (steps - low) * (max_points - 1) // max(high - low, 1)
    _, first = np.unique(bins, return_index=True)
    thinned: np.ndarray = steps[np.sort(first)]
    return thinned


def _draw_panel(
    ax: Axes,
    title: str,
    names: list[str],
    log: LossLog,
    colors: dict[str, Any],
    smooth: int,
    log_scale: bool,
    show_weights: bool,
) -> None:
    import numpy as np

    lines: list[Any] = []
    lowest = math.inf  # the smallest value drawn
    weight_ax: Axes | None = None
    for name in names:
        series: LossSeries = log.losses[name]
        color = colors[name]
        marker = "." if len(series.steps) <= _MARKER_MAX_POINTS else None
        steps = np.asarray(series.steps)
        raw = np.asarray(series.values)
        weights = np.asarray(series.weights)
        is_unit_weight = bool((weights == 1.0).all())
        curves = [("weighted", np.asarray(series.weighted), "-", 1.4, 1.0)]
        if not is_unit_weight:
            curves.append(("raw", raw, "--", 1.0, 0.7))
        for kind, values, style, width, alpha in curves:
            smoothed = values if smooth == 1 else _moving_average(values, smooth)
            xs, ys = _envelope(steps, smoothed)
            if ys.size:
                lowest = min(lowest, float(ys.min()))
            label = name if is_unit_weight else f"{name} ({kind})"
            lines += ax.plot(
                xs,
                ys,
                color=color,
                linestyle=style,
                linewidth=width,
                alpha=alpha,
                marker=marker,
                label=label,
            )
        bad = steps[~np.isfinite(raw)]
        if bad.size:  # NaN/Inf steps: crosses along the bottom edge
            shown = _thin(bad)
            lines += ax.plot(
                shown,
                np.full(shown.size, 0.02),
                color=color,
                linestyle="none",
                marker="x",
                transform=ax.get_xaxis_transform(),
                label=f"{name} NaN/Inf ({len(bad)})",
            )
        if show_weights:
            if weight_ax is None:
                weight_ax = ax.twinx()
                weight_ax.set_ylabel("weight")
            lines += weight_ax.plot(
                *_weight_changes(steps, weights),
                color=color,
                linewidth=1.0,
                linestyle=":",
                drawstyle="steps-post",
                label=f"{name} weight",
            )
    if weight_ax is not None:
        weight_ax.set_ylim(bottom=0.0)  # weights are >= 0: keep zero in view
    if log_scale:
        if lowest > 0 and lowest != math.inf:
            ax.set_yscale("log")
        else:  # zero or negative values (e.g. SuperLoss): log away from zero, linear near it
            ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + (f" (moving average of {smooth})" if smooth > 1 else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(lines, [str(line.get_label()) for line in lines], fontsize="small", loc="best")


def run_title(log: LossLog | Mapping[str, Any], name: str | None = None) -> str:
    """A loss graph's title: the run's name and when its log was created.

    Args:
        log: The run's log, or its header (the ``created`` time is shown in UTC, to the
            minute).
        name: The run's name, e.g. its experiment directory's; ``"loss log"`` if empty.

    Returns:
        ``"<name>: losses, started <YYYY-MM-DD HH:MM> UTC"`` (the time as logged if it
        does not parse; no time if the header has none).

    Example:
        >>> log = LossLog(header={"created": "2026-01-02T03:04:05.6+00:00"}, losses={}, info={})
        >>> run_title(log, "pix2pix_run3")
        'pix2pix_run3: losses, started 2026-01-02 03:04 UTC'
    """
    text = f"{name}: losses" if name else "loss log"
    header = log.header if isinstance(log, LossLog) else log
    created = header.get("created")
    if not created:
        return text
    try:
        when = datetime.fromisoformat(str(created))
    except ValueError:
        return f"{text}, started {created}"
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return f"{text}, started {when:%Y-%m-%d %H:%M}" + (" UTC" if when.tzinfo else "")


def plot_log(
    log_or_path: LossLog | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    group_by: GroupBy = "tag",
    log_scale: bool = False,
    smooth: int = 1,
    show_weights: bool = True,
    run_name: str | None = None,
) -> Path:
    """Draw a loss log to an image file (PNG, or any format matplotlib writes).

    One panel per tag (``group_by="tag"``) or per loss (``"loss"``). Each loss keeps one
    color across panels: weighted values solid, raw values dashed (drawn only when a
    weight other than 1 was applied), the weight dotted on the right axis. The figure's
    title names the run and when it started (:func:`run_title`).

    Args:
        log_or_path: A :class:`~nectarloss.log.LossLog` or the path of a loss log.
        out_path: Image to write; its directory is created. The suffix picks the format.
        group_by: ``"tag"`` or ``"loss"``.
        log_scale: Logarithmic value axis (symmetric-log when a value is <= 0).
        smooth: Moving-average window in steps (1 draws the values as logged).
        show_weights: Draw each loss's weight on a second y-axis.
        run_name: The run's name in the title; by default the name of the directory
            that holds the log when ``log_or_path`` is a path (the experiment directory).

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed (install ``nectarloss[plot]``).
        ValueError: Bad ``group_by`` or ``smooth``, or an unreadable log.
        FileNotFoundError: ``log_or_path`` names a missing file.
    """
    _check_window(smooth)
    log = log_or_path if isinstance(log_or_path, LossLog) else read_log(log_or_path)
    groups = group_losses(log, group_by)
    figure_cls, canvas_cls = _load_matplotlib()
    num_panels = max(len(groups), 1)
    num_cols = min(_MAX_COLUMNS, num_panels)
    num_rows = math.ceil(num_panels / num_cols)
    fig: Figure = figure_cls(
        figsize=(_PANEL_WIDTH * num_cols, _PANEL_HEIGHT * num_rows), layout="constrained"
    )
    canvas_cls(fig)
    axes = fig.subplots(num_rows, num_cols, squeeze=False)
    palette = [f"C{i}" for i in range(10)]
    names = list(dict.fromkeys(n for group in groups.values() for n in group))
    colors = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    flat = [ax for row in axes for ax in row]
    for ax, (panel, members) in zip(flat, groups.items(), strict=False):
        _draw_panel(ax, panel, members, log, colors, smooth, log_scale, show_weights)
    if not groups:
        flat[0].text(0.5, 0.5, "no values logged", ha="center", va="center")
        flat[0].set_axis_off()
    for ax in flat[len(groups) or 1 :]:
        ax.set_axis_off()
    if run_name is None and not isinstance(log_or_path, LossLog):
        run_name = Path(log_or_path).resolve().parent.name
    fig.suptitle(run_title(log, run_name))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out

"""A live terminal view of a loss log while a run writes it (``nectarloss watch LOG``).

A :class:`~nectarloss.log.LogFollower` reads only the lines appended since its last
poll; :class:`WatchState` folds them into per-loss statistics (the last value, the mean
and a sparkline of the last N values, the minimum, the weight) and :func:`render_watch`
draws one rich table per tag. :func:`watch_log` refreshes a rich ``Live`` display when
the file grows and returns 0 on Ctrl-C. It needs only a terminal, so it works over SSH.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from nectarloss.columns import column_stats
from nectarloss.console import get_console, number_text, sparkline
from nectarloss.log import LogFollower, LogUpdate, resolve_log_path
from nectarloss.plot import UNTAGGED, run_title

__all__ = ["LossStats", "WatchState", "render_watch", "watch_log"]

#: Characters of a sparkline at most; a longer window is drawn in runs of values.
SPARK_WIDTH = 32


@dataclass
class LossStats:
    """What the watch shows of one loss, updated a chunk at a time.

    Attributes:
        recent: The last ``N`` values (weighted, or raw), oldest first.
        step: The step of the last value (``None`` before any).
        last: The last value (NaN before any).
        weight: The last weight applied (NaN before any).
        min: The smallest finite value so far (NaN before any).
        count: Values so far.
        nonfinite: NaN and Inf values so far.
    """

    recent: deque[float]
    step: int | None = None
    last: float = math.nan
    weight: float = math.nan
    min: float = math.nan
    count: int = 0
    nonfinite: int = 0

    @property
    def recent_mean(self) -> float:
        """The mean of the finite values among :attr:`recent` (NaN if there are none)."""
        finite = [v for v in self.recent if math.isfinite(v)]
        return math.fsum(finite) / len(finite) if finite else math.nan


@dataclass
class WatchState:
    """Per-loss statistics of a log, fed by :class:`~nectarloss.log.LogFollower` updates.

    Memory is bounded by ``last`` values per loss, whatever the log's length.

    Args:
        last: How many recent values the mean and the sparkline cover (an int >= 1).
        weighted: Show weighted values (raw values if ``False``).

    Raises:
        ValueError: ``last < 1``.
    """

    last: int = 100
    weighted: bool = True
    header: dict[str, Any] | None = None
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    losses: dict[str, LossStats] = field(default_factory=dict)
    updated: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.last, bool) or not isinstance(self.last, int) or self.last < 1:
            raise ValueError(f"WatchState: `last` expected an int >= 1, got {self.last!r}.")

    def apply(self, update: LogUpdate) -> None:
        """Take in what a poll read (starting over when the log did)."""
        if update.reset:
            self.info.clear()
            self.losses.clear()
        if update.changed:
            self.updated = datetime.now()
        self.header = update.header
        self.info.update(update.info)
        for name, series in update.losses.items():
            if not len(series.steps):
                continue
            values = series.weighted if self.weighted else series.values
            stats = self.losses.get(name)
            if stats is None:
                stats = self.losses[name] = LossStats(recent=deque(maxlen=self.last))
            stats.recent.extend(values[-self.last :])
            summary = column_stats(values)
            if summary.num_finite:
                stats.min = summary.min if math.isnan(stats.min) else min(stats.min, summary.min)
            stats.count += summary.count
            stats.nonfinite += summary.count - summary.num_finite
            stats.step = series.steps[-1]
            stats.last = values[-1]
            stats.weight = series.weights[-1]

    def groups(self) -> dict[str, list[str]]:
        """Tag -> loss names, registration order first (untagged losses under ``untagged``)."""
        names = list(self.info) + [n for n in self.losses if n not in self.info]
        groups: dict[str, list[str]] = {}
        for name in names:
            for tag in self.info.get(name, {}).get("tags") or [UNTAGGED]:
                groups.setdefault(str(tag), []).append(name)
        return groups


def _table(tag: str, names: list[str], state: WatchState) -> Table:
    kind = "weighted" if state.weighted else "raw"
    table = Table(title=f"{tag} ({kind})", title_justify="left", expand=False)
    table.add_column("loss", style="bold", no_wrap=True)
    table.add_column("step", justify="right")
    table.add_column("last", justify="right")
    table.add_column(f"mean {state.last}", justify="right")
    table.add_column("min", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("NaN/Inf", justify="right")
    table.add_column(f"last {state.last}", no_wrap=True)
    for name in names:
        stats = state.losses.get(name)
        if stats is None:
            table.add_row(name, "-", "-", "-", "-", "-", "-", "")
            continue
        bad = Text(str(stats.nonfinite), style="bold red" if stats.nonfinite else "")
        table.add_row(
            name,
            str(stats.step),
            number_text(stats.last),
            number_text(stats.recent_mean),
            number_text(stats.min) if stats.count > stats.nonfinite else Text("-"),
            number_text(stats.weight),
            bad,
            sparkline(stats.recent, SPARK_WIDTH),
        )
    return table


def render_watch(state: WatchState, path: Path, *, hint: str = "") -> RenderableType:
    """The screen: the run's title and one table per tag (or a line while waiting).

    Args:
        state: The statistics.
        path: The log file, for the title.
        hint: A last line (e.g. how to quit).

    Returns:
        A rich renderable.
    """
    if state.header is None:
        lines = [Text(f"waiting for a loss log at {path} ...")]
        return Group(*lines, Text(hint, style="dim")) if hint else Group(*lines)
    title = run_title(state.header, path.resolve().parent.name)
    steps = [s.step for s in state.losses.values() if s.step is not None]
    when = f", new lines read at {state.updated:%H:%M:%S}" if state.updated else ""
    parts: list[RenderableType] = [
        Text(title, style="bold"),
        Text(f"{path}: last step {max(steps) if steps else '-'}{when}", style="dim"),
    ]
    parts += [_table(tag, names, state) for tag, names in state.groups().items()]
    if hint:
        parts.append(Text(hint, style="dim"))
    return Group(*parts)


def watch_log(
    path: str | os.PathLike[str],
    *,
    interval: float = 1.0,
    last: int = 100,
    weighted: bool = True,
    once: bool = False,
    console: Console | None = None,
) -> int:
    """Follow a loss log in the terminal until Ctrl-C (or render it once).

    The file is polled every ``interval`` seconds and only the lines appended since the
    last poll are parsed; the screen is redrawn when something new was read. A log that
    does not exist yet is waited for; one that is truncated or replaced is read again
    from its start.

    Args:
        path: A ``loss_log.jsonl`` or the experiment directory holding it.
        interval: Seconds between polls (> 0).
        last: How many recent values the mean and sparkline cover (>= 1).
        weighted: Show weighted values (raw if ``False``).
        once: Print the current state once and return.
        console: The rich console to draw on (the shared one by default).

    Returns:
        The exit code: 0 (also after Ctrl-C).

    Raises:
        ValueError: Bad ``interval`` or ``last``.
        FileNotFoundError: ``once`` and no log at ``path``.
        LogFormatError: A complete line of the log is corrupt.
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        raise ValueError(f"watch: `interval` expected a number > 0, got {interval!r}.")
    log_path = resolve_log_path(path)
    state = WatchState(last=last, weighted=weighted)
    out = console if console is not None else get_console()
    follower = LogFollower(log_path)
    if once:
        if not log_path.is_file():
            raise FileNotFoundError(f"watch: no loss log at {log_path}.")
        state.apply(follower.poll())
        out.print(render_watch(state, log_path))
        return 0
    hint = f"polling every {interval:g} s; Ctrl-C to quit"
    try:
        state.apply(follower.poll())
        with Live(
            render_watch(state, log_path, hint=hint),
            console=out,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            while True:
                time.sleep(interval)
                update = follower.poll()
                if update.changed:
                    state.apply(update)
                    live.update(render_watch(state, log_path, hint=hint), refresh=True)
    except KeyboardInterrupt:
        return 0

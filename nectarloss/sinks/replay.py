"""``replay_log``: feed a finished log to sinks, as if its run had flushed to them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from itertools import zip_longest

from nectarloss.log.reader import LossLog, LossSeries, read_log
from nectarloss.sinks.base import FlushedChunk, Sink

__all__ = ["replay_log"]

#: Values per chunk handed to a sink (bounds the host lists a replay builds at once).
_PIECE = 1 << 16


def _pieces(name: str, series: LossSeries, tags: tuple[str, ...]) -> Iterator[FlushedChunk]:
    """The series as chunks of consecutive steps, at most ``_PIECE`` values each."""
    steps = series.steps
    start = 0
    while start < len(steps):
        end = start + 1
        while end < len(steps) and end - start < _PIECE and steps[end] == steps[end - 1] + 1:
            end += 1
        yield FlushedChunk(
            name,
            range(steps[start], steps[end - 1] + 1),
            tuple(series.values[start:end]),
            tuple(series.weights[start:end]),
            tags,
        )
        start = end


def replay_log(log: LossLog | str | os.PathLike[str], sinks: Sequence[Sink]) -> int:
    """Write every value of a log to ``sinks``, then close them.

    Each write holds the next piece (consecutive steps, at most 65,536 values) of every
    loss, so the first write starts every loss's series, as a run's first flush does;
    each sink is first rewound to step 0 (an export into a used place replaces it).
    This is what ``nectarloss export LOG --tensorboard DIR`` / ``--csv FILE`` run; a
    sink's exception propagates.

    Args:
        log: A parsed log or its path.
        sinks: Where to write.

    Returns:
        The number of values written (per sink).

    Example:
        >>> import pathlib, tempfile, torch
        >>> from torch import nn
        >>> from nectarloss import LossManager
        >>> from nectarloss.sinks import CSVSink
        >>> out = pathlib.Path(tempfile.mkdtemp())
        >>> with LossManager(out / "run") as lm:
        ...     _ = lm.register_loss_fn("L1", nn.L1Loss(), loss_weight=2.0)
        ...     _ = lm.compute_loss_xy("L1", torch.zeros(2), torch.ones(2))
        >>> replay_log(out / "run" / "loss_log.jsonl", [CSVSink(out / "l1.csv")])
        1
        >>> print((out / "l1.csv").read_text(), end="")
        step,loss,raw,weight,weighted
        0,L1,1.0,2.0,2.0
    """
    parsed = log if isinstance(log, LossLog) else read_log(log)
    streams = [
        _pieces(name, series, tuple(parsed.info.get(name, {}).get("tags", ())))
        for name, series in parsed.losses.items()
    ]
    for sink in sinks:  # the log from its start: what a sink's place holds goes
        sink.rewind(0)
    count = 0
    for round_ in zip_longest(*streams):
        chunks = [chunk for chunk in round_ if chunk is not None]
        for sink in sinks:
            sink.write(chunks)
        count += sum(len(chunk.steps) for chunk in chunks)
    for sink in sinks:
        sink.close()
    return count

"""``TensorBoardSink``: each flush's values as TensorBoard scalars at their true steps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from nectarloss.sinks.base import FlushedChunk, Sink, import_optional, scalar_names
from nectarloss.validation import check_path, check_positive

__all__ = ["TensorBoardSink"]


class TensorBoardSink(Sink):
    """Writes TensorBoard event files through ``torch.utils.tensorboard``.

    Per loss and step: the raw value under ``loss/<tag>/<name>/raw``, the weighted one
    under ``loss/<tag>/<name>/weighted`` and the weight under ``weight/<tag>/<name>``
    (see :func:`~nectarloss.sinks.scalar_names`), at the loss's own step number. NaN
    and Inf are written as they are (TensorBoard stores and shows them).

    The event writer is created at the first flush, so the sink may be built before a
    process group exists. Attached to a manager, it is created with ``purge_step`` set
    to the earliest step the run goes on from (:meth:`rewind`): TensorBoard then hides
    the events an earlier run left in ``log_dir`` at that step and later, for every tag,
    and the manager's first write holds the log's values from that step on for losses
    that ran ahead, so a run resumed from a checkpoint shows each step once, as the log
    does. After :meth:`close` a later flush opens a new event file without purging.

    Args:
        log_dir: The run's directory (``tensorboard --logdir`` its parent or itself).
        flush_secs: How often the writer flushes in the background, besides after each
            flush of the manager.

    Raises:
        MissingDependencyError: tensorboard is not installed.
        TypeError: ``log_dir`` is not a path.

    Example:
        >>> import tempfile
        >>> from nectarloss.sinks import FlushedChunk
        >>> sink = TensorBoardSink(tempfile.mkdtemp())
        >>> sink.write([FlushedChunk("G_L1", range(2), (0.5, 0.25), (2.0, 2.0), ("G",))])
        >>> sink.close()
    """

    def __init__(self, log_dir: str | os.PathLike[str], flush_secs: float = 120.0) -> None:
        self.log_dir = check_path("TensorBoardSink", "log_dir", log_dir)
        self.flush_secs = check_positive("TensorBoardSink", "flush_secs", flush_secs)
        self._tensorboard = import_optional(
            "torch.utils.tensorboard", "TensorBoardSink", "tensorboard", package="tensorboard"
        )
        self._writer: Any = None
        self._purge_step: int | None = None  # set by rewind(): the first writer purges

    rewinds = True

    def rewind(self, step: int) -> None:
        """Hide what the directory holds at ``step`` and later (the next writer purges)."""
        self.close()  # an open event file: the next write opens one that purges
        self._purge_step = step

    def write(self, chunks: Sequence[FlushedChunk]) -> None:
        """Add every value of ``chunks`` as scalars, then flush the event file."""
        if self._writer is None:
            self._writer = self._tensorboard.SummaryWriter(
                str(self.log_dir), flush_secs=self.flush_secs, purge_step=self._purge_step
            )
            self._purge_step = None
        writer = self._writer
        for chunk in chunks:
            raw_tag, weighted_tag, weight_tag = scalar_names(chunk)
            for step, raw, weight, weighted in chunk.rows():
                writer.add_scalar(raw_tag, raw, step)
                writer.add_scalar(weighted_tag, weighted, step)
                writer.add_scalar(weight_tag, weight, step)
        writer.flush()

    def close(self) -> None:
        """Flush and close the event file (a later write opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __repr__(self) -> str:
        return f"TensorBoardSink({str(self.log_dir)!r})"

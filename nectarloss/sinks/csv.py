"""``CSVSink``: every flushed value as one row of a tidy, long-format CSV file."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from nectarloss.sinks.base import FlushedChunk, Sink
from nectarloss.validation import check_path

__all__ = ["CSV_COLUMNS", "CSVSink"]

#: The header of a :class:`CSVSink` file.
CSV_COLUMNS = ("step", "loss", "raw", "weight", "weighted")


class CSVSink(Sink):
    """Appends ``step,loss,raw,weight,weighted`` rows, one per loss and step.

    Numbers are written as Python writes floats (the shortest text that reads back to
    the same float64), NaN and Inf as ``nan``, ``inf``, ``-inf`` (``float()`` and
    pandas read them). Rows of one flush are grouped by loss, in step order. The file
    is opened at the first flush and each flush's rows are flushed to the OS.

    Args:
        path: The CSV file. Attached to a manager, its first write keeps the rows an
            earlier run left before the earliest step this run goes on from
            (:meth:`rewind`) and drops the rest, which the run writes again (a fresh
            run goes on from step 0: the file is replaced); so a run resumed from a
            checkpoint holds each step once, as its log does. Without a rewind (fed
            by hand, or :func:`~nectarloss.sinks.replay_log`) the first write replaces
            the file.

    Raises:
        TypeError: ``path`` is not a path.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "losses.csv"
        >>> sink = CSVSink(path)
        >>> sink.write([FlushedChunk("G_L1", range(3, 5), (0.5, float("nan")), (2.0, 2.0))])
        >>> sink.close()
        >>> print(path.read_text(), end="")
        step,loss,raw,weight,weighted
        3,G_L1,0.5,2.0,1.0
        4,G_L1,nan,2.0,nan
    """

    rewinds = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_path("CSVSink", "path", path)
        self._file: TextIO | None = None
        #: Rows before this step are kept at the next open (``None``: replace the file).
        self._keep_before: int | None = None

    def rewind(self, step: int) -> None:
        """Keep the file's rows before ``step`` at the next write; drop the others."""
        self.close()
        self._keep_before = step

    def _open(self) -> TextIO:
        keep_before = self._keep_before
        kept: list[list[str]] = []
        if keep_before is not None and self.path.exists():
            with self.path.open(newline="") as fh:
                rows = csv.reader(fh)
                header = next(rows, None)
                if header is not None and tuple(header) != CSV_COLUMNS:
                    raise ValueError(
                        f"CSVSink: `path` expected a CSV with columns {','.join(CSV_COLUMNS)}, "
                        f"got {','.join(header)} in {self.path}."
                    )
                kept = [  # a torn last row (a crash mid-write) is dropped
                    row
                    for row in rows
                    if len(row) == len(CSV_COLUMNS)
                    and row[0].isdigit()
                    and int(row[0]) < keep_before
                ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(CSV_COLUMNS)
            out.writerows(kept)
        os.replace(partial, self.path)
        return self.path.open("a", newline="")

    def write(self, chunks: Sequence[FlushedChunk]) -> None:
        """Append one row per value of ``chunks`` and flush the file."""
        if self._file is None:
            self._file = self._open()
        out = csv.writer(self._file)
        for chunk in chunks:
            out.writerows((step, chunk.name, *rest) for step, *rest in chunk.rows())
        self._file.flush()

    def close(self) -> None:
        """Close the file (a later write appends to it)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._keep_before = sys.maxsize  # a later write appends: keep every row

    def __repr__(self) -> str:
        return f"CSVSink({str(self.path)!r})"

"""``RunLog``: the manager's side of its log, from device buffers to appended lines.

It owns the writer (rank 0 only under DDP), which losses the log has described, the
non-finite policy and counts, and the one operation that touches all of them: the
flush. A flush copies the pending buffers to the host once (merged over ranks under
DDP), hands the chunks to :meth:`LossLogWriter.append_flush`, clears what was written,
feeds the same host values to the sinks (rank 0), and reports non-finite values by
policy. It also checks and rewinds the log position
a checkpoint recorded.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from nectarloss.distributed import (
    any_rank_failed,
    is_distributed,
    is_main_rank,
    launched_as_later_rank,
    world_size,
)
from nectarloss.errors import LogWriteError, NonFiniteLossError, NonFiniteLossWarning, SinkWarning
from nectarloss.log import LOG_FILENAME, LossLogWriter, export_nectargan, read_log
from nectarloss.log.format import chunk_line, nonfinite_indices
from nectarloss.records import LMLoss
from nectarloss.shutdown import flushing
from nectarloss.sinks.base import FlushedChunk, Sink
from nectarloss.transfer import pending_to_host

__all__ = ["NonFinitePolicy", "RunLog"]

NonFinitePolicy = Literal["warn", "raise", "ignore"]


class RunLog:
    """The log of one manager's run: writing, resuming, non-finite reporting.

    Args:
        directory: The experiment directory (created if missing).
        lock: The manager's lock; each flush holds it, so calls record whole values.
        fsync: ``os.fsync`` after each append.
        nonfinite: ``"warn"``, ``"raise"`` or ``"ignore"`` non-finite values at flush.
        mode: ``"new"``, ``"resume"`` or ``"overwrite"`` an existing log.
        sinks: Fed each written flush (rank 0 only), after the log line and the clear.

    Raises:
        LogWriteError: The directory cannot be created.
        LogInUseError / ExistingLogError / LogFormatError: from the writer.
    """

    def __init__(
        self,
        directory: Path,
        lock: threading.RLock,
        fsync: bool = False,
        nonfinite: NonFinitePolicy = "warn",
        mode: Literal["new", "resume", "overwrite"] = "new",
        sinks: Sequence[Sink] = (),
    ) -> None:
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(
                f"LossManager: `experiment_dir` expected a directory, got the file "
                f"{str(directory)!r}."
            )
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LogWriteError(
                f"LossManager: `experiment_dir` {str(directory)!r} could not be created ({exc})."
            ) from exc
        self.path = directory / LOG_FILENAME
        self.nonfinite = nonfinite
        self._lock = lock
        self._fsync, self._mode = fsync, mode
        #: Under DDP only rank 0 writes; the other ranks still take part in each flush.
        self._writer: LossLogWriter | None = None
        #: Built before its process group in a process a launcher started as a later
        #: rank (Lightning's ddp, torchrun): the writer waits until the rank is known.
        self._writer_deferred = launched_as_later_rank()
        if is_main_rank() and not self._writer_deferred:
            self._writer = LossLogWriter(self.path, fsync=fsync, mode=mode)
        self.logged_names: set[str] = set()
        self.nonfinite_counts: dict[str, int] = {}
        #: Per loss name, the step its series goes on from when it is registered (the
        #: step after its last one in a resumed log, or in a removed loss's series).
        self.next_steps: dict[str, int] = {}
        #: The most ranks a flush has merged (a flush after the group is gone must not
        #: write one rank's values as if they were the merged ones).
        self.num_ranks = world_size()
        self._flushing = False
        self.sinks: list[Sink] = list(sinks)
        #: Sinks that have had their first write (ids): a new one is rewound first.
        self._fed_sinks: set[int] = set()
        if mode == "resume" and self.path.exists() and self.path.stat().st_size:
            self._continue(self.path)  # every rank reads it, so step numbers agree

    @property
    def writer(self) -> LossLogWriter | None:
        """The log's writer on the rank that writes (``None`` on the others).

        A manager built before its process group, in a process launched as a later
        rank, has none until it is needed: then the group says its rank (rank 0 opens
        it), or, with no group after all, this one process opens it.
        """
        if self._writer_deferred:
            if not is_distributed() or is_main_rank():
                self._writer = LossLogWriter(self.path, fsync=self._fsync, mode=self._mode)
            self._writer_deferred = False  # only once the writer exists, if it must
        return self._writer

    def _continue(self, path: Path) -> None:
        log = read_log(path)
        self.logged_names = set(log.info)
        self.next_steps = {
            name: int(series.steps[-1]) + 1 for name, series in log.losses.items() if series.steps
        }

    # -- flushing ------------------------------------------------------------------------
    def flush(self, entries: Sequence[LMLoss], registry: Sequence[LMLoss]) -> int:
        """Write the buffered values of ``entries``; returns how many were written.

        ``registry`` is every registered loss (in order): the header describes them,
        and under DDP every rank merges all of them. Serialised with the per-step
        bookkeeping; a flush re-entered on its own thread (a signal handler calling
        ``close`` in the middle of one) does nothing, so no chunk is written twice.
        """
        with self._lock, flushing():
            if self._flushing:
                return 0
            self._flushing = True
            try:
                return self._write_pending(entries, registry)
            finally:
                self._flushing = False

    def _write_pending(self, entries: Sequence[LMLoss], registry: Sequence[LMLoss]) -> int:
        for entry in registry:  # what compiled or captured steps recorded, in order
            entry.settle()
        # where each loss goes on from, and what the log held, for sinks' first writes
        starts = {e.name: e.history.first_step for e in registry}
        known = frozenset(self.logged_names)
        across_ranks = self._check_ranks(registry)
        if across_ranks:  # the one collective: every rank merges its whole registry
            entries = registry
        elif not any(e.history.count for e in entries):
            return 0
        chunks = pending_to_host(
            [e.name for e in entries],
            [e.history.values_tensor() for e in entries],
            [e.history.pending_weights() for e in entries],
            [e.history.first_step for e in entries],
            across_ranks=across_ranks,
        )
        pending = [(e, chunk) for e, chunk in zip(entries, chunks, strict=True) if chunk.steps]
        if not pending:
            return 0
        new = [e for e in registry if e.name not in self.logged_names]
        nonfinite = [nonfinite_indices(chunk.values) for _, chunk in pending]
        writer = self.writer  # None on ranks other than 0 under DDP: they merge, not write
        if writer is not None:
            try:
                writer.append_flush(
                    [
                        chunk_line(e.name, chunk.steps, chunk.values, chunk.weights, bad)
                        for (e, chunk), bad in zip(pending, nonfinite, strict=True)
                    ],
                    {e.name: e.describe() for e in new},
                )
            except Exception as exc:
                if across_ranks:
                    any_rank_failed(True)  # so the other ranks keep their values too
                if not isinstance(exc, OSError):
                    raise
                raise LogWriteError(
                    f"LossManager: could not write {writer.path} ({exc}); the buffered "
                    "values are kept and will be written by the next flush."
                ) from exc
            self.logged_names.update(e.name for e in new)
        if across_ranks and any_rank_failed(False):  # every rank keeps what rank 0 kept
            raise LogWriteError(
                "LossManager: rank 0 could not write the log; the buffered values are kept "
                "on every rank and will be written by the next flush."
            )
        count = 0
        for e, chunk in pending:
            count += len(chunk.steps)
            e.history.clear()
            if across_ranks:  # ranks that did not compute a loss go on from its last step
                e.num_steps = e.history.first_step = chunk.steps.stop
        bad_steps = {
            e.name: [chunk.steps[i] for i in bad]
            for (e, chunk), bad in zip(pending, nonfinite, strict=True)
            if bad
        }
        if self.sinks and writer is not None and is_main_rank():  # after the write and clear
            self._feed_sinks(
                [
                    FlushedChunk(e.name, c.steps, tuple(c.values), tuple(c.weights), tuple(e.tags))
                    for e, c in pending
                ],
                starts,
                known,
                {e.name: tuple(e.tags) for e in registry},
            )
        if bad_steps:
            self._report_nonfinite(bad_steps)
        return count

    # -- sinks ----------------------------------------------------------------------------
    def _feed_sinks(
        self,
        chunks: list[FlushedChunk],
        starts: Mapping[str, int],
        known: frozenset[str],
        tags: Mapping[str, tuple[str, ...]],
    ) -> None:
        """Hand a written flush to every sink; one that raises is reported and dropped.

        A sink's first write follows its :meth:`~Sink.rewind` to the earliest step a
        loss the log knew goes on from, and also holds the log's values from there on
        up to where each loss goes on (:meth:`_with_earlier`).
        """
        logged = [starts[name] for name in starts if name in known]
        first = min(logged) if logged else min(starts.values(), default=0)
        rewound: list[FlushedChunk] | None = None
        for sink in list(self.sinks):
            given = chunks
            try:
                if id(sink) not in self._fed_sinks and sink.rewinds:
                    if rewound is None:
                        rewound = self._with_earlier(chunks, starts, known, tags, first)
                    sink.rewind(first)
                    given = rewound
                self._fed_sinks.add(id(sink))
                sink.write(given)
            except Exception as exc:
                self._drop_sink(sink, exc, "took a flush")

    def _with_earlier(
        self,
        chunks: list[FlushedChunk],
        starts: Mapping[str, int],
        known: frozenset[str],
        tags: Mapping[str, tuple[str, ...]],
        first: int,
    ) -> list[FlushedChunk]:
        """``chunks``, with each logged loss's values from step ``first`` on put first.

        A loss that goes on after ``first`` (it ran ahead), and one the log holds but
        this manager no longer registers, have such values; reading them reads the log
        once (the first write of a sink in a resumed run).
        """
        registered = set(starts)
        if not any(starts[n] > first for n in registered & known) and known <= registered:
            return chunks
        log = read_log(self.path)
        new = {chunk.name: chunk for chunk in chunks}
        out: list[FlushedChunk] = []
        for name in [*starts, *(n for n in log.losses if n not in registered)]:
            chunk = new.pop(name, None)
            series = log.losses.get(name) if name in known else None
            end = starts.get(name)
            rows = (
                []
                if series is None
                else [
                    (step, value, weight)
                    for step, value, weight in zip(
                        series.steps, series.values, series.weights, strict=True
                    )
                    if step >= first and (end is None or step < end)
                ]
            )
            if chunk is not None:
                rows += list(zip(chunk.steps, chunk.values, chunk.weights, strict=True))
            if not rows:
                continue
            steps, values, weights = zip(*rows, strict=True)
            span = range(steps[0], steps[-1] + 1)
            if list(steps) != list(span):  # not one run of steps: the new values alone
                out.extend([] if chunk is None else [chunk])
                continue
            info_tags = tags.get(name) or tuple(log.info.get(name, {}).get("tags") or ())
            out.append(FlushedChunk(name, span, values, weights, info_tags))
        out.extend(new.values())  # losses not registered any more (none, normally)
        return out

    def _drop_sink(self, sink: Sink, exc: Exception, doing: str) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)
        with contextlib.suppress(Exception):
            sink.close()
        warnings.warn(
            SinkWarning(
                f"LossManager: sink {sink.name} raised {type(exc).__name__} when it {doing} "
                f"({exc}); it is disabled. Every value is in {self.path}; `nectarloss export "
                f"{self.path} --tensorboard DIR` (or `--csv FILE`) rebuilds what it missed.",
                sink.name,
            ),
            stacklevel=2,
        )

    def remove_sink(self, sink: Sink) -> None:
        """Stop feeding ``sink``, then close it (what its ``close`` raises propagates)."""
        self.sinks.remove(sink)
        self._fed_sinks.discard(id(sink))
        sink.close()

    def close_sinks(self) -> None:
        """Close every sink (one that raises is reported and dropped); they stay added."""
        for sink in list(self.sinks):
            try:
                sink.close()
            except Exception as exc:
                self._drop_sink(sink, exc, "was closed")

    def _check_ranks(self, registry: Sequence[LMLoss]) -> bool:
        """Whether this flush merges ranks; refuse if the process group is gone.

        Only values are refused: with nothing buffered (a manager closed before
        ``destroy_process_group()``, closed again at exit) there is nothing to merge.
        """
        if is_distributed():
            self.num_ranks = max(self.num_ranks, world_size())
            return True
        if self.num_ranks > 1 and any(e.history.count for e in registry):
            raise RuntimeError(
                f"LossManager: this manager ran under torch.distributed with "
                f"{self.num_ranks} ranks, but the process group is gone, so the ranks' "
                "values cannot be merged; flush (update_loss_log() or close()) on every rank "
                "before destroy_process_group(). The buffered values are kept."
            )
        return False

    def flush_full(self, entry: LMLoss, step: int, registry: Sequence[LMLoss]) -> None:
        """The automatic flush of ``entry``'s full buffer; ``step`` is already in it."""
        if is_distributed():  # a flush is a collective: never start one inside compute_loss
            entry.history.postpone_flush()
            return
        steps = entry.history.steps
        try:
            self.flush([entry], registry)
        except LogWriteError as exc:
            entry.history.postpone_flush()
            raise LogWriteError(
                f"{entry.name}: the automatic flush of its full buffer (steps "
                f"{steps.start}-{steps.stop - 1}) failed; every value, including this "
                f"call's (step {step}), is kept and the flush is retried "
                f"{entry.history.capacity} values later or at the next update_loss_log(). "
                f"Cause: {exc}"
            ) from exc
        except NonFiniteLossError as exc:
            raise NonFiniteLossError(
                f"{entry.name}: the automatic flush of its full buffer (steps "
                f"{steps.start}-{steps.stop - 1}, written) found earlier non-finite values; "
                f"this call (step {step}) is recorded. {exc}"
            ) from exc

    def _report_nonfinite(self, bad_steps: dict[str, list[int]]) -> None:
        for name, steps in bad_steps.items():
            self.nonfinite_counts[name] = self.nonfinite_counts.get(name, 0) + len(steps)
        if self.nonfinite == "ignore":
            return
        shown = "; ".join(
            f"{name} at step(s) {steps[:10]}" + (" ..." if len(steps) > 10 else "")
            for name, steps in bad_steps.items()
        )
        message = f"LossManager: non-finite loss values (NaN/Inf), logged as such: {shown}."
        if self.nonfinite == "raise":
            raise NonFiniteLossError(message)
        warnings.warn(message, NonFiniteLossWarning, stacklevel=5)

    # -- export ---------------------------------------------------------------------------
    def export_nectargan(self, out: Path, registry: Sequence[LMLoss]) -> Path:
        """Write NectarGAN's ``loss_log.json`` from the log (rank 0; others return ``out``).

        An empty log first gets its header, so the export names every loss.
        """
        writer = self.writer
        if writer is None:
            return out
        with self._lock:
            if writer.size == 0:
                writer.append_flush([], {e.name: e.describe() for e in registry})
                self.logged_names.update(e.name for e in registry)
        return export_nectargan(writer.path, out)

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, Any] | None:
        """The log position for a checkpoint (``None`` on ranks that do not write)."""
        writer = self.writer
        if writer is None:
            return None
        header = writer.header()
        return {"bytes": writer.size, "created": None if header is None else header["created"]}

    def check_position(self, saved: object) -> None:
        """Raise ``ValueError`` unless ``saved`` (from :meth:`state`) fits this log."""
        writer = self.writer
        if writer is None or saved is None:
            return
        owner = "LossManager: state dict `log`"
        if not isinstance(saved, Mapping):
            raise ValueError(f"{owner} expected a mapping, got {type(saved).__name__}.")
        offset = saved.get("bytes")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"{owner} `bytes` expected an int >= 0, got {offset!r}.")
        header = writer.header()
        if offset == 0 or header is None:
            return  # a fresh log: the next flush writes a header
        if header.get("created") != saved.get("created") or writer.size < offset:
            raise ValueError(
                f"LossManager: {writer.path} is not the log this checkpoint was written "
                "with (its header or length differs); resume in the original experiment_dir "
                "or in a new, empty one."
            )
        if not writer.ends_a_line(offset):
            raise ValueError(
                f"{owner} `bytes` = {offset} does not end a line of {writer.path}; the "
                "checkpoint does not belong to this log."
            )

    def rewind(self, saved: Mapping[str, Any] | None, logged_names: Sequence[str]) -> None:
        """Cut the log back to a checked checkpoint position and restore what it named.

        Sinks fed before are rewound again at their next write: what they got past the
        checkpoint is written again, as the log's lines are.
        """
        self.logged_names = set(logged_names)
        self._fed_sinks.clear()
        writer = self.writer
        if writer is None or saved is None:
            return
        if saved["bytes"] == 0 or writer.header() is None:
            if writer.size:
                writer.truncate(0)
            self.logged_names = set()  # a fresh log: the next flush writes a header
        elif writer.size > saved["bytes"]:
            writer.truncate(saved["bytes"])

    def release(self) -> None:
        """Release the writer's lock (a later flush takes it again)."""
        if self._writer is not None:
            self._writer.close()

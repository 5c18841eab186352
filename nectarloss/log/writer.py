"""``LossLogWriter``: appends whole lines to a loss log, one writer at a time."""

from __future__ import annotations

import errno
import os
import sys
import weakref
from pathlib import Path
from typing import Any, Literal

import orjson

from nectarloss.errors import ExistingLogError, LogFormatError, LogInUseError
from nectarloss.log.format import check_header, header_line

__all__ = ["LossLogWriter"]


class LossLogWriter:
    """Appends lines to a loss log; never rewrites what is there. One writer per log.

    The writer holds an exclusive lock on ``<log>.lock`` (``fcntl.flock``; the OS
    releases it when the process dies) from construction until :meth:`close`, so a
    second writer on the same log, in this process or another, is refused.

    Args:
        path: The ``.jsonl`` file. Its parent directory must exist.
        fsync: Whether to ``os.fsync`` after each append (slower, survives power loss).
        mode: What to do with a log that already holds lines: ``"new"`` refuses it
            (:class:`ExistingLogError`), ``"resume"`` appends to it after checking its
            header and cutting a crash-torn last line, ``"overwrite"`` empties it.

    Raises:
        LogInUseError: Another writer holds the log.
        ExistingLogError: ``mode="new"`` and the log is not empty.
        LogFormatError: ``mode="resume"`` and the file is not a nectarloss log.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fsync: bool = False,
        mode: Literal["new", "resume", "overwrite"] = "new",
    ) -> None:
        if mode not in ("new", "resume", "overwrite"):
            raise ValueError(
                f"LossLogWriter: `mode` expected 'new', 'resume' or 'overwrite', got {mode!r}."
            )
        self.path = Path(path)
        self.fsync = fsync
        self._lock_fd: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._pending_cut: int | None = None
        self._pid = os.getpid()
        #: The size and header time this writer left the log with (checked on re-locking).
        self._known_size: int | None = None
        self._known_created: str | None = None
        self.acquire()
        try:
            self._has_header = self._open_existing(mode)
            header = self.header() if self._has_header else None
        except BaseException:
            self.close()
            raise
        self._known_size = self.size
        self._known_created = None if header is None else header.get("created")

    # -- ownership ---------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        """The lock file next to the log."""
        return self.path.with_name(self.path.name + ".lock")

    def acquire(self) -> None:
        """Take the log's lock (a no-op if this writer holds it).

        Raises:
            LogInUseError: Another writer holds it.
        """
        if os.getpid() != self._pid:
            raise LogInUseError(
                f"{self.path}: this log belongs to the LossManager of process {self._pid}; "
                f"process {os.getpid()} is a fork of it (a DataLoader worker?) and may not "
                "write it. Compute losses in the process that built the manager, or give "
                "the child its own manager and experiment_dir."
            )
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
        try:
            _lock_exclusive(fd)
        except BlockingIOError:
            os.close(fd)
            raise LogInUseError(
                f"{self.path.parent}: its log {self.path.name} is being written by another "
                "LossManager (in this process or another one); a log has one writer at a "
                "time. Close that manager first, or use a different experiment_dir."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)
        if self._known_size is None:  # first lock: nothing to compare yet
            return
        header = self.header() if self.size else None
        now = (self.size, None if header is None else header.get("created"))
        if now != (self._known_size, self._known_created):
            self.close()
            raise LogInUseError(
                f"{self.path}: the log changed while this writer had released it "
                f"({self._known_size} -> {now[0]} bytes, header {self._known_created!r} -> "
                f"{now[1]!r}); another run took it over."
            )

    def close(self) -> None:
        """Release the lock. :meth:`append` takes it again if the writer is used later."""
        if self._finalizer is not None:
            self._finalizer()  # closing the descriptor releases the flock
        self._finalizer = None
        self._lock_fd = None

    @property
    def is_locked(self) -> bool:
        """Whether this writer holds the log's lock."""
        return self._lock_fd is not None

    def _open_existing(self, mode: str) -> bool:
        if self.size == 0:
            return False
        if mode == "overwrite":
            self.truncate(0)
            return False
        if mode == "new":
            raise ExistingLogError(
                f"{self.path} already holds the log of a run ({self.size} bytes). Pass "
                "resume=True to continue that run's log, overwrite=True to replace it, or "
                "use a new experiment_dir."
            )
        self._check_header()
        self._drop_partial_last_line()
        return self.size > 0

    def _check_header(self) -> None:
        with self.path.open("rb") as fh:
            first = fh.readline()
        try:
            head = orjson.loads(first)
        except orjson.JSONDecodeError as exc:
            raise LogFormatError(
                f"{self.path}: line 1 is not a nectarloss log header ({exc}); pass "
                "overwrite=True to replace the file."
            ) from exc
        if not isinstance(head, dict):
            raise LogFormatError(
                f"{self.path}: line 1 is not a nectarloss log header; pass overwrite=True "
                "to replace the file."
            )
        try:
            check_header(head, f"{self.path}: line 1")
        except LogFormatError as exc:
            raise LogFormatError(f"{exc} Pass overwrite=True to replace the file.") from None

    def _drop_partial_last_line(self) -> None:
        """Cut a last line left without its newline by a crash, so appends stay valid.

        Reads only the file's tail (back to the last newline), never the whole log.
        """
        chunk = 1 << 16
        with self.path.open("r+b") as fh:
            end = fh.seek(0, os.SEEK_END)
            position = end
            while position > 0:
                start = max(position - chunk, 0)
                fh.seek(start)
                newline = fh.read(position - start).rfind(b"\n")
                if newline >= 0:
                    cut = start + newline + 1
                    break
                position = start
            else:
                cut = 0
            if cut < end:
                fh.truncate(cut)
        self._known_size = cut

    # -- reading the file's state ------------------------------------------------------
    @property
    def size(self) -> int:
        """Current size of the log file in bytes (0 if it does not exist)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def header(self) -> dict[str, Any] | None:
        """The parsed header line, or ``None`` for an empty log."""
        if self.size == 0:
            return None
        with self.path.open("rb") as fh:
            head: dict[str, Any] = orjson.loads(fh.readline())
        return head

    def ends_a_line(self, offset: int) -> bool:
        """Whether ``offset`` is 0 or just past a newline of the log."""
        if offset == 0:
            return True
        if not 0 < offset <= self.size:
            return False
        with self.path.open("rb") as fh:
            fh.seek(offset - 1)
            return fh.read(1) == b"\n"

    @property
    def has_header(self) -> bool:
        """Whether the file already starts with a header line."""
        return self._has_header

    # -- writing -----------------------------------------------------------------------
    def truncate(self, size: int) -> None:
        """Cut the log back to ``size`` bytes (a resume discarding lines written after it)."""
        os.truncate(self.path, size)
        self._has_header = size > 0
        self._known_size = size
        if size == 0:
            self._known_created = None

    def append(self, lines: list[dict[str, Any]]) -> int:
        """Append ``lines`` with unbuffered writes. Returns the number of bytes written.

        Either every line is written or none: a write the kernel accepted only in part
        (a full disk, a file-size limit) or an exception in the middle (a signal) is
        cut back to the last complete line before the error propagates.

        Raises:
            OSError: The write failed; the file is left exactly as it was.
        """
        self.acquire()
        payload = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_CLOEXEC, 0o644)
        try:
            if self._pending_cut is not None:  # an earlier failure could not cut its tail
                os.ftruncate(fd, self._pending_cut)
                self._pending_cut = None
            start = os.fstat(fd).st_size
            try:
                _write_all(fd, payload)
                if self.fsync:
                    os.fsync(fd)
            except BaseException:
                self._cut(fd, start)
                raise
            self._known_size = start + len(payload)
        finally:
            os.close(fd)
        for line in lines:
            if line.get("kind") == "header":
                self._has_header = True
                self._known_created = line.get("created")
        return len(payload)

    def append_flush(
        self, chunks: list[dict[str, Any]], new_losses: dict[str, dict[str, Any]]
    ) -> int:
        """Append one flush: a description of new losses, then the ``chunks``.

        New losses get the header line (on the first flush) or a ``register`` line;
        ``chunks`` are built with :func:`~nectarloss.log.format.chunk_line`.

        Returns:
            The number of bytes written.

        Raises:
            OSError: The write failed; the file is left exactly as it was.
        """
        lines = list(chunks)
        if new_losses:
            if self.has_header:
                lines.insert(0, {"kind": "register", "losses": new_losses})
            else:
                lines.insert(0, header_line(new_losses))
        return self.append(lines) if lines else 0

    def _cut(self, fd: int, size: int) -> None:
        """Remove a partial append; if even that fails, the next append cuts first."""
        try:
            os.ftruncate(fd, size)
        except OSError:
            self._pending_cut = size


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _lock_exclusive(fd: int) -> None:
    """Lock ``fd``'s file without waiting; ``BlockingIOError`` if another holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            raise BlockingIOError(str(exc)) from exc
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _write_all(fd: int, payload: bytes) -> None:
    """``os.write`` until every byte is written (a regular file may take part of a write)."""
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "the log write made no progress")
        view = view[written:]

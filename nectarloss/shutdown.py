"""Flush every open loss manager when the process ends: at exit, and on SIGTERM if asked.

Managers register themselves here when they log. At normal interpreter exit
(``atexit``) each live manager is closed, which flushes its buffers. Signals belong to
the application (Lightning, Accelerate and torchrun install their own), so nothing
here touches them unless the application calls :func:`flush_on_sigterm`. A forked
child (a DataLoader worker) does not flush the managers it inherited at its exit.

The SIGTERM handler is re-entrancy safe: when the signal lands while a flush is
running on the main thread, the handler only notes it; the flush completes, then the
shutdown runs. So a chunk is never written twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

__all__ = ["deliver_deferred_signal", "flush_on_sigterm", "flushing", "track"]

_log = logging.getLogger(__name__)


class _Closable(Protocol):
    def close(self) -> None: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_atexit_installed = False
_previous_handler: Any = None
_installed_handler = False
#: Set while a flush on the main thread runs: a SIGTERM then waits for it to finish.
_flush_depth = 0
_deferred: tuple[int, FrameType | None] | None = None


def _close_all() -> None:
    for manager in list(_live):
        try:
            manager.close()
        except Exception as exc:  # at exit there is no caller left to raise to
            _log.error("nectarloss: could not flush %r at exit: %s", manager, exc)


def _shutdown(signum: int, frame: FrameType | None) -> None:
    _close_all()
    previous = _previous_handler
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        sys.exit(128 + signum)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _deferred
    if _flush_depth:  # interrupted a flush: let it finish, it delivers the signal after
        _deferred = (signum, frame)
        return
    _shutdown(signum, frame)


@contextmanager
def flushing() -> Iterator[None]:
    """Mark a flush in progress, so a SIGTERM handled meanwhile waits for its end."""
    global _flush_depth
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers run on the main thread; there they wait on the manager's lock
        return
    _flush_depth += 1
    try:
        yield
    finally:  # also when the flush failed: a deferred SIGTERM must still end the process
        _flush_depth -= 1
        if _flush_depth == 0:
            deliver_deferred_signal()


def deliver_deferred_signal() -> None:
    """Run the shutdown for a SIGTERM that arrived during a flush, if there was one."""
    global _deferred
    pending, _deferred = _deferred, None
    if pending is not None:
        _shutdown(*pending)


def flush_on_sigterm(enable: bool = True) -> None:
    """Flush every open manager on SIGTERM, then exit (opt-in; call from the main thread).

    A handler installed earlier is kept and called after the flush; with none, the
    process exits with status ``128 + SIGTERM`` as it would have. Do not use it where
    a framework owns SIGTERM (Lightning, Accelerate, torchrun): flush from that
    framework's hook instead. Under DDP a flush is a collective, so a handler that
    flushes can wait on ranks that were not signalled: there, flush from your own
    coordinated shutdown instead. ``flush_on_sigterm(False)`` restores the earlier
    handler.

    Raises:
        RuntimeError: Called off the main thread, where Python cannot install handlers.
    """
    global _installed_handler, _previous_handler
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "nectarloss.flush_on_sigterm: signal handlers can only be installed from the "
            f"main thread, got thread {threading.current_thread().name!r}; call it from the "
            "main thread before starting training."
        )
    if enable and not _installed_handler:
        _previous_handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
        _installed_handler = True
    elif not enable and _installed_handler:
        signal.signal(signal.SIGTERM, _previous_handler)
        _installed_handler = False


def _forget_inherited() -> None:
    """In a forked child: the parent's managers are not the child's to flush."""
    global _live, _flush_depth, _deferred
    _live = weakref.WeakSet()
    _flush_depth = 0
    _deferred = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)


def track(manager: _Closable) -> None:
    """Close ``manager`` (flushing it) at interpreter exit."""
    global _atexit_installed
    if not _atexit_installed:
        atexit.register(_close_all)
        _atexit_installed = True
    _live.add(manager)

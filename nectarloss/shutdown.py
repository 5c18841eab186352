"""Flush every open loss manager when the process ends: at exit and on SIGTERM.

Managers register themselves here when they log. At normal interpreter exit
(``atexit``) and when the process receives SIGTERM, each live manager is closed, which
flushes its buffers. A SIGTERM handler installed by the user is kept and called after
the flush; with no handler of the user's, the process then exits with status
``128 + SIGTERM`` as it would have.
"""

from __future__ import annotations

import atexit
import logging
import signal
import sys
import threading
import weakref
from types import FrameType
from typing import Any, Protocol

__all__ = ["track"]

_log = logging.getLogger(__name__)


class _Closable(Protocol):
    def close(self) -> None: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False
_previous_handler: Any = None


def _close_all() -> None:
    for manager in list(_live):
        try:
            manager.close()
        except Exception as exc:  # at exit there is no caller left to raise to
            _log.error("nectarloss: could not flush %r at exit: %s", manager, exc)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _close_all()
    previous = _previous_handler
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        sys.exit(128 + signum)


def _install() -> None:
    global _installed, _previous_handler
    if _installed:
        return
    _installed = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        _previous_handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)


def track(manager: _Closable) -> None:
    """Close ``manager`` (flushing it) at interpreter exit and on SIGTERM."""
    _install()
    _live.add(manager)

"""Signals belong to the application: opt-in SIGTERM flushing that never writes twice."""

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from nectarloss import LossManager, flush_on_sigterm, read_log
from nectarloss.log import LOG_FILENAME

# SIGTERM arrives at the worst moments of a flush: right after the log write returned
# (before the buffers are cleared), and in the middle of the write.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, torch
    from nectarloss import LossManager, flush_on_sigterm
    from nectarloss.log import LossLogWriter

    where = sys.argv[2]
    flush_on_sigterm()
    real_append = LossLogWriter.append
    real_dumps = __import__("orjson").dumps
    calls = {"n": 0}

    def append(self, lines):
        if where == "after-write":
            written = real_append(self, lines)
            calls["n"] += 1
            if calls["n"] == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # handled before append returns
            return written
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # handled at once, before the write
        return real_append(self, lines)

    LossLogWriter.append = append
    lm = LossManager(sys.argv[1], history_buffer_size=1000)
    for name in ("a", "b", "c"):
        lm.register_loss_fn(name, lambda x, y: (x - y).mean())
    for i in range(500):
        for name in ("a", "b", "c"):
            lm.compute_loss_xy(name, torch.full((2,), float(i)), torch.zeros(2))
        if i % 100 == 99:
            lm.update_loss_log()
    print("not reached")
    """
)


@pytest.mark.parametrize("where", ["after-write", "before-write"])
def test_sigterm_inside_a_flush_writes_each_value_once(tmp_path: Path, where: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "exp"), where],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "not reached" not in proc.stdout
    log = read_log(tmp_path / "exp" / LOG_FILENAME)
    for name in ("a", "b", "c"):
        steps = list(log.losses[name].steps)
        assert steps == list(range(300)), (name, steps[:5], len(steps))
        assert list(log.losses[name].values) == [float(i) for i in range(300)]


def test_constructing_a_manager_installs_no_signal_handler(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
    assert signal.getsignal(signal.SIGTERM) is before
    lm.close()


def test_flush_on_sigterm_off_the_main_thread_is_refused() -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            flush_on_sigterm()
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=worker, name="trainer")
    t.start()
    t.join()
    assert len(errors) == 1 and "main thread" in str(errors[0]) and "trainer" in str(errors[0])


def test_flush_on_sigterm_installs_and_restores() -> None:
    before = signal.getsignal(signal.SIGTERM)
    flush_on_sigterm()
    try:
        assert signal.getsignal(signal.SIGTERM) is not before
    finally:
        flush_on_sigterm(False)
    assert signal.getsignal(signal.SIGTERM) == before


FAILING_FLUSH = textwrap.dedent(
    """
    import errno, os, signal, sys, torch
    from nectarloss import LossManager, flush_on_sigterm
    from nectarloss.log import LossLogWriter

    flush_on_sigterm()
    real_append = LossLogWriter.append
    calls = {"n": 0}

    def append(self, lines):
        calls["n"] += 1
        if calls["n"] == 1:  # SIGTERM lands in a flush that then fails (a full disk)
            os.kill(os.getpid(), signal.SIGTERM)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(self, lines)

    LossLogWriter.append = append
    lm = LossManager(sys.argv[1])
    lm.register_loss_fn("a", lambda x, y: (x - y).mean())
    for i in range(5):
        lm.compute_loss_xy("a", torch.full((2,), float(i)), torch.zeros(2))
    try:
        lm.update_loss_log()
    except Exception as exc:
        print("flush error:", type(exc).__name__, flush=True)
    print("not reached", flush=True)
    """
)


def test_sigterm_during_a_failing_flush_still_ends_the_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_FLUSH, str(tmp_path / "exp")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "not reached" not in proc.stdout
    log = read_log(tmp_path / "exp" / LOG_FILENAME)
    assert list(log.losses["a"].steps) == list(range(5))  # the shutdown flush wrote them

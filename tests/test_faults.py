"""Non-finite losses, I/O faults, bad input, and flushing at close, exit, SIGTERM, SIGKILL."""

import math
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import torch
from torch import nn

from nectarloss import (
    LogWriteError,
    LossManager,
    NonFiniteLossError,
    NonFiniteLossWarning,
    read_log,
)
from nectarloss.log import LOG_FILENAME, LossLogWriter
from nectarloss.testing import SyncCounter


def sqrt_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).mean().sqrt()  # NaN for a negative mean


def test_nonfinite_counted_and_logged_with_warning(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("s", sqrt_loss)
    one, zero = torch.ones(3), torch.zeros(3)
    lm.compute_loss_xy("s", one, zero)
    lm.compute_loss_xy("s", zero, one)  # NaN at step 1
    lm.compute_loss_xy("s", one, zero)
    with pytest.warns(NonFiniteLossWarning, match=r"s at step\(s\) \[1\]"):
        lm.update_loss_log()
    assert lm.get_nonfinite_counts() == {"s": 1}
    values = read_log(tmp_path / LOG_FILENAME).losses["s"].values
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 1.0


def test_nonfinite_raise_policy_writes_then_raises(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, nonfinite="raise")
    lm.register_loss_fn("inf", lambda x, y: (x / y).mean())
    lm.compute_loss_xy("inf", torch.ones(2), torch.zeros(2))
    with pytest.raises(NonFiniteLossError, match=r"inf at step\(s\) \[0\]"):
        lm.update_loss_log()
    assert read_log(tmp_path / LOG_FILENAME).losses["inf"].values == [math.inf]


def test_nonfinite_ignore_and_bad_policy(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, nonfinite="ignore")
    lm.register_loss_fn("s", sqrt_loss)
    lm.compute_loss_xy("s", torch.zeros(2), torch.ones(2))
    lm.update_loss_log()
    assert lm.get_nonfinite_counts() == {"s": 1}
    with pytest.raises(
        ValueError, match="`nonfinite` expected 'warn', 'raise' or 'ignore', got 'loud'"
    ):
        LossManager(tmp_path, nonfinite="loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`nonfinite_check` expected 'flush' or 'step'"):
        LossManager(tmp_path, nonfinite_check="always")  # type: ignore[arg-type]


def test_nonfinite_step_check_raises_immediately(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, nonfinite_check="step", nonfinite="ignore")
    lm.register_loss_fn("s", sqrt_loss)
    lm.compute_loss_xy("s", torch.ones(2), torch.zeros(2))
    with pytest.raises(NonFiniteLossError, match="s: loss is nan at step 1"):
        lm.compute_loss_xy("s", torch.zeros(2), torch.ones(2))
    lm.compute_loss_xy("s", torch.ones(2), torch.zeros(2))
    lm.update_loss_log()
    assert read_log(tmp_path / LOG_FILENAME).losses["s"].steps == [0, 1, 2]


def test_nonfinite_flush_policy_adds_no_sync(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, nonfinite="raise")
    lm.register_loss_fn("s", sqrt_loss)
    with SyncCounter() as c:
        for _ in range(200):
            lm.compute_loss_xy("s", torch.ones(2), torch.zeros(2))
    assert c.total == 0


def test_failed_flush_keeps_values_and_next_flush_writes_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = LossManager(tmp_path, history_buffer_size=100)
    lm.register_loss_fn("a", nn.L1Loss())
    x = torch.arange(4.0)
    for i in range(3):
        lm.compute_loss_xy("a", x * i, x * 0)
    lm.update_loss_log()

    def disk_full(self: LossLogWriter, lines: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LossLogWriter, "append", disk_full)
    for i in range(3, 6):
        lm.compute_loss_xy("a", x * i, x * 0)
    with pytest.raises(LogWriteError, match="No space left on device.*buffered values are kept"):
        lm.update_loss_log()
    for i in range(6, 8):  # training goes on between the failed and the next flush
        lm.compute_loss_xy("a", x * i, x * 0)
    with pytest.raises(LogWriteError):
        lm.update_loss_log()
    monkeypatch.undo()
    lm.update_loss_log()
    series = read_log(tmp_path / LOG_FILENAME).losses["a"]
    assert series.steps == list(range(8))
    assert series.values == [1.5 * i for i in range(8)]


def test_unwritable_directory_raises_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(LogWriteError, match="could not be created"):
        LossManager(ro / "exp")


def test_bad_input_leaves_manager_usable(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("G_L1", nn.L1Loss())
    good = torch.ones(2, 3)
    lm.compute_loss_xy("G_L1", good, good * 0)
    with pytest.raises(
        ValueError, match=r"G_L1: `target` expected shape \(2, 3\) like `input`, got \(5, 3, 2\)"
    ):
        lm.compute_loss_xy("G_L1", good, torch.ones(5, 3, 2))
    with pytest.raises(TypeError, match="G_L1: `target` expected a Tensor, got str"):
        lm.compute_loss_xy("G_L1", good, "target")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match="G_L1: `target` expected a tensor on cpu like `input`, got meta"
    ):
        lm.compute_loss_xy("G_L1", good, torch.ones(2, 3, device="meta"))
    lm.register_loss_fn("custom", lambda x, y: (x - y).abs().mean())
    with pytest.raises(TypeError, match="unsupported operand") as info:  # the user's own error
        lm.compute_loss_xy("custom", good, "target")  # type: ignore[arg-type]
    if sys.version_info >= (3, 11):
        assert info.value.__notes__ == [
            "nectarloss: raised by loss 'custom' on inputs of shape (2, 3), str"
        ]
    lm.compute_loss_xy("G_L1", good, good * 0)
    lm.update_loss_log()
    assert read_log(tmp_path / LOG_FILENAME).losses["G_L1"].steps == [0, 1]


def test_context_manager_flushes_on_exit(tmp_path: Path) -> None:
    with LossManager(tmp_path) as lm:
        lm.register_loss_fn("a", nn.L1Loss())
        lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
    assert read_log(tmp_path / LOG_FILENAME).losses["a"].values == [1.0]
    lm.close()  # idempotent
    assert read_log(tmp_path / LOG_FILENAME).losses["a"].values == [1.0]


SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    from torch import nn
    from nectarloss import LossManager, flush_on_sigterm
    if sys.argv[2] == "term":
        flush_on_sigterm()
    lm = LossManager(sys.argv[1], history_buffer_size=10)
    lm.register_loss_fn("a", nn.L1Loss())
    x = torch.ones(2)
    mode = sys.argv[2]
    for i in range(25 if mode != "kill" else 10**9):
        lm.compute_loss_xy("a", x * i, x * 0)
        if i == 24:
            print("ready", flush=True)
    if mode == "exit":
        sys.exit(0)
    print("ready", flush=True)
    time.sleep(60)
    """
)


#: Hard stop for a child that hangs (generous: the machine may be busy); never a timing check.
CHILD_TIMEOUT_S = 60.0


def stop(child: subprocess.Popen[bytes], why: str) -> NoReturn:
    """Kill ``child`` and fail the test with ``why``, its exit code and its stderr."""
    child.kill()
    _, err = child.communicate(timeout=CHILD_TIMEOUT_S)
    stderr = err.decode(errors="replace")
    pytest.fail(f"{why} (exit code {child.returncode}); its stderr:\n{stderr}")


def wait_for_ready(child: subprocess.Popen[bytes]) -> None:
    """Read the child's stdout until it prints ``ready``; fail at its EOF or at the deadline."""
    assert child.stdout is not None
    fd = child.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while b"ready\n" not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            stop(child, f"the child did not print 'ready' within {CHILD_TIMEOUT_S} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:  # EOF: the child closed stdout, so it died or exited
                stop(child, "the child exited before printing 'ready'")
            seen += chunk


def wait_for_exit(child: subprocess.Popen[bytes]) -> int:
    """The child's exit code; fail (killing it) if it is still running at the deadline."""
    try:
        child.wait(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop(child, f"the child did not exit within {CHILD_TIMEOUT_S} s")
    return child.returncode


@pytest.fixture
def run_child(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start ``SCRIPT`` in a child process; any child still running is killed afterwards."""
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    children: list[subprocess.Popen[bytes]] = []

    def start(mode: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "exp"), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate()


def test_normal_exit_flushes(
    tmp_path: Path, run_child: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    child = run_child("exit")
    if wait_for_exit(child) != 0:
        stop(child, "the child failed")
    assert read_log(tmp_path / "exp" / LOG_FILENAME).losses["a"].steps == list(range(25))


def test_sigterm_flushes_then_exits(
    tmp_path: Path, run_child: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    child = run_child("term")
    wait_for_ready(child)
    child.send_signal(signal.SIGTERM)
    assert wait_for_exit(child) == 128 + signal.SIGTERM
    assert read_log(tmp_path / "exp" / LOG_FILENAME).losses["a"].steps == list(range(25))


def test_without_opt_in_sigterm_keeps_its_default_action(
    tmp_path: Path, run_child: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    child = run_child("term-default")
    wait_for_ready(child)
    child.send_signal(signal.SIGTERM)
    assert wait_for_exit(child) == -signal.SIGTERM  # no handler of ours: no flush
    series = read_log(tmp_path / "exp" / LOG_FILENAME).losses["a"]
    assert series.steps == list(range(20))  # the two automatic flushes only


def test_sigkill_leaves_a_readable_log(
    tmp_path: Path, run_child: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    child = run_child("kill")
    log_path = tmp_path / "exp" / LOG_FILENAME
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while not log_path.exists() or log_path.stat().st_size < 20_000:
        if child.poll() is not None:
            stop(child, "the child exited before it was killed")
        if time.monotonic() > deadline:
            stop(child, f"the log did not reach 20 kB within {CHILD_TIMEOUT_S} s")
        time.sleep(0.05)
    child.kill()
    wait_for_exit(child)
    series = read_log(log_path).losses["a"]
    assert len(series.steps) >= 10 and len(series.steps) % 10 == 0  # whole flushed chunks only
    assert series.steps == list(range(len(series.steps)))
    assert series.values == [float(i) for i in range(len(series.steps))]


def test_fsync_option_syncs_each_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    lm = LossManager(tmp_path, fsync=True)
    lm.register_loss_fn("a", nn.L1Loss())
    for _ in range(2):
        lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
        lm.update_loss_log()
    assert len(calls) == 2
    assert read_log(tmp_path / LOG_FILENAME).losses["a"].values == [1.0, 1.0]


def test_automatic_flush_reports_earlier_nonfinite_steps_as_such(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, history_buffer_size=3, nonfinite="raise")
    lm.register_loss_fn("s", sqrt_loss)
    one, zero = torch.ones(3), torch.zeros(3)
    lm.compute_loss_xy("s", zero, one)  # NaN at step 0
    lm.compute_loss_xy("s", one, zero)
    with pytest.raises(NonFiniteLossError) as info:
        lm.compute_loss_xy("s", one, zero)  # step 2 fills the buffer
    message = str(info.value)
    assert "automatic flush of its full buffer (steps 0-2, written)" in message
    assert r"s at step(s) [0]" in message and "this call (step 2) is recorded" in message
    lm.compute_loss_xy("s", one, zero)
    lm.close()
    assert read_log(tmp_path / LOG_FILENAME).losses["s"].steps == [0, 1, 2, 3]

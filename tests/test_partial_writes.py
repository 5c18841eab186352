"""A full disk for real: a file-size limit (RLIMIT_FSIZE) cuts a flush part-way.

Each case runs in a subprocess that ignores SIGXFSZ and lowers its own limit, so the
kernel accepts part of a write and then fails it with EFBIG, as a full disk does.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nectarloss import read_log
from nectarloss.log import LOG_FILENAME

resource = pytest.importorskip("resource")

PRELUDE = textwrap.dedent(
    """
    import resource, signal, sys
    import torch
    from nectarloss import LossManager, LogWriteError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]

    def limit(nbytes):
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))

    def lift():
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

    exp = sys.argv[1]
    log = exp + "/loss_log.jsonl"
    lm = LossManager(exp, history_buffer_size=100_000)
    lm.register_loss_fn("a", lambda x, y: (x - y).abs().mean())
    lm.register_loss_fn("b", lambda x, y: ((x - y) ** 2).mean(), loss_weight=2.0)

    def steps(first, last):
        for i in range(first, last):
            x = torch.full((2,), float(i))
            lm.compute_loss_xy("a", x, torch.zeros(2))
            lm.compute_loss_xy("b", x, torch.zeros(2))
    """
)


def run(tmp_path: Path, body: str) -> str:
    script = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def assert_every_value_once(tmp_path: Path, num_steps: int) -> None:
    log = read_log(tmp_path / LOG_FILENAME)
    assert not log.truncated
    assert list(log.losses["a"].steps) == list(range(num_steps))
    assert list(log.losses["a"].values) == [float(i) for i in range(num_steps)]
    assert list(log.losses["b"].steps) == list(range(num_steps))
    assert list(log.losses["b"].values) == [float(i * i) for i in range(num_steps)]
    assert set(log.losses["b"].weights) == {2.0}


def test_flush_cut_by_file_size_limit_leaves_no_torn_line(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        import os
        steps(0, 50)
        lm.update_loss_log()
        good = os.path.getsize(log)
        steps(50, 3000)
        limit(good + 1000)  # the kernel takes ~1000 bytes of the chunk, then EFBIG
        for _ in range(2):  # a failure, then a second one on the same pending values
            try:
                lm.update_loss_log()
            except LogWriteError as exc:
                print("error:", exc)
            else:
                sys.exit("the flush should have failed")
            assert os.path.getsize(log) == good, (os.path.getsize(log), good)
        lift()
        lm.update_loss_log()
        print("ok")
        """,
    )
    assert "error:" in out and "buffered values are kept" in out and out.endswith("ok\n")
    assert_every_value_once(tmp_path, 3000)


def test_header_write_cut_leaves_an_empty_log_a_new_manager_accepts(tmp_path: Path) -> None:
    run(
        tmp_path,
        """
        import os
        steps(0, 20)
        limit(40)  # not even the header line fits
        try:
            lm.update_loss_log()
        except LogWriteError:
            pass
        else:
            sys.exit("the flush should have failed")
        assert os.path.getsize(log) == 0, os.path.getsize(log)
        lift()
        lm.update_loss_log()
        """,
    )
    assert_every_value_once(tmp_path, 20)
    (tmp_path / LOG_FILENAME).write_bytes(b"")
    run(  # a run that dies with its header cut leaves a directory the next run can use
        tmp_path,
        """
        import os
        steps(0, 5)
        limit(40)
        try:
            lm.update_loss_log()
        except LogWriteError:
            pass
        assert os.path.getsize(log) == 0
        os._exit(0)  # no exit flush: the process is gone
        """,
    )
    run(
        tmp_path,
        """
        steps(0, 7)
        lm.update_loss_log()
        """,
    )
    assert_every_value_once(tmp_path, 7)


def test_failed_automatic_flush_keeps_the_current_call_and_every_value(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        import os
        small = LossManager(exp + "/small", history_buffer_size=50)
        small.register_loss_fn("a", lambda x, y: (x - y).abs().mean())
        small.register_loss_fn("b", lambda x, y: ((x - y) ** 2).mean(), loss_weight=2.0)
        xs = [torch.full((2,), float(i)) for i in range(400)]
        for i in range(30):
            small.compute_loss_xy("a", xs[i], torch.zeros(2))
            small.compute_loss_xy("b", xs[i], torch.zeros(2))
        small.update_loss_log()
        limit(os.path.getsize(exp + "/small/loss_log.jsonl") + 50)
        failures = []
        for i in range(30, 200):
            for name in ("a", "b"):
                try:
                    out = small.compute_loss_xy(name, xs[i], torch.zeros(2))
                except LogWriteError as exc:
                    failures.append((name, i, str(exc)))
        lift()
        small.update_loss_log()
        for name, i, message in failures[:2]:
            print(name, i, message)
        print("failures", len(failures))
        """,
    )
    assert "a 79 a: the automatic flush of its full buffer (steps 30-79) failed" in out
    assert "including this call's (step 79), is kept" in out
    # Each loss fails at steps 79, 129 and 179: retried a buffer later, not at every call.
    assert "failures 6" in out
    log = read_log(tmp_path / "small" / LOG_FILENAME)
    for name, square in (("a", False), ("b", True)):
        assert list(log.losses[name].steps) == list(range(200))
        want = [float(i * i if square else i) for i in range(200)]
        assert list(log.losses[name].values) == want

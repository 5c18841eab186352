"""``nectarloss watch``: the incremental log reader, the statistics, the live screen."""

from __future__ import annotations

import fcntl
import io
import math
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from nectarloss.cli import main
from nectarloss.console import NONFINITE_MARK, sparkline
from nectarloss.log import LogFollower, LogFormatError, read_log, resolve_log_path
from nectarloss.log.format import LOG_FORMAT, LOG_VERSION, chunk_line, nonfinite_indices
from nectarloss.watch import WatchState, render_watch, watch_log

NAN = math.nan
#: A hard stop for a hung child process; never a timing check.
HANG_GUARD_S = 60.0
#: The size of the pseudo-terminal the watched screen is drawn on.
ROWS, COLUMNS = 50, 160


def header_bytes(created: str = "2026-01-01T00:00:00+00:00") -> bytes:
    line = {
        "kind": "header",
        "format": LOG_FORMAT,
        "version": LOG_VERSION,
        "created": created,
        "losses": {"G_L1": {"tags": ["G"], "weight": 2.0}, "D_real": {"tags": ["D"]}},
    }
    return orjson.dumps(line) + b"\n"


def chunk_bytes(name: str, steps: list[int], values: list[float], weight: float) -> bytes:
    line = chunk_line(name, steps, values, [weight] * len(steps), nonfinite_indices(values))
    return orjson.dumps(line) + b"\n"


def text_of(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=COLUMNS, color_system=None)


# ---------------------------------------------------------------------------- sparkline
def test_sparkline_levels_nonfinite_and_width() -> None:
    assert sparkline([]) == ""
    assert sparkline([3.0, 3.0]) == "▄▄"
    assert sparkline([0.0, 7.0, 3.5]) == "▁█▅"  # 3.5 / 7 * 7 = 3.5 rounds to level 4 (even)
    assert sparkline([1.0, NAN, math.inf, 2.0]) == f"▁{NONFINITE_MARK}{NONFINITE_MARK}█"
    assert sparkline([NAN]) == NONFINITE_MARK
    many = [float(i) for i in range(100)]
    line = sparkline(many, width=10)
    assert len(line) == 10 and line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line)  # a rising series rises
    with pytest.raises(ValueError, match="sparkline: `width` expected an int >= 1, got 0"):
        sparkline(many, width=0)


# ---------------------------------------------------------------------------- LogFollower
def test_follower_reads_only_whole_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "loss_log.jsonl"
    follower = LogFollower(path)
    missing = follower.poll()
    assert not missing.changed and missing.header is None
    head = header_bytes()
    first = chunk_bytes("G_L1", [0, 1], [0.5, 0.25], 2.0)
    path.write_bytes(head + first[:20])  # a chunk line still being written
    update = follower.poll()
    assert update.reset and update.header is not None and update.losses == {}
    assert set(update.info) == {"G_L1", "D_real"}
    assert follower.offset == len(head)
    with path.open("ab") as fh:
        fh.write(first[20:])
    update = follower.poll()
    assert not update.reset and update.info == {}
    assert list(update.losses["G_L1"].values) == [0.5, 0.25]
    assert list(update.losses["G_L1"].weighted) == [1.0, 0.5]
    assert follower.offset == len(head) + len(first)
    assert not follower.poll().changed  # nothing new
    # Proof that old lines are not parsed again: spoil a read chunk in place (same size,
    # same header, the last line read intact); a poll that re-read it would fail, this
    # one reads only the new line.
    kept = chunk_bytes("G_L1", [2], [0.125], 2.0)
    with path.open("ab") as fh:
        fh.write(kept)
    assert list(follower.poll().losses["G_L1"].steps) == [2]
    spoiled = head + b"x" * (len(first) - 1) + b"\n" + kept
    second = chunk_bytes("D_real", [0], [NAN], 1.0)
    path.write_bytes(spoiled + second)
    update = follower.poll()
    assert not update.reset and list(update.losses) == ["D_real"]
    assert math.isnan(update.losses["D_real"].values[0])
    with pytest.raises(LogFormatError, match="line 2 is not valid JSON"):
        read_log(path)  # the same bytes, read whole


@pytest.mark.parametrize("how", ["truncate", "overwrite", "replace"])
def test_follower_starts_over_when_the_log_does(tmp_path: Path, how: str) -> None:
    path = tmp_path / "loss_log.jsonl"
    old = header_bytes() + chunk_bytes("G_L1", [0, 1, 2], [0.5, 0.25, 0.125], 2.0)
    path.write_bytes(old)
    follower = LogFollower(path)
    assert follower.poll().reset
    new_header = header_bytes(created="2026-02-02T00:00:00+00:00")
    if how == "truncate":  # shorter than what was read
        path.write_bytes(new_header)
    elif how == "overwrite":  # a new run, already longer than the old one: the header differs
        path.write_bytes(new_header + chunk_bytes("G_L1", list(range(20)), [1.0] * 20, 1.0))
    else:  # a new file renamed over the old one (another inode), same length
        fresh = tmp_path / "fresh.jsonl"
        fresh.write_bytes(old)
        os.replace(fresh, path)
    update = follower.poll()
    assert update.reset and set(update.info) == {"G_L1", "D_real"}
    want = {"truncate": None, "overwrite": [1.0] * 20, "replace": [0.5, 0.25, 0.125]}[how]
    got = update.losses.get("G_L1")
    assert (None if got is None else list(got.values)) == want


def test_follower_reports_a_corrupt_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "loss_log.jsonl"
    path.write_bytes(header_bytes() + b'{"kind": "chunk", "loss": "G_L1"}\n')
    with pytest.raises(LogFormatError, match=r"line 2 \(chunk of 'G_L1'\): `steps` missing"):
        LogFollower(path).poll()


# ---------------------------------------------------------------------------- statistics
def test_watch_state_statistics(tmp_path: Path) -> None:
    path = tmp_path / "loss_log.jsonl"
    path.write_bytes(header_bytes() + chunk_bytes("G_L1", [0, 1, 2], [0.5, 0.125, 2.0], 2.0))
    follower = LogFollower(path)
    state = WatchState(last=2)
    state.apply(follower.poll())
    with path.open("ab") as fh:
        fh.write(chunk_bytes("G_L1", [3], [NAN], 3.0) + chunk_bytes("D_real", [0], [1.5], 1.0))
    state.apply(follower.poll())
    g = state.losses["G_L1"]
    assert (g.step, g.count, g.nonfinite, g.weight) == (3, 4, 1, 3.0)
    assert math.isnan(g.last)
    assert g.min == 0.25  # weighted, over every value, NaN skipped
    assert list(g.recent)[0] == 4.0 and g.recent_mean == 4.0  # the last 2: 4.0 and NaN
    assert state.groups() == {"G": ["G_L1"], "D": ["D_real"]}
    raw = WatchState(last=10, weighted=False)
    raw.apply(LogFollower(path).poll())
    assert raw.losses["G_L1"].min == 0.125
    with pytest.raises(ValueError, match="WatchState: `last` expected an int >= 1, got 0"):
        WatchState(last=0)


def test_render_shows_tables_per_tag_and_nonfinite(tmp_path: Path) -> None:
    run = tmp_path / "gan_run"
    run.mkdir()
    path = run / "loss_log.jsonl"
    path.write_bytes(header_bytes() + chunk_bytes("D_real", [0, 1], [0.75, -math.inf], 1.0))
    state = WatchState(last=5)
    state.apply(LogFollower(path).poll())
    console = quiet_console()
    console.print(render_watch(state, path))
    text = text_of(console)
    assert text.startswith("gan_run: losses, started 2026-01-01 00:00 UTC")
    assert "G (weighted)" in text and "D (weighted)" in text
    d_row = next(line for line in text.splitlines() if "D_real" in line)
    assert re.search(r"D_real\s*│\s*1\s*│\s*-Inf\s*│\s*0\.7500\s*│\s*0\.7500\s*│\s*1\.0000", d_row)
    assert f"▄{NONFINITE_MARK}" in d_row
    g_row = next(line for line in text.splitlines() if "G_L1" in line)
    assert re.search(r"G_L1\s*│\s*-\s*│", g_row)  # registered, nothing logged yet


# ---------------------------------------------------------------------------- the command
def test_cli_watch_once_accepts_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "loss_log.jsonl").write_bytes(
        header_bytes() + chunk_bytes("G_L1", [0, 1], [0.5, 0.25], 2.0)
    )
    assert resolve_log_path(tmp_path) == tmp_path / "loss_log.jsonl"
    assert main(["watch", str(tmp_path), "--once", "--last", "1"]) == 0
    out = capsys.readouterr().out
    assert "G_L1" in out and "0.5000" in out and "mean 1" in out
    assert main(["watch", str(tmp_path / "nothing"), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nectarloss: error: watch: no loss log at ") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["watch", str(tmp_path), "--interval", "0"])
    with pytest.raises(ValueError, match="watch: `interval` expected a number > 0, got -1"):
        watch_log(tmp_path, interval=-1)


_ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\x1b[=>78]")


class Screen:
    """What a child process drew on a pseudo-terminal, escape codes stripped."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.raw = b""

    @property
    def text(self) -> str:
        return _ANSI.sub(b"", self.raw).decode("utf-8", errors="replace")

    def read_until(self, done: Callable[[str], bool], what: str) -> None:
        deadline = os.times().elapsed + HANG_GUARD_S
        while not done(self.text):
            left = deadline - os.times().elapsed
            if left <= 0:
                raise AssertionError(f"the screen never showed {what}:\n{self.text[-3000:]}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready and not self.read_some():
                raise AssertionError(f"the watch exited before {what}:\n{self.text[-3000:]}")

    def read_some(self) -> bool:
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.raw += data
        return bool(data)

    def drain(self) -> None:
        while select.select([self.fd], [], [], 0)[0] and self.read_some():
            pass


def append_from_another_process(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` from a second Python process, as a training run would."""
    script = "import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND); "
    script += "os.write(fd, sys.stdin.buffer.read()); os.close(fd)"
    subprocess.run(
        [sys.executable, "-c", script, str(path)], input=data, check=True, timeout=HANG_GUARD_S
    )


def test_watch_follows_a_log_written_by_another_process(tmp_path: Path) -> None:
    """A real ``python -m nectarloss watch`` on a pseudo-terminal, fed by a second process."""
    path = tmp_path / "loss_log.jsonl"
    path.write_bytes(
        header_bytes()
        + chunk_bytes("G_L1", [0, 1], [0.5, 0.25], 2.0)
        + chunk_bytes("D_real", [0, 1], [0.75, 0.625], 1.0)
    )
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env: dict[str, Any] = {**os.environ, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None), env.pop("LINES", None)
    command = [sys.executable, "-m", "nectarloss", "watch", str(tmp_path), "--interval", "0.05"]
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    screen = Screen(master)
    try:
        screen.read_until(lambda t: "G (weighted)" in t and "1.0000" in t, "the first tables")
        assert "0.5000" in screen.text  # G_L1's last: 0.25 x 2
        # a whole chunk and half of the next one, as a flush torn mid-write would leave
        more = chunk_bytes("G_L1", [2, 3], [0.375, 0.4375], 2.0)
        torn = chunk_bytes("D_real", [2], [NAN], 1.0) + chunk_bytes("G_L1", [4], [3.5625], 2.0)
        append_from_another_process(path, more + torn[:25])
        screen.read_until(lambda t: "0.8750" in t, "G_L1's new last value 0.875")
        assert "7.1250" not in screen.text
        append_from_another_process(path, torn[25:])
        screen.read_until(lambda t: "7.1250" in t and "NaN" in t, "the completed chunks")
        d_row = [line for line in screen.text.splitlines() if "D_real" in line][-1]
        assert re.search(r"D_real\s*│\s*2\s*│\s*NaN\s*│", d_row) and NONFINITE_MARK in d_row
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=HANG_GUARD_S) == 0
        screen.drain()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "Traceback" not in screen.text and "KeyboardInterrupt" not in screen.text

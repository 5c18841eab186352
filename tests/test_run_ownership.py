"""One run, one writer, one series: reused directories, resume, and a second writer."""

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from nectarloss import ExistingLogError, LogInUseError, LossManager, read_log
from nectarloss.distributed import launched_as_later_rank
from nectarloss.log import LOG_FILENAME


def run_steps(lm: LossManager, num_steps: int, names: tuple[str, ...] = ("a", "b")) -> None:
    for i in range(num_steps):
        x = torch.full((2,), float(i))
        for name in names:
            lm.compute_loss_xy(name, x, torch.zeros(2))


def build(path: Path, **kwargs: object) -> LossManager:
    lm = LossManager(path, **kwargs)  # type: ignore[arg-type]
    lm.register_loss_fn("a", nn.L1Loss())
    lm.register_loss_fn("b", nn.L1Loss(), loss_weight=3.0)
    return lm


def test_reused_directory_is_refused_naming_the_file_and_the_ways_on(tmp_path: Path) -> None:
    lm = build(tmp_path)
    run_steps(lm, 5)
    lm.close()
    with pytest.raises(ExistingLogError) as info:
        build(tmp_path)
    message = str(info.value)
    assert str(tmp_path / LOG_FILENAME) in message
    assert "resume=True" in message and "overwrite=True" in message
    assert list(read_log(tmp_path / LOG_FILENAME).losses["a"].steps) == [0, 1, 2, 3, 4]


def test_resume_continues_each_losss_step_numbers(tmp_path: Path) -> None:
    lm = build(tmp_path)
    run_steps(lm, 5)
    run_steps(lm, 2, names=("a",))
    lm.close()
    resumed = build(tmp_path, resume=True)
    run_steps(resumed, 3)
    resumed.close()
    log = read_log(tmp_path / LOG_FILENAME)
    assert list(log.losses["a"].steps) == list(range(10))
    assert list(log.losses["b"].steps) == list(range(8))
    assert list(log.losses["a"].values) == [0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 0.0, 1.0, 2.0]
    lines = (tmp_path / LOG_FILENAME).read_bytes().splitlines()
    assert sum(b'"kind":"header"' in line for line in lines) == 1


def test_resume_on_an_empty_directory_starts_a_new_log(tmp_path: Path) -> None:
    lm = build(tmp_path / "new", resume=True)
    run_steps(lm, 2)
    lm.close()
    assert list(read_log(tmp_path / "new" / LOG_FILENAME).losses["a"].steps) == [0, 1]


def test_overwrite_starts_a_new_series(tmp_path: Path) -> None:
    lm = build(tmp_path)
    run_steps(lm, 5)
    lm.close()
    again = build(tmp_path, overwrite=True)
    run_steps(again, 2)
    again.close()
    log = read_log(tmp_path / LOG_FILENAME)
    assert list(log.losses["a"].steps) == [0, 1]
    with pytest.raises(ValueError, match="`resume` and `overwrite` exclude each other"):
        build(tmp_path, resume=True, overwrite=True)


def test_second_manager_on_a_directory_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = build(tmp_path)
    with pytest.raises(LogInUseError, match=str(tmp_path)):
        build(tmp_path)
    run_steps(first, 3)
    first.close()  # releases the log
    second = build(tmp_path, resume=True)
    run_steps(second, 1)
    with pytest.raises(LogInUseError):  # the first cannot take the log back
        run_steps(first, 1)
        first.update_loss_log()
    second.close()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["a"].steps) == [0, 1, 2, 3]


def test_a_manager_that_is_garbage_collected_releases_the_log(tmp_path: Path) -> None:
    lm = build(tmp_path)
    run_steps(lm, 2)
    lm.update_loss_log()
    del lm
    build(tmp_path, resume=True).close()


def test_second_writer_process_is_refused_and_the_log_has_one_series(tmp_path: Path) -> None:
    first = build(tmp_path)
    run_steps(first, 10)
    script = textwrap.dedent(
        """
        import sys
        from nectarloss import LossManager, LogInUseError
        try:
            LossManager(sys.argv[1], resume=True)
        except LogInUseError as exc:
            print("refused:", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.startswith("refused:") and str(tmp_path) in out
    first.close()
    log = read_log(tmp_path / LOG_FILENAME)
    assert list(log.losses["a"].steps) == list(range(10))


def test_lock_of_a_killed_process_is_released_by_the_os(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, torch
        from nectarloss import LossManager
        lm = LossManager(sys.argv[1])
        lm.register_loss_fn("a", lambda x, y: (x - y).abs().mean())
        lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
        lm.update_loss_log()
        os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], timeout=60)
    assert proc.returncode == -9
    lm = LossManager(tmp_path, resume=True)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
    lm.close()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["a"].steps) == [0, 1]


def test_one_loss_from_two_threads_records_every_call_once(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, history_buffer_size=64)  # many automatic flushes
    lm.register_loss_fn("a", nn.L1Loss())
    errors: list[BaseException] = []
    num_calls = 2000

    def worker(value: float) -> None:
        try:
            x = torch.full((2,), value)
            for _ in range(num_calls):
                lm.compute_loss_xy("a", x, torch.zeros(2))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(v,)) for v in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lm.close()
    assert errors == []
    series = read_log(tmp_path / LOG_FILENAME).losses["a"]
    assert list(series.steps) == list(range(2 * num_calls))
    assert sorted(series.values) == [1.0] * num_calls + [2.0] * num_calls


def test_checkpoints_taken_on_another_thread_lose_no_value(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, history_buffer_size=100_000)
    lm.register_loss_fn("a", lambda x, y: (y - x).mean())
    num_calls = 6000
    done = threading.Event()

    def checkpoints() -> None:
        while not done.is_set():
            lm.state_dict()

    saver = threading.Thread(target=checkpoints)
    saver.start()
    zeros = torch.zeros(1)
    try:
        for i in range(num_calls):
            lm.compute_loss_xy("a", zeros, torch.full((1,), float(i)))
    finally:
        done.set()
        saver.join()
    lm.close()
    series = read_log(tmp_path / LOG_FILENAME).losses["a"]
    assert list(series.values) == [float(i) for i in range(num_calls)]


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from nectarloss import LossManager, LogInUseError
    lm = LossManager(sys.argv[1], history_buffer_size=4)
    lm.register_loss_fn("a", lambda x, y: (x - y).mean())
    for i in range(3):
        lm.compute_loss_xy("a", torch.full((1,), float(i)), torch.zeros(1))
    pid = os.fork()
    if pid == 0:  # a forked worker: it computes with the inherited manager, then exits
        try:
            for i in range(3):
                lm.compute_loss_xy("a", torch.full((1,), 99.0), torch.zeros(1))
        except LogInUseError as exc:
            print("child refused:", exc, flush=True)
        sys.exit(0)  # its exit flushes nothing of the parent's
    os.waitpid(pid, 0)
    for i in range(3, 6):
        lm.compute_loss_xy("a", torch.full((1,), float(i)), torch.zeros(1))
    lm.close()
    """
)


def test_a_forked_child_never_writes_the_parents_log(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "child refused:" in out and "is a fork of it" in out
    series = read_log(tmp_path / LOG_FILENAME).losses["a"]
    assert list(series.steps) == list(range(6))
    assert list(series.values) == [float(i) for i in range(6)]


def test_a_closed_manager_cannot_write_over_a_run_that_took_the_log(tmp_path: Path) -> None:
    old = build(tmp_path)
    run_steps(old, 3)
    old.close()
    new = build(tmp_path, overwrite=True)  # same byte length, another run
    run_steps(new, 3)
    new.close()
    run_steps(old, 1)
    with pytest.raises(LogInUseError, match="another run took it over"):
        old.update_loss_log()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["a"].steps) == [0, 1, 2]


def test_manager_built_in_a_later_rank_before_its_group_takes_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning's ddp runs the script again as rank 1 (LOCAL_RANK=1) before the group."""
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    later = LossManager(tmp_path)
    later.register_loss_fn("a", nn.L1Loss())
    later.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.delenv("WORLD_SIZE")
    with LossManager(tmp_path, overwrite=True) as main:  # rank 0 takes the log
        main.register_loss_fn("a", nn.L1Loss())
        with pytest.raises(LogInUseError):  # no group after all: it writes, but not now
            later.update_loss_log()
    later.update_loss_log()  # one process: the flush opens the writer and writes
    later.close()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["a"].steps) == [0]


@pytest.mark.parametrize(
    ("env", "later"),
    [
        ({}, False),
        ({"WORLD_SIZE": "4", "RANK": "0", "LOCAL_RANK": "3"}, False),  # RANK wins
        ({"WORLD_SIZE": "4", "RANK": "2"}, True),
        ({"WORLD_SIZE": "4", "LOCAL_RANK": "0", "NODE_RANK": "1"}, True),
        ({"WORLD_SIZE": "2", "LOCAL_RANK": "x"}, False),
        ({"LOCAL_RANK": "1"}, False),  # no world size: a stray variable
        ({"WORLD_SIZE": "1", "RANK": "1"}, False),
    ],
)
def test_launched_as_later_rank_reads_the_launchers_variables(
    env: dict[str, str], later: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launched_as_later_rank() is later

"""Two CPU processes on gloo: flushed means averaged across ranks, rank 0 writes the log."""

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nectarloss import LossManager, read_log
from nectarloss.log import LOG_FILENAME
from nectarloss.modifiers import SuperLoss

WORLD = 2
STEPS = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker(rank: int, port: int, exp: str, out: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    calls = {"all_reduce": 0}
    real_all_reduce = dist.all_reduce

    def counted(*args: object, **kwargs: object) -> object:
        calls["all_reduce"] += 1
        return real_all_reduce(*args, **kwargs)  # type: ignore[arg-type]

    dist.all_reduce = counted  # type: ignore[assignment]
    try:
        lm = LossManager(exp, history_buffer_size=5)  # auto-flushes at steps 5 and 10
        lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
        x = torch.zeros(3)
        for step in range(STEPS):
            lm.compute_loss_xy("a", x + (rank + 1) * (step + 1), x)  # rank r: (r + 1)(step + 1)
        sl = SuperLoss(threshold="exp", sync_ranks=True)
        lm.register_loss_fn("sl", nn.L1Loss(reduction="none"), modifiers=[sl])
        lm.compute_loss_xy("sl", torch.full((2, 3), float(rank + 1)), torch.zeros(2, 3))
        torch.save(sl.tau.clone(), os.path.join(out, f"tau{rank}.pt"))
        values = lm.get_loss_values(query=["a"], precision=6, weighted=False)
        lm.update_loss_log()
        torch.save((values, calls["all_reduce"]), os.path.join(out, f"values{rank}.pt"))
    finally:
        dist.all_reduce = real_all_reduce
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_ranks_average_and_single_writer(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    mp.spawn(worker, args=(free_port(), str(exp), str(tmp_path)), nprocs=WORLD, join=True)
    series = read_log(exp / LOG_FILENAME).losses["a"]
    # mean over ranks of (r + 1)(step + 1) = 1.5 (step + 1)
    assert series.steps == list(range(STEPS))
    assert series.values == [1.5 * (s + 1) for s in range(STEPS)]
    assert series.weights == [2.0] * STEPS
    lines = (exp / LOG_FILENAME).read_bytes().splitlines()
    assert sum(b'"kind":"header"' in line for line in lines) == 1  # only rank 0 wrote
    v0, calls0 = torch.load(tmp_path / "values0.pt", weights_only=True)
    v1, calls1 = torch.load(tmp_path / "values1.pt", weights_only=True)
    assert v0 == v1 == {"a": 1.5 * STEPS}
    # one collective per flush (two automatic, one final), one for the query, and one for
    # the SuperLoss step with sync_ranks; none per step otherwise
    assert calls0 == calls1 == 5
    tau0 = torch.load(tmp_path / "tau0.pt", weights_only=True)
    tau1 = torch.load(tmp_path / "tau1.pt", weights_only=True)
    assert tau0.item() == tau1.item() == 1.5  # mean of the ranks' batch means 1 and 2

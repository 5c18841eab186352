"""GPU checks that the CPU cannot make: sync-debug steps, compiled and captured steps.

Run by ``benchmarks/gpu_check.sh`` (or alone: ``python -m benchmarks.gpu_check``). Each
check prints one row; the exit status is 1 if any fails.

* ``sync-debug``: 100 steps of a manager holding every modifier (Sangoi, SuperLoss with
  each threshold mode, MinSNR, DebiasedEstimation, P2) and epoch and step schedules,
  under ``torch.cuda.set_sync_debug_mode("error")``, which raises on any sync (including
  ones a CPU counter cannot see: ``nonzero``, boolean masks, ``.item()`` in torch ops).
* ``balancers``: 100 training steps of a small model with AdaptiveWeight, DWA,
  UncertaintyWeighting and GradNorm (``balance_step`` included, epochs turning) under the
  same sync-debug mode; every applied weight logged.
* ``compile``: ``torch.compile(fullgraph=True)`` of a step with an epoch schedule, a step
  schedule and a SuperLoss loss over 3 epochs x 40 steps: at most 3 graphs, and the log
  equal to the eager run's (steps and weights exactly, values to float tolerance).
* ``reduce-overhead``: the same step under ``mode="reduce-overhead"`` (CUDA graphs):
  every replayed step recorded once, the log equal to eager's.
* ``capture``: a step captured by hand with ``torch.cuda.CUDAGraph`` and replayed: every
  replay recorded once, in order, equal to the eager values.
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch._dynamo.utils import counters

from nectarloss import (
    DWA,
    AdaptiveWeight,
    GradNorm,
    LossManager,
    Schedule,
    UncertaintyWeighting,
    read_log,
)
from nectarloss.modifiers import P2, DebiasedEstimation, MinSNR, Sangoi, SuperLoss
from nectarloss.noise import NoiseSchedule

DEVICE = torch.device("cuda")  # --device cpu runs what the CPU can (tests the script)


def _data(n: int, shape: tuple[int, ...] = (8, 4, 8, 8)) -> list[tuple[Tensor, Tensor, Tensor]]:
    g = torch.Generator(device="cpu").manual_seed(0)
    return [
        (
            torch.randn(shape, generator=g).to(DEVICE),
            torch.randn(shape, generator=g).to(DEVICE),
            torch.randint(0, 100, (shape[0],), generator=g).to(DEVICE),
        )
        for _ in range(n)
    ]


def sync_debug(directory: Path) -> str:
    noise = NoiseSchedule.linear(100)
    lm = LossManager(directory, device=DEVICE, history_buffer_size=1000)
    mse = nn.MSELoss(reduction="none")
    lm.register_loss_fn("sangoi", mse, modifiers=[Sangoi(noise)])
    for mode in ("exp", "global", 0.5):
        lm.register_loss_fn(f"superloss_{mode}", mse, modifiers=[SuperLoss(threshold=mode)])
    lm.register_loss_fn("minsnr", mse, modifiers=[MinSNR(noise)])
    lm.register_loss_fn("debiased", mse, modifiers=[DebiasedEstimation(noise)])
    lm.register_loss_fn("p2", mse, modifiers=[P2(noise)])
    lm.register_loss_fn(
        "by_epoch", nn.L1Loss(), schedule=Schedule(end_epoch=3, initial_value=2.0, target_value=0.5)
    )
    lm.register_loss_fn(
        "by_step", nn.L1Loss(), schedule=Schedule(schedule="cosine", end_epoch=50, unit="step")
    )
    data = _data(100)
    cuda = DEVICE.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        for i, (x, y, t) in enumerate(data):
            total = sum(
                lm.compute_loss(name, x, y, epoch=i // 40, timesteps=t)
                for name in lm.get_registered_losses()
            )
            total.backward() if total.requires_grad else None
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
    lm.update_loss_log()
    counts = {n: len(s.steps) for n, s in read_log(lm.log_path).losses.items()}  # type: ignore[arg-type]
    lm.close()
    assert set(counts.values()) == {100}, counts
    return f"100 steps x {len(counts)} losses, no sync"


def balancers(directory: Path) -> str:
    torch.manual_seed(0)
    trunk, head = nn.Linear(16, 32).to(DEVICE), nn.Linear(32, 16).to(DEVICE)
    params = [*trunk.parameters(), *head.parameters()]
    lm = LossManager(directory, device=DEVICE, history_buffer_size=1000)
    lm.register_loss_fn("rec", nn.L1Loss(), loss_weight=10.0)
    lm.register_loss_fn(
        "adv", nn.MSELoss(), loss_weight=0.5, balancer=AdaptiveWeight("rec", lambda: head.weight)
    )
    dwa, uw, gradnorm = DWA(), UncertaintyWeighting(), GradNorm(shared=lambda: trunk.weight)
    for name, balancer in (("dwa_a", dwa), ("dwa_b", dwa), ("uw_a", uw), ("uw_b", uw)):
        lm.register_loss_fn(name, nn.SmoothL1Loss(), balancer=balancer)
    for name in ("gn_a", "gn_b"):
        lm.register_loss_fn(name, nn.MSELoss(), balancer=gradnorm)
    optimizer = torch.optim.SGD([*params, *lm.parameters()], lr=0.01)
    g = torch.Generator(device="cpu").manual_seed(1)
    data = [(torch.randn(8, 16, generator=g).to(DEVICE),) * 2 for _ in range(100)]
    cuda = DEVICE.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        for i, (x, y) in enumerate(data):
            out = head(torch.tanh(trunk(x)))
            epoch = i // 25
            total = lm.compute_loss_xy("rec", out, y, epoch=epoch)
            total = total + lm.compute_loss_xy("adv", out, torch.ones_like(out), epoch=epoch)
            for name in ("dwa_a", "dwa_b", "uw_a", "uw_b", "gn_a", "gn_b"):
                total = total + lm.compute_loss_xy(name, out, y * (1 + i % 3), epoch=epoch)
            lm.balance_step()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
    lm.close()
    log = read_log(lm.log_path)  # type: ignore[arg-type]
    counts = {n: len(s.weights) for n, s in log.losses.items()}
    assert set(counts.values()) == {100}, counts
    return f"100 steps x {len(counts)} losses, 4 balancers, no sync"


def _manager(directory: Path) -> LossManager:
    lm = LossManager(directory, device=DEVICE, history_buffer_size=1000, overwrite=True)
    lm.register_loss_fn(
        "by_epoch",
        nn.L1Loss(),
        schedule=Schedule(start_epoch=0, end_epoch=2, initial_value=10.0, target_value=1.0),
    )
    lm.register_loss_fn(
        "by_step",
        nn.MSELoss(),
        schedule=Schedule(
            schedule="cosine", end_epoch=50, initial_value=1.0, target_value=0.1, unit="step"
        ),
    )
    lm.register_loss_fn("superloss", nn.MSELoss(reduction="none"), modifiers=[SuperLoss()])
    return lm


def _step(lm: LossManager) -> Callable[[Tensor, Tensor, int], Tensor]:
    def step(x: Tensor, y: Tensor, epoch: int) -> Tensor:
        return (
            lm.compute_loss_xy("by_epoch", x, y, epoch=epoch)
            + lm.compute_loss_xy("by_step", x, y, epoch=epoch)
            + lm.compute_loss_xy("superloss", x, y, epoch=epoch)
        )

    return step


def _same_log(a: Path, b: Path) -> None:
    la, lb = read_log(a / "loss_log.jsonl"), read_log(b / "loss_log.jsonl")
    for name, s in la.losses.items():
        o = lb.losses[name]
        assert s.steps == o.steps, (name, "steps")
        assert s.weights == o.weights, (name, "weights")
        torch.testing.assert_close(torch.tensor(list(s.values)), torch.tensor(list(o.values)))


def _compiled_run(directory: Path, mode: str | None) -> tuple[int, Path]:
    data = _data(40, (8, 16))
    eager_lm = _manager(directory / "eager")
    step = _step(eager_lm)
    for epoch in range(3):
        for x, y, _ in data:
            step(x, y, epoch)
    eager_lm.update_loss_log()
    eager_lm.close()
    torch._dynamo.reset()
    counters.clear()
    lm = _manager(directory / "compiled")
    compiled = torch.compile(_step(lm), fullgraph=True, mode=mode)
    for epoch in range(3):
        for x, y, _ in data:
            compiled(x, y, epoch)
    lm.update_loss_log()
    lm.close()
    _same_log(directory / "eager", directory / "compiled")
    return int(counters["stats"]["unique_graphs"]), directory


def compile_check(directory: Path) -> str:
    graphs, _ = _compiled_run(directory, None)
    assert graphs <= 3, f"{graphs} graphs"
    return f"{graphs} graphs over 3 epochs x 40 steps; log equal to eager"


def reduce_overhead(directory: Path) -> str:
    graphs, _ = _compiled_run(directory, "reduce-overhead")
    assert graphs <= 3, f"{graphs} graphs"
    return f"{graphs} graphs; every replay recorded once; log equal to eager"


def capture(directory: Path) -> str:
    lm = LossManager(directory, device=DEVICE, history_buffer_size=1000)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    lm.register_loss_fn(
        "s", nn.MSELoss(), schedule=Schedule(schedule="linear", end_epoch=20, unit="step")
    )
    x = torch.zeros(64, device=DEVICE)
    y = torch.zeros(64, device=DEVICE)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up on a side stream, as CUDA graphs require
        for _ in range(3):
            lm.compute_loss_xy("a", x, y) + lm.compute_loss_xy("s", x, y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        lm.compute_loss_xy("a", x, y) + lm.compute_loss_xy("s", x, y)
    expected = []
    for i in range(10):
        x.fill_(float(i))
        graph.replay()
        expected.append(float(i))
    lm.update_loss_log()
    series = read_log(lm.log_path).losses  # type: ignore[arg-type]
    lm.close()
    a, s = series["a"], series["s"]
    assert list(a.steps) == list(range(len(a.steps))), "steps not contiguous"
    assert list(a.values)[-10:] == expected, list(a.values)
    assert list(s.steps) == list(a.steps)
    return f"3 warm-up + capture + 10 replays: {len(a.steps)} values each, in order"


CHECKS: dict[str, Callable[[Path], str]] = {
    "sync-debug": sync_debug,
    "balancers": balancers,
    "compile": compile_check,
    "reduce-overhead": reduce_overhead,
    "capture": capture,
}
CUDA_ONLY = {"reduce-overhead", "capture"}


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    args = argv if argv is not None else sys.argv[1:]
    DEVICE = torch.device(args[args.index("--device") + 1] if "--device" in args else "cuda")
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine (try --device cpu).")
        return 2
    name_of = torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu"
    print(f"device: {name_of}, torch {torch.__version__}")
    failed = 0
    for name, check in CHECKS.items():
        if DEVICE.type != "cuda" and name in CUDA_ONLY:
            print(f"| {name} | skipped | - | needs CUDA |")
            continue
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                detail, ok = check(Path(tmp)), True
            except Exception as exc:  # report every check, then fail
                detail, ok = f"{type(exc).__name__}: {exc}", False
                traceback.print_exc()
        failed += not ok
        seconds = time.perf_counter() - start
        print(f"| {name} | {'ok' if ok else 'FAIL'} | {seconds:.1f} s | {detail} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

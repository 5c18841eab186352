"""Memory per recorded step per loss: nectarloss's history against the naive lists.

* nectarloss: device buffer bytes / capacity (float32), plus the host weight runs
  (``LMHistory.weight_nbytes``: two compact arrays, 12 B per run), plus whatever Python
  memory the recording loop keeps (``tracemalloc`` net growth, which also sees the
  staged values' wrappers).
  The staging list (at most ``LMHistory.STAGE_SIZE`` 0-d tensors per loss) is a fixed
  cost, not a per-step one; it is measured and reported separately.
* naive (``benchmarks/baselines/naive_manager.py``): ``tracemalloc`` net growth of the
  recording loop (the two Python lists of floats), cross-checked with a deep size.

Weight schedules decide how many weight runs there are: a constant weight is one run,
an epoch schedule one run per epoch; a step schedule stores none (its weights are
recomputed from the pure schedule when read). The worst case, a weight that changes at
every call (an epoch schedule fed fractional epochs), is one run per step: 12 B.

Target: <= 8 bytes per recorded step per loss (naive: about 40).

Run: ``python -m benchmarks.memory [--device cuda] [--quick]``.
"""

# ruff: noqa: E402
from __future__ import annotations

import gc
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

from benchmarks.baselines.naive_manager import NaiveLossManager
from benchmarks.common import Row, pick, script_main
from nectarloss import LossManager, Schedule
from nectarloss.history import LMHistory

NAME = "memory"
NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes of a list/tuple of Python numbers, counting each shared object once."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, (list, tuple)):
        size += sum(deep_size(item, seen) for item in obj)
    return size


_STAGED_PROBE = """
import gc, os, sys, torch
device = torch.device(sys.argv[1])
count = int(sys.argv[2])
x = torch.randn(1, 1, 30, 30, device=device)
y = torch.randn(1, 1, 30, 30, device=device)
l1 = torch.nn.L1Loss()
keep = [l1(x, y).detach() for _ in range(1000)]  # warm the allocators
del keep
gc.collect()
def used():
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = used()
keep = [l1(x, y).detach() for _ in range(count)]
print((used() - before) / count)
"""


def staged_value_bytes(device: torch.device, count: int = 50_000) -> float | None:
    """Memory held by one staged 0-d loss value, measured in a fresh process.

    CPU: resident set growth (Python wrapper, TensorImpl, storage, malloc overhead);
    CUDA: caching-allocator bytes (a 512-byte block per 0-d tensor). ``None`` if the
    probe fails (e.g. no ``/proc``).
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", _STAGED_PROBE, str(device), str(count)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return float(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def traced_recording(device: torch.device, steps: int, tmp: str) -> dict[str, Any]:
    """Net Python memory of recording ``steps`` x 4 losses, both managers, constant weights."""
    x = torch.randn(1, 1, 30, 30, device=device)
    y = torch.randn(1, 1, 30, 30, device=device)
    out: dict[str, Any] = {"steps": steps, "losses": len(NAMES)}
    for side in ("ours", "naive"):
        manager: LossManager | NaiveLossManager
        if side == "ours":
            manager = LossManager(Path(tmp) / side, history_buffer_size=steps)
        else:
            manager = NaiveLossManager(Path(tmp) / side, history_buffer_size=steps)
        for name in NAMES:
            manager.register_loss_fn(name, nn.L1Loss(), loss_weight=100.0)
        for name in NAMES:  # allocate lazily created state before tracing
            manager.compute_loss_xy(name, x, y, epoch=0)
        gc.collect()
        tracemalloc.start()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(steps - 1):
            for name in NAMES:
                manager.compute_loss_xy(name, x, y, epoch=0)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        record: dict[str, Any] = {"traced_bytes": end - start}
        if isinstance(manager, LossManager):
            entries = manager.get_registered_losses(strip=False).values()
            record["device_bytes"] = sum(e.history.nbytes for e in entries)
            record["capacity"] = steps
            record["weight_run_bytes"] = sum(e.history.weight_nbytes for e in entries)
            record["staged_now"] = sum(e.history.num_staged for e in entries)
            manager.close()
        else:
            record["list_deep_bytes"] = sum(
                deep_size(e.history.losses) + deep_size(e.history.weights)
                for e in manager.losses.values()
            )
        out[side] = record
    return out


def schedule_runs(
    device: torch.device, steps: int, steps_per_epoch: int, tmp: str
) -> dict[str, Any]:
    """Host weight-run bytes per step for a constant weight, an epoch and a step schedule."""
    x = torch.randn(1, 1, 30, 30, device=device)
    y = torch.randn(1, 1, 30, 30, device=device)
    epochs = max(steps // steps_per_epoch, 1)
    by_epoch = Schedule(
        schedule="linear", start_epoch=0, end_epoch=epochs, initial_value=100.0, target_value=10.0
    )
    cases = {
        "constant": None,
        "epoch schedule": by_epoch,
        "every call": by_epoch.model_copy(),  # fed fractional epochs below
        "step schedule": Schedule(
            schedule="linear",
            start_epoch=0,
            end_epoch=steps,
            initial_value=100.0,
            target_value=10.0,
            unit="step",
        ),
    }
    # One more than the steps, so the buffers are measured full (not just flushed).
    lm = LossManager(Path(tmp) / "schedules", history_buffer_size=steps + 1)
    for name, schedule in cases.items():
        if schedule is None:
            lm.register_loss_fn(name, nn.L1Loss(), loss_weight=100.0)
        else:
            lm.register_loss_fn(name, nn.L1Loss(), schedule=schedule)
    for step in range(steps):
        epoch = step // steps_per_epoch
        for name in cases:  # "every call" gets a fractional epoch: a new weight each call
            at = step / steps_per_epoch if name == "every call" else epoch
            lm.compute_loss_xy(name, x, y, epoch=at)
    out: dict[str, Any] = {"steps": steps, "steps_per_epoch": steps_per_epoch}
    for name, entry in lm.get_registered_losses(strip=False).items():
        history: LMHistory = entry.history
        out[name] = {
            "runs": history.weight_nbytes // 12,
            "device_bytes_per_step": history.nbytes / history.capacity,
            "run_bytes_per_step": history.weight_nbytes / steps,
        }
    lm.close()
    return out


def run(device: torch.device, quick: bool, repeats: int | None = None) -> dict[str, Any]:
    del repeats  # deterministic sizes
    traced_steps = pick(quick, 20_000, 5_000)
    schedule_steps = pick(quick, 100_000, 20_000)
    with tempfile.TemporaryDirectory() as tmp:
        traced = traced_recording(device, traced_steps, tmp)
        schedules = schedule_runs(device, schedule_steps, 1000, tmp)
    staged = staged_value_bytes(device)
    ours, naive = traced["ours"], traced["naive"]
    n = traced["steps"] * traced["losses"]
    ours_per_step = ours["device_bytes"] / (ours["capacity"] * traced["losses"]) + (
        ours["traced_bytes"] / n
    )
    return {
        "traced": traced,
        "schedules": schedules,
        "ours_bytes_per_step": ours_per_step,
        "ours_device_bytes_per_step": ours["device_bytes"] / (ours["capacity"] * traced["losses"]),
        "ours_host_bytes_per_step": ours["traced_bytes"] / n,
        "naive_bytes_per_step": naive["traced_bytes"] / n,
        "naive_deep_bytes_per_step": naive["list_deep_bytes"] / n,
        "staged_value_bytes": staged,
        "staging_bound_bytes_per_loss": None if staged is None else staged * LMHistory.STAGE_SIZE,
        "notes": []
        if staged is None
        else [
            f"staging: up to {LMHistory.STAGE_SIZE} 0-d tensors per loss wait for one "
            f"torch.stack; {staged:.0f} B each on {device.type} = "
            f"{staged * LMHistory.STAGE_SIZE / 1024:.0f} KiB per loss, fixed (not per step)",
        ],
    }


def rows(result: dict[str, Any]) -> list[Row]:
    r, s = result, result["schedules"]
    step = s["step schedule"]
    return [
        Row(
            "4a",
            "bytes per recorded step per loss (constant weight; device buffer + traced host)",
            f"{r['ours_bytes_per_step']:.2f} B ({r['ours_device_bytes_per_step']:.0f} dev + "
            f"{r['ours_host_bytes_per_step']:.2f} host)",
            f"{r['naive_bytes_per_step']:.1f} B (deep size {r['naive_deep_bytes_per_step']:.1f})",
            f"naive/ours = {r['naive_bytes_per_step'] / r['ours_bytes_per_step']:.1f}x",
            "<= 8 B",
            r["ours_bytes_per_step"] <= 8.0,
        ),
        Row(
            "4b",
            f"same, epoch schedule ({s['epoch schedule']['runs']} weight runs)",
            f"{4 + s['epoch schedule']['run_bytes_per_step']:.2f} B",
            "",
            "",
            "<= 8 B",
            4 + s["epoch schedule"]["run_bytes_per_step"] <= 8.0,
        ),
        Row(
            "4c",
            f"same, step schedule ({step['runs']} weight runs: recomputed when read)",
            f"{4 + step['run_bytes_per_step']:.1f} B",
            "",
            "",
            "<= 8 B",
            4 + step["run_bytes_per_step"] <= 8.0,
        ),
        Row(
            "4e",
            f"same, weight new at every call ({s['every call']['runs']} runs, 2 arrays)",
            f"{4 + s['every call']['run_bytes_per_step']:.1f} B",
            "",
            "was ~72 B as a list of tuples",
            "<= 16 B",
            4 + s["every call"]["run_bytes_per_step"] <= 16.0,
        ),
        Row(
            "4d",
            "fixed staging memory per loss (<= 128 staged 0-d tensors)",
            "n/a"
            if r["staging_bound_bytes_per_loss"] is None
            else f"{r['staging_bound_bytes_per_loss'] / 1024:.0f} KiB "
            f"({r['staged_value_bytes']:.0f} B each)",
            "",
            "bounded, not per step",
            "",
            None,
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    script_main(NAME, __doc__, run, rows, argv)


if __name__ == "__main__":
    main()

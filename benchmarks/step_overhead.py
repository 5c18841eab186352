"""Per-call overhead of ``compute_loss_xy`` and host syncs per training step.

1. A tiny L1 (``1x1x30x30``): time per call minus the time of the bare weighted call
   ``l1(x, y) * w``, for nectarloss and for the naive per-step manager (the seed design,
   ``benchmarks/baselines/naive_manager.py``). The three run interleaved; the ratio is
   the median over repeats of ``overhead_ours / overhead_naive``. Target: <= 0.5.
2. Host syncs per training step of a pix2pix objective (4 losses), counted with
   :class:`nectarloss.testing.SyncCounter`. Target: naive >= 1 per loss, ours 0.

Run: ``python -m benchmarks.step_overhead [--device cuda] [--quick]``.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

from benchmarks.baselines.naive_manager import NaiveLossManager
from benchmarks.common import (
    Row,
    fmt_us,
    interleave,
    median,
    median_ratio,
    pick,
    script_main,
)
from nectarloss import LMHistory, LossManager, SyncCounter
from nectarloss.losses import find_loss_entry
from nectarloss.validation import shape_of

NAME = "step_overhead"
WEIGHT = 100.0
PIX2PIX = (
    ("G_GAN", nn.BCEWithLogitsLoss, 1.0, "G"),
    ("G_L1", nn.L1Loss, 100.0, "G"),
    ("D_real", nn.BCEWithLogitsLoss, 1.0, "D"),
    ("D_fake", nn.BCEWithLogitsLoss, 1.0, "D"),
)


def measure_overhead(device: torch.device, calls: int, repeats: int, tmp: str) -> dict[str, Any]:
    torch.manual_seed(0)
    x = torch.randn(1, 1, 30, 30, device=device)
    y = torch.randn(1, 1, 30, 30, device=device)
    l1 = nn.L1Loss()
    capacity = 2 * calls + 64
    lm = LossManager(Path(tmp) / "ours", history_buffer_size=capacity)
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=WEIGHT, tags=["G"])
    naive = NaiveLossManager(Path(tmp) / "naive", history_buffer_size=capacity)
    naive.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=WEIGHT, tags=["G"])

    def flush_both() -> None:
        lm.update_loss_log()
        naive.update_loss_log()

    times = interleave(
        {
            "bare": lambda: l1(x, y) * WEIGHT,
            "ours": lambda: lm.compute_loss_xy("G_L1", x, y, epoch=0),
            "naive": lambda: naive.compute_loss_xy("G_L1", x, y, epoch=0),
        },
        n=calls,
        repeats=repeats,
        device=device,
        warmup=200,
        between=flush_both,
    )
    ours_over = [o - b for o, b in zip(times["ours"], times["bare"], strict=True)]
    naive_over = [n - b for n, b in zip(times["naive"], times["bare"], strict=True)]
    lm.close()
    return {
        "calls_per_repeat": calls,
        "repeats": repeats,
        "bare_s": median(times["bare"]),
        "ours_s": median(times["ours"]),
        "naive_s": median(times["naive"]),
        "ours_overhead_s": median(ours_over),
        "naive_overhead_s": median(naive_over),
        "overhead_ratio": median_ratio(ours_over, naive_over),
        "raw_times_s": times,
    }


def breakdown(device: torch.device, calls: int, repeats: int, tmp: str) -> dict[str, float]:
    """Median seconds of the pieces each side adds to the bare call, timed alone."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 30, 30, device=device)
    y = torch.randn(1, 1, 30, 30, device=device)
    out = nn.L1Loss()(x, y)
    raw = out.detach()
    history = LMHistory(10 * calls * (repeats + 2), device=device)
    catalog = find_loss_entry(nn.L1Loss())
    times = interleave(
        {
            "ours: detach": lambda: out.detach(),
            "ours: LMHistory.record (stack amortised)": lambda: history.record(raw, WEIGHT, 0),
            "ours: catalog shape check": lambda: (
                catalog is not None and catalog.same_shape and shape_of(y) != shape_of(x)
            ),
            "naive: loss.mean() of a 0-d loss": lambda: out.mean(),
            "naive: .item()": lambda: out.item(),
            "naive: .detach().cpu().clone()": lambda: out.detach().cpu().clone(),
        },
        n=calls,
        repeats=repeats,
        device=device,
        warmup=200,
    )
    return {name: median(values) for name, values in times.items()}


def count_syncs(device: torch.device, steps: int, tmp: str) -> dict[str, Any]:
    """Syncs per step of 4 pix2pix-shaped losses (D logits 1x1x6x6, G L1 on 3x32x32)."""
    torch.manual_seed(0)
    logits = torch.randn(4, 1, 6, 6, device=device)
    fake = torch.rand(4, 3, 32, 32, device=device)
    real = torch.rand(4, 3, 32, 32, device=device)
    ones, zeros = torch.ones_like(logits), torch.zeros_like(logits)
    inputs = {
        "G_GAN": (logits, ones),
        "G_L1": (fake, real),
        "D_real": (logits, ones),
        "D_fake": (logits, zeros),
    }
    lm = LossManager(Path(tmp) / "sync_ours", history_buffer_size=10 * steps)
    naive = NaiveLossManager(Path(tmp) / "sync_naive", history_buffer_size=10 * steps)
    for name, cls, weight, tag in PIX2PIX:
        lm.register_loss_fn(name, cls(), loss_weight=weight, tags=[tag])
        naive.register_loss_fn(name, cls(), loss_weight=weight, tags=[tag])
    out: dict[str, Any] = {"steps": steps, "losses": len(PIX2PIX)}
    for label, manager in (("ours", lm), ("naive", naive)):
        with SyncCounter() as counter:
            for _ in range(steps):
                for name, (a, b) in inputs.items():
                    manager.compute_loss_xy(name, a, b, epoch=0)
        out[label] = {
            "scalar_reads_per_step": counter.scalar_reads / steps,
            "host_copies_per_step": counter.host_copies / steps,
            "syncs_per_step": counter.total / steps,
        }
    # What a flush and a progress read cost instead (once per epoch / every N steps).
    with SyncCounter() as counter:
        lm.get_loss_values()
    out["ours"]["get_loss_values_syncs"] = counter.total
    with SyncCounter() as counter:
        lm.update_loss_log()
    out["ours"]["flush_syncs"] = counter.total
    lm.close()
    return out


def run(device: torch.device, quick: bool, repeats: int | None = None) -> dict[str, Any]:
    calls = pick(quick, 2000, 1000)
    reps = pick(quick, 31, 11, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        overhead = measure_overhead(device, calls, reps, tmp)
        syncs = count_syncs(device, steps=pick(quick, 256, 130), tmp=tmp)
        pieces = breakdown(device, calls, pick(quick, 7, 3), tmp)
    return {"overhead": overhead, "syncs": syncs, "breakdown_s": pieces, "notes": []}


def rows(result: dict[str, Any]) -> list[Row]:
    o, s = result["overhead"], result["syncs"]
    per_loss_naive = s["naive"]["syncs_per_step"] / s["losses"]
    pieces = result["breakdown_s"].items()
    ours_pieces = [(k, v) for k, v in pieces if k.startswith("ours")]
    naive_pieces = [(k, v) for k, v in pieces if k.startswith("naive")]
    return [
        Row(
            "1",
            f"compute_loss_xy overhead per call, L1 1x1x30x30 (bare call {fmt_us(o['bare_s'])})",
            fmt_us(o["ours_overhead_s"]),
            fmt_us(o["naive_overhead_s"]),
            f"ours/naive = {o['overhead_ratio']:.2f}",
            "<= 0.50",
            o["overhead_ratio"] <= 0.5,
        ),
        Row(
            "",
            "where the overhead goes (pieces timed alone, us)",
            ", ".join(f"{k.split(': ', 1)[1]} {v * 1e6:.2f}" for k, v in ours_pieces),
            ", ".join(f"{k.split(': ', 1)[1]} {v * 1e6:.2f}" for k, v in naive_pieces),
            "rest: Python call overhead",
            "",
            None,
        ),
        Row(
            "2",
            f"host syncs per step ({s['losses']} losses; SyncCounter)",
            f"{s['ours']['syncs_per_step']:g}",
            f"{s['naive']['syncs_per_step']:g} ({s['naive']['scalar_reads_per_step']:g} .item"
            f" + {s['naive']['host_copies_per_step']:g} .cpu)",
            f"naive {per_loss_naive:g}/loss/step; ours {s['ours']['syncs_per_step']:g}",
            "ours 0, naive >= 1/loss",
            s["ours"]["syncs_per_step"] == 0 and per_loss_naive >= 1,
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    script_main(NAME, __doc__, run, rows, argv)


if __name__ == "__main__":
    main()

"""Logging cost of a long run: 100 epochs x 1,000 steps x 4 losses, one flush per epoch.

nectarloss (append one JSON Lines chunk per loss per flush, one device-to-host copy)
against the naive manager (``benchmarks/baselines/naive_manager.py``: read the whole
``loss_log.json``, append, rewrite it with ``json``). Both record the same values in the
same loop, step by step, and flush one after the other at each epoch end (the order
alternates by epoch).

Targets: total flush time at least 100x below the naive one; our last flush over our
first below 1.5 (flush cost independent of the log's length).

Run: ``python -m benchmarks.flush_scaling [--epochs 100 --steps 1000] [--device cuda]``.
``--naive-epochs N`` stops running the naive side after ``N`` epochs (reported as such).
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

from benchmarks.baselines.naive_manager import NaiveLossManager
from benchmarks.common import Row, add_common_args, fmt_ms, fmt_s, pick, report, setup, sync
from nectarloss import LossManager

NAME = "flush_scaling"
NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")


def _edge(values: list[float], first: bool) -> float:
    """Median of the first (or last) ten flushes: a slow flush or two does not decide."""
    part = values[:10] if first else values[-10:]
    return statistics.median(part)


def _slope(values: list[float]) -> float:
    """Least-squares growth of the flush time per epoch (seconds per epoch)."""
    if len(values) < 2:
        return 0.0
    return statistics.linear_regression(range(len(values)), values).slope


def run(
    device: torch.device,
    quick: bool,
    repeats: int | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    naive_epochs: int | None = None,
) -> dict[str, Any]:
    del repeats  # one long run; the per-flush series is the sample
    epochs = epochs if epochs is not None else pick(quick, 100, 20)
    steps = steps if steps is not None else 1000
    naive_epochs = epochs if naive_epochs is None else min(naive_epochs, epochs)
    torch.manual_seed(0)
    x = torch.randn(1, 1, 30, 30, device=device)
    y = torch.randn(1, 1, 30, 30, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        lm = LossManager(Path(tmp) / "ours", history_buffer_size=steps)
        naive = NaiveLossManager(Path(tmp) / "naive", history_buffer_size=steps)
        for name in NAMES:
            lm.register_loss_fn(name, nn.L1Loss(), tags=[name[0]])
            naive.register_loss_fn(name, nn.L1Loss(), tags=[name[0]])
        ours_flush: list[float] = []
        naive_flush: list[float] = []
        ours_steps = naive_steps = 0.0
        for epoch in range(epochs):
            use_naive = epoch < naive_epochs
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                for name in NAMES:
                    lm.compute_loss_xy(name, x, y, epoch=epoch)
            sync(device)
            t1 = time.perf_counter()
            if use_naive:
                for _ in range(steps):
                    for name in NAMES:
                        naive.compute_loss_xy(name, x, y, epoch=epoch)
            sync(device)
            t2 = time.perf_counter()
            ours_steps += t1 - t0
            naive_steps += t2 - t1
            order = ("ours", "naive") if epoch % 2 == 0 else ("naive", "ours")
            for side in order:
                if side == "naive" and not use_naive:
                    continue
                start = time.perf_counter()
                if side == "ours":
                    lm.update_loss_log()
                else:
                    naive.update_loss_log()
                sync(device)
                (ours_flush if side == "ours" else naive_flush).append(time.perf_counter() - start)
        lm.close()
        ours_bytes = (Path(tmp) / "ours" / "loss_log.jsonl").stat().st_size
        naive_bytes = naive.log_path.stat().st_size if naive_flush else 0
    ours_total = sum(ours_flush)
    naive_total = sum(naive_flush)
    # Compare like with like when the naive side ran fewer epochs.
    ours_same = sum(ours_flush[: len(naive_flush)])
    return {
        "epochs": epochs,
        "steps": steps,
        "losses": len(NAMES),
        "naive_epochs": naive_epochs,
        "ours_flush_total_s": ours_total,
        "naive_flush_total_s": naive_total,
        "flush_total_ratio": naive_total / ours_same if ours_same else float("nan"),
        "ours_first_flush_s": _edge(ours_flush, True),
        "ours_last_flush_s": _edge(ours_flush, False),
        "ours_last_over_first": _edge(ours_flush, False) / _edge(ours_flush, True),
        "ours_flush_slope_s_per_epoch": _slope(ours_flush),
        "naive_flush_slope_s_per_epoch": _slope(naive_flush),
        "naive_first_flush_s": _edge(naive_flush, True) if naive_flush else None,
        "naive_last_flush_s": _edge(naive_flush, False) if naive_flush else None,
        "naive_last_over_first": (
            _edge(naive_flush, False) / _edge(naive_flush, True) if naive_flush else None
        ),
        "ours_steps_total_s": ours_steps,
        "naive_steps_total_s": naive_steps,
        "ours_log_bytes": ours_bytes,
        "naive_log_bytes": naive_bytes,
        "ours_flush_s": ours_flush,
        "naive_flush_s": naive_flush,
        "notes": (
            []
            if naive_epochs == epochs
            else [
                f"naive side run for the first {naive_epochs} of {epochs} epochs only; "
                "the ratio compares the same epochs"
            ]
        ),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    r = result
    run_desc = f"{r['epochs']} ep x {r['steps']} steps x {r['losses']} losses"
    naive_desc = "" if r["naive_epochs"] == r["epochs"] else f" ({r['naive_epochs']} ep)"
    # The 100x target is for the 100 x 1,000 run: the naive flush is O(log), so the
    # ratio grows with the run's length.
    full = r["epochs"] >= 100 and r["steps"] >= 1000 and r["naive_epochs"] == r["epochs"]
    return [
        Row(
            "3a",
            f"total flush time, {run_desc}, flush per epoch",
            fmt_s(r["ours_flush_total_s"]),
            fmt_s(r["naive_flush_total_s"]) + naive_desc,
            f"naive/ours = {r['flush_total_ratio']:.0f}x",
            ">= 100x" if full else ">= 100x (full run)",
            r["flush_total_ratio"] >= 100 if full else None,
        ),
        Row(
            "3b",
            "last flush / first flush (median of 10 each); fitted growth per epoch",
            f"{fmt_ms(r['ours_first_flush_s'])} -> {fmt_ms(r['ours_last_flush_s'])} "
            f"({r['ours_flush_slope_s_per_epoch'] * 1e6:+.1f} us/epoch)",
            f"{fmt_ms(r['naive_first_flush_s'])} -> {fmt_ms(r['naive_last_flush_s'])} "
            f"({r['naive_flush_slope_s_per_epoch'] * 1e6:+.0f} us/epoch)",
            f"ours {r['ours_last_over_first']:.2f}, naive {r['naive_last_over_first']:.0f}",
            "ours < 1.5",
            r["ours_last_over_first"] < 1.5,
        ),
        Row(
            "3c",
            "step time of that run (all compute_loss_xy calls)",
            fmt_s(r["ours_steps_total_s"]),
            fmt_s(r["naive_steps_total_s"]) + naive_desc,
            f"log {r['ours_log_bytes'] / 1e6:.1f} MB vs {r['naive_log_bytes'] / 1e6:.1f} MB",
            "",
            None,
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--epochs", type=int, default=None, help="default 100 (quick: 20)")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (1000)")
    parser.add_argument(
        "--naive-epochs",
        type=int,
        default=None,
        help="run the naive side for the first N epochs only",
    )
    args = parser.parse_args(argv)
    device = setup(args)
    result = run(device, args.quick, args.repeats, args.epochs, args.steps, args.naive_epochs)
    report(NAME, device, args, result, rows(result))


if __name__ == "__main__":
    main()

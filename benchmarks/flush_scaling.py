"""Logging cost of a long run: 100 epochs x 1,000 steps x 4 losses, one flush per epoch.

Run by hand: ``python benchmarks/flush_scaling.py [--epochs 100 --steps 1000]``.
Prints the total step time, the total flush time, and the last flush over the first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from nectarloss import LossManager


def run(epochs: int, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    x, y = torch.randn(1, 1, 30, 30), torch.randn(1, 1, 30, 30)
    with tempfile.TemporaryDirectory() as tmp:
        lm = LossManager(tmp, history_buffer_size=steps)
        names = ["G_GAN", "G_L1", "D_real", "D_fake"]
        for name in names:
            lm.register_loss_fn(name, nn.L1Loss(), tags=[name[0]])
        flushes: list[float] = []
        start = time.perf_counter()
        for epoch in range(epochs):
            for _ in range(steps):
                for name in names:
                    lm.compute_loss_xy(name, x, y, epoch=epoch)
            t0 = time.perf_counter()
            lm.update_loss_log()
            flushes.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
    first = statistics.median(flushes[:5])
    last = statistics.median(flushes[-5:])
    return {
        "total_s": total,
        "flush_total_s": sum(flushes),
        "first_flush_ms": first * 1e3,
        "last_flush_ms": last * 1e3,
        "last_over_first": last / first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    for key, value in run(args.epochs, args.steps).items():
        print(f"{key:>16}: {value:.3f}")


if __name__ == "__main__":
    main()

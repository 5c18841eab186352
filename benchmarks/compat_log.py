"""What NectarGAN's ``loss_log.json`` costs under ``nectarloss.compat.nectargan``.

The adapter's ``update_loss_log`` appends to ``loss_log.jsonl`` (O(buffer)) and then
rewrites ``loss_log.json`` from it (O(run): read the whole JSONL log, write the whole
file). This measures both parts at every epoch of a pix2pix-shaped run (4 losses,
``--steps`` per epoch, one update per epoch), next to NectarGAN's own way (the naive
manager: read the whole JSON, append, rewrite it once per loss).

Run: ``python -m benchmarks.compat_log [--epochs 100 --steps 1000]``.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

from benchmarks.baselines.naive_manager import NaiveLossManager
from benchmarks.common import Row, add_common_args, fmt_ms, pick, report, setup, sync
from nectarloss.compat.nectargan import LossManager

NAME = "compat_log"
NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")


def run(
    device: torch.device, quick: bool, epochs: int | None = None, steps: int | None = None
) -> dict[str, Any]:
    epochs = epochs if epochs is not None else pick(quick, 100, 20)
    steps = steps if steps is not None else 1000
    x = torch.randn(1, 1, 30, 30, device=device)
    y = torch.randn(1, 1, 30, 30, device=device)
    flush: list[float] = []
    rewrite: list[float] = []
    naive_update: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data" / "train").mkdir(parents=True)
        config = SimpleNamespace(
            common=SimpleNamespace(device=str(device)),
            dataloader=SimpleNamespace(dataroot=str(Path(tmp) / "data")),
        )
        # one more than an epoch: the epoch's values are appended by update_loss_log
        lm = LossManager(config, Path(tmp) / "compat", history_buffer_size=steps + 1)
        naive = NaiveLossManager(Path(tmp) / "naive", history_buffer_size=steps)
        for name in NAMES:
            lm.register_loss_fn(name, nn.L1Loss(), tags=[name[0]])
            naive.register_loss_fn(name, nn.L1Loss(), tags=[name[0]])
        for epoch in range(1, epochs + 1):
            for _ in range(steps):
                for name in NAMES:
                    lm.compute_loss_xy(name, x, y, epoch)
                    naive.compute_loss_xy(name, x, y, epoch=epoch)
            sync(device)
            start = time.perf_counter()
            lm.native.update_loss_log()  # the append ...
            middle = time.perf_counter()
            lm.update_loss_log()  # ... and the rewrite (nothing left to append)
            end = time.perf_counter()
            naive.update_loss_log()
            flush.append(middle - start)
            rewrite.append(end - middle)
            naive_update.append(time.perf_counter() - end)
        json_bytes = (Path(tmp) / "compat" / "loss_log.json").stat().st_size
        lm.close()
    return {
        "epochs": epochs,
        "steps": steps,
        "losses": len(NAMES),
        "append_s": flush,
        "rewrite_s": rewrite,
        "naive_update_s": naive_update,
        "json_bytes": json_bytes,
    }


def rows(r: dict[str, Any]) -> list[Row]:
    values = r["epochs"] * r["steps"] * r["losses"]
    mid = r["epochs"] // 2
    return [
        Row(
            "c1",
            f"compat update_loss_log, {r['losses']} losses x {r['steps']} steps per epoch: "
            "append to loss_log.jsonl, epoch 1 -> last",
            f"{fmt_ms(r['append_s'][0])} -> {fmt_ms(r['append_s'][-1])}",
            "",
            "O(buffer)",
            "",
            None,
        ),
        Row(
            "c2",
            f"... then rewrite loss_log.json, epoch 1 -> {mid} -> {r['epochs']} "
            f"({values:,} values, {r['json_bytes'] / 1e6:.1f} MB at the end)",
            f"{fmt_ms(r['rewrite_s'][0])} -> {fmt_ms(r['rewrite_s'][mid - 1])} -> "
            f"{fmt_ms(r['rewrite_s'][-1])}",
            f"{fmt_ms(r['naive_update_s'][0])} -> {fmt_ms(r['naive_update_s'][mid - 1])} -> "
            f"{fmt_ms(r['naive_update_s'][-1])}",
            f"total {sum(r['rewrite_s']):.2f} s vs {sum(r['naive_update_s']):.2f} s",
            "",
            None,
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--epochs", type=int, default=None, help="default 100 (quick: 20)")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (1000)")
    args = parser.parse_args(argv)
    device = setup(args)
    result = run(device, args.quick, args.epochs, args.steps)
    report(NAME, device, args, result, rows(result))


if __name__ == "__main__":
    main()

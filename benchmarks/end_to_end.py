"""End to end: the demo's pix2pix training step with nectarloss vs calling the losses directly.

The step is ``nectarloss.demo.run_demo``'s loop body: a U-Net generator and a PatchGAN
discriminator (``nectarloss.demo``, default demo config: batch 16, 32 px), a D step with
``D_real`` and ``D_fake`` and a G step with ``G_GAN`` and ``G_L1`` (the shipped
``pix2pix_basic`` spec). Three sides, each with its own identical copy of the models:

* ``direct``: ``loss_fn(pred, target) * weight``, no manager;
* ``nectarloss``: ``LossManager.compute_loss_xy``, flushing the log after every block
  of steps (more often than the demo's once per epoch);
* ``naive``: the seed's per-step manager (``benchmarks/baselines/naive_manager.py``).

Blocks of steps alternate between the sides; the overhead is the median over blocks of
``time(side) / time(direct) - 1``. Target: nectarloss under 3% on CPU.

Run: ``python -m benchmarks.end_to_end [--device cuda] [--quick]``.
"""

# ruff: noqa: E402
from __future__ import annotations

import copy
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import Tensor, nn

from benchmarks.baselines.naive_manager import NaiveLossManager
from benchmarks.common import (
    Row,
    fmt_ms,
    interleave,
    median,
    median_ratio,
    pick,
    script_main,
)
from nectarloss import LossManager

NAME = "end_to_end"
LossFn = Callable[[str, Tensor, Tensor], Tensor]


def _models(device: torch.device) -> tuple[Any, nn.Module, nn.Module, str]:
    """The demo's config and models; stand-ins only if ``nectarloss.demo`` is missing."""
    from nectarloss.demo import PatchDiscriminator, UNetGenerator, load_demo_config

    cfg = load_demo_config()
    torch.manual_seed(cfg.seed)
    gen = UNetGenerator(1, 3, cfg.base_channels, cfg.unet_depth).to(device)
    disc = PatchDiscriminator(1, 3, cfg.base_channels).to(device)
    return cfg, gen, disc, "nectarloss.demo (UNetGenerator, PatchDiscriminator)"


def make_step(
    gen: nn.Module,
    disc: nn.Module,
    lr: float,
    beta1: float,
    x: Tensor,
    y: Tensor,
    loss: LossFn,
) -> Callable[[], None]:
    """One pix2pix G and D step, as in ``run_demo``; ``loss`` computes a weighted loss."""
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(beta1, 0.999))

    def step() -> None:
        fake = gen(x)
        logits_real = disc(x, y)
        logits_fake = disc(x, fake.detach())
        loss_d = 0.5 * (
            loss("D_real", logits_real, torch.full_like(logits_real, 1.0))
            + loss("D_fake", logits_fake, torch.full_like(logits_fake, 0.0))
        )
        opt_d.zero_grad(set_to_none=True)
        torch.autograd.backward(loss_d)
        opt_d.step()
        logits_gen = disc(x, fake)
        loss_g = loss("G_GAN", logits_gen, torch.full_like(logits_gen, 1.0))
        loss_g = loss_g + loss("G_L1", fake, y)
        opt_g.zero_grad(set_to_none=True)
        torch.autograd.backward(loss_g)
        opt_g.step()

    return step


def run(device: torch.device, quick: bool, repeats: int | None = None) -> dict[str, Any]:
    from nectarloss.demo import make_pairs

    cfg, gen, disc, source = _models(device)
    x, y = make_pairs(cfg.batch_size, cfg.image_size, torch.Generator().manual_seed(0))
    x, y = x.to(device), y.to(device)
    # Short blocks, many repeats: neighbouring blocks see the same machine load.
    steps = pick(quick, 5, 5)
    reps = pick(quick, 41, 11, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        lm = LossManager(Path(tmp) / "ours", history_buffer_size=10 * steps * (reps + 2))
        lm.init_from_spec(cfg.spec)
        registered = lm.get_registered_losses()
        naive = NaiveLossManager(Path(tmp) / "naive", history_buffer_size=10**9)
        direct_fns: dict[str, tuple[Callable[..., Tensor], float]] = {}
        for name, entry in registered.items():
            naive.register_loss_fn(name, copy.deepcopy(entry.function), entry.loss_weight)
            direct_fns[name] = (copy.deepcopy(entry.function), entry.loss_weight)

        def direct(name: str, pred: Tensor, target: Tensor) -> Tensor:
            fn, weight = direct_fns[name]
            return fn(pred, target) * weight

        def ours(name: str, pred: Tensor, target: Tensor) -> Tensor:
            return lm.compute_loss_xy(name, pred, target, epoch=0)

        def seed(name: str, pred: Tensor, target: Tensor) -> Tensor:
            return naive.compute_loss_xy(name, pred, target, epoch=0)

        def side(loss: LossFn, flush: Callable[[], object] | None) -> Callable[[], None]:
            step = make_step(copy.deepcopy(gen), copy.deepcopy(disc), cfg.lr, cfg.beta1, x, y, loss)

            def block() -> None:
                for _ in range(steps):
                    step()
                if flush is not None:
                    flush()

            return block

        cases = {
            "direct": side(direct, None),
            "nectarloss": side(ours, lm.update_loss_log),
            "naive": side(seed, naive.update_loss_log),
        }
        times = interleave(cases, n=1, repeats=reps, device=device, warmup=1)
        lm.close()
    ratio_ours = median_ratio(times["nectarloss"], times["direct"])
    ratio_naive = median_ratio(times["naive"], times["direct"])
    return {
        "models": source,
        "config": {
            "batch_size": cfg.batch_size,
            "image_size": cfg.image_size,
            "unet_depth": cfg.unet_depth,
            "base_channels": cfg.base_channels,
            "spec": cfg.spec,
        },
        "steps_per_block": steps,
        "repeats": reps,
        "direct_step_s": median(times["direct"]) / steps,
        "ours_step_s": median(times["nectarloss"]) / steps,
        "naive_step_s": median(times["naive"]) / steps,
        "ours_overhead": ratio_ours - 1.0,
        "naive_overhead": ratio_naive - 1.0,
        "ours_overhead_range": [
            min(a / b for a, b in zip(times["nectarloss"], times["direct"], strict=True)) - 1,
            max(a / b for a, b in zip(times["nectarloss"], times["direct"], strict=True)) - 1,
        ],
        "raw_block_times_s": times,
        "notes": [],
    }


def rows(result: dict[str, Any]) -> list[Row]:
    r = result
    c = r["config"]
    low, high = r["ours_overhead_range"]
    return [
        Row(
            "6",
            f"pix2pix G+D step, 4 losses (demo models, batch {c['batch_size']}, "
            f"{c['image_size']} px)",
            f"{fmt_ms(r['ours_step_s'])} ({r['ours_overhead']:+.2%})",
            f"direct {fmt_ms(r['direct_step_s'])}; naive {fmt_ms(r['naive_step_s'])} "
            f"({r['naive_overhead']:+.2%})",
            f"overhead {r['ours_overhead']:+.2%} (blocks {low:+.1%}..{high:+.1%})",
            "< 3%",
            r["ours_overhead"] < 0.03,
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    script_main(NAME, __doc__, run, rows, argv)


if __name__ == "__main__":
    main()

"""The demo's pix2pix G+D step under ``torch.compile``: with the manager, with bare losses.

The step is ``benchmarks.end_to_end``'s (the demo's U-Net and PatchGAN, default demo
config, the ``pix2pix_basic`` losses): the generator, the D loss and the G loss are
compiled (``fullgraph=True``), backward and the optimizer steps run as usual. Sides:

* ``compiled bare``: ``loss_fn(pred, target) * weight`` inside the compiled functions;
* ``compiled nectarloss``: ``LossManager.compute_loss_xy`` inside them (values recorded
  on the device), flushed between blocks, outside the timed region (a flush costs the
  same compiled or not, and a run makes one per ~1000 steps: benchmark 3 times it);
* ``eager nectarloss``: the same step, not compiled.

Blocks alternate between the sides; the overhead is the median over blocks of
``time(compiled nectarloss) / time(compiled bare) - 1``. Target: under 2%. Graphs per
compiled function are counted too (target: one, plus one when the epoch turns dynamic).

Run: ``python -m benchmarks.compiled_step [--device cuda] [--quick] [--backend inductor]``.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
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
from torch._dynamo.utils import counters

from benchmarks.common import (
    Row,
    add_common_args,
    fmt_ms,
    interleave,
    median,
    median_ratio,
    pick,
    report,
    setup,
)
from benchmarks.end_to_end import _models
from nectarloss import LossManager

NAME = "compiled_step"
LossFn = Callable[[str, Tensor, Tensor, int], Tensor]


def make_step(
    gen: nn.Module,
    disc: nn.Module,
    cfg: Any,
    x: Tensor,
    y: Tensor,
    loss: LossFn,
    compile_backend: str | None,
) -> Callable[[int], None]:
    """One pix2pix step; the generator and both loss parts compiled unless backend is None."""
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))

    def d_part(x: Tensor, y: Tensor, fake: Tensor, epoch: int) -> Tensor:
        real, fake_logits = disc(x, y), disc(x, fake)
        return 0.5 * (
            loss("D_real", real, torch.ones_like(real), epoch)
            + loss("D_fake", fake_logits, torch.zeros_like(fake_logits), epoch)
        )

    def g_part(x: Tensor, y: Tensor, fake: Tensor, epoch: int) -> Tensor:
        logits = disc(x, fake)
        return loss("G_GAN", logits, torch.ones_like(logits), epoch) + loss("G_L1", fake, y, epoch)

    forward: Callable[[Tensor], Tensor] = gen
    if compile_backend is not None:
        forward = torch.compile(gen, fullgraph=True, backend=compile_backend)
        d_part = torch.compile(d_part, fullgraph=True, backend=compile_backend)
        g_part = torch.compile(g_part, fullgraph=True, backend=compile_backend)

    def step(epoch: int) -> None:
        fake = forward(x)
        loss_d = d_part(x, y, fake.detach(), epoch)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = g_part(x, y, fake, epoch)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step


def run(
    device: torch.device, quick: bool, repeats: int | None = None, backend: str = "inductor"
) -> dict[str, Any]:
    from nectarloss.demo import make_pairs

    cfg, gen, disc, source = _models(device)
    x, y = make_pairs(cfg.batch_size, cfg.image_size, torch.Generator().manual_seed(0))
    x, y = x.to(device), y.to(device)
    steps = 5
    reps = pick(quick, 31, 9, repeats)
    torch._dynamo.reset()
    counters.clear()
    with tempfile.TemporaryDirectory() as tmp:
        lms = []
        for side in ("compiled", "eager"):
            lm = LossManager(Path(tmp) / side, device=device, history_buffer_size=4 * steps)
            lm.init_from_spec(cfg.spec)
            lms.append(lm)
        bare = {
            n: (copy.deepcopy(e.function), e.loss_weight)
            for n, e in lms[0].get_registered_losses().items()
        }

        def direct(name: str, pred: Tensor, target: Tensor, epoch: int) -> Tensor:
            fn, weight = bare[name]
            return fn(pred, target) * weight

        def with_manager(lm: LossManager) -> LossFn:
            def loss(name: str, pred: Tensor, target: Tensor, epoch: int) -> Tensor:
                return lm.compute_loss_xy(name, pred, target, epoch=epoch)

            return loss

        def side(loss: LossFn, backend_: str | None) -> Callable[[], None]:
            step = make_step(copy.deepcopy(gen), copy.deepcopy(disc), cfg, x, y, loss, backend_)
            epoch = [0]

            def block() -> None:
                for _ in range(steps):
                    step(epoch[0])
                epoch[0] += 1  # a new epoch every block: the epoch must not recompile

            return block

        def flush() -> None:  # between blocks, untimed: a run flushes once per ~1000 steps
            for lm in lms:
                lm.update_loss_log()

        cases = {
            "compiled bare": side(direct, backend),
            "compiled nectarloss": side(with_manager(lms[0]), backend),
            "eager nectarloss": side(with_manager(lms[1]), None),
        }
        times = interleave(cases, n=1, repeats=reps, device=device, warmup=2, between=flush)
        for lm in lms:
            lm.close()
    graphs = int(counters["stats"]["unique_graphs"])
    ratio = median_ratio(times["compiled nectarloss"], times["compiled bare"])
    return {
        "models": source,
        "backend": backend,
        "steps_per_block": steps,
        "repeats": reps,
        "bare_step_s": median(times["compiled bare"]) / steps,
        "ours_step_s": median(times["compiled nectarloss"]) / steps,
        "eager_step_s": median(times["eager nectarloss"]) / steps,
        "overhead": ratio - 1.0,
        "graphs": graphs,
        "raw_block_times_s": times,
        "notes": [f"{graphs} graphs over both compiled sides (3 functions each)"],
    }


def rows(r: dict[str, Any]) -> list[Row]:
    return [
        Row(
            "7",
            f"pix2pix G+D step compiled ({r['backend']}, fullgraph): manager vs bare losses",
            f"{fmt_ms(r['ours_step_s'])} ({r['overhead']:+.2%})",
            f"bare {fmt_ms(r['bare_step_s'])}; eager with manager {fmt_ms(r['eager_step_s'])}",
            f"overhead {r['overhead']:+.2%}; {r['graphs']} graphs for 6 compiled functions",
            "< 2%",
            r["overhead"] < 0.02,
        )
    ]


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    args = parser.parse_args(argv)
    device = setup(args)
    result = run(device, args.quick, args.repeats, args.backend)
    report(NAME, device, args, result, rows(result))


if __name__ == "__main__":
    main()

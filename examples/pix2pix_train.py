"""Train a compact pix2pix with nectarloss, the training loop written out.

The models and the generated data come from ``nectarloss.demo`` (the same ones
``nectarloss demo`` trains); the objective is the shipped ``pix2pix_basic`` spec:
``G_GAN`` + 100 * ``G_L1`` for the generator, ``(D_real + D_fake) / 2`` for the
discriminator.

    python examples/pix2pix_train.py              # about 30 s on a laptop CPU
    python examples/pix2pix_train.py --quick      # a few seconds (smoke test)
    nectarloss plot runs/pix2pix_example/loss_log.jsonl -o graph.png

Writes ``loss_log.jsonl``, ``loss_graph.png`` (with matplotlib) and ``samples.png``
(input | generated | target) to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from nectarloss import LossManager
from nectarloss.demo import (
    PatchDiscriminator,
    UNetGenerator,
    heldout_l1,
    make_pairs,
    sample_grid,
    write_png,
)
from nectarloss.log import summarize_log
from nectarloss.specs import load_spec

FULL = {"epochs": 8, "steps": 100, "batch": 16, "size": 32, "depth": 4, "channels": 16}
QUICK = {"epochs": 2, "steps": 10, "batch": 8, "size": 16, "depth": 3, "channels": 8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run for a smoke test")
    parser.add_argument("--out", type=Path, default=Path("runs/pix2pix_example"))
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    start = time.perf_counter()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    train_data = torch.Generator().manual_seed(0)
    x_val, y_val = make_pairs(64, cfg["size"], torch.Generator().manual_seed(1))
    x_val, y_val = x_val.to(device), y_val.to(device)

    generator = UNetGenerator(1, 3, cfg["channels"], cfg["depth"]).to(device)
    discriminator = PatchDiscriminator(1, 3, cfg["channels"]).to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))

    args.out.mkdir(parents=True, exist_ok=True)
    with LossManager(args.out, device=device, overwrite=True) as lm:  # a fresh log each run
        lm.init_from_spec(load_spec, "pix2pix_basic")
        lm.print_weights()
        print(f"held-out L1 before training: {heldout_l1(generator, x_val, y_val):.4f}")

        for epoch in range(cfg["epochs"]):
            # a fresh set of generated pairs every epoch
            x_all, y_all = make_pairs(cfg["steps"] * cfg["batch"], cfg["size"], train_data)
            x_all, y_all = x_all.to(device), y_all.to(device)
            for step in range(cfg["steps"]):
                x = x_all[step * cfg["batch"] : (step + 1) * cfg["batch"]]
                y = y_all[step * cfg["batch"] : (step + 1) * cfg["batch"]]
                fake = generator(x)

                # Discriminator: real pairs -> 1, generated pairs -> 0, averaged.
                pred_real = discriminator(x, y)
                pred_fake = discriminator(x, fake.detach())
                real = torch.ones_like(pred_real)
                loss_d_real = lm.compute_loss_xy("D_real", pred_real, real, epoch=epoch)
                loss_d_fake = lm.compute_loss_xy(
                    "D_fake", pred_fake, torch.zeros_like(pred_fake), epoch=epoch
                )
                loss_d = (loss_d_real + loss_d_fake) * 0.5
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()

                # Generator: fool the discriminator, stay close to the target.
                pred_fake = discriminator(x, fake)
                loss_g_gan = lm.compute_loss_xy("G_GAN", pred_fake, real, epoch=epoch)
                loss_g_l1 = lm.compute_loss_xy("G_L1", fake, y, epoch=epoch)
                loss_g = loss_g_gan + loss_g_l1
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()

                if step % 50 == 0:  # reading values back syncs: do it every N steps only
                    lm.print_losses(epoch, step, query=["G", "D"])

            lm.update_loss_log(silent=False)  # one host copy for every loss
            l1 = heldout_l1(generator, x_val, y_val)
            print(f"epoch {epoch + 1}/{cfg['epochs']}: held-out L1 {l1:.4f}")

    generator.eval()
    with torch.no_grad():
        fake = generator(x_val[:6])
    zoom = max(1, 128 // cfg["size"])
    grid = sample_grid(x_val[:6], fake, y_val[:6], zoom)  # input | generated | target
    print("wrote", write_png(args.out / "samples.png", grid))
    log_path = args.out / "loss_log.jsonl"
    for name, stats in summarize_log(log_path).items():
        print(
            f"{name:7s} last {stats['last']:8.4f}  mean {stats['mean']:8.4f}  "
            f"weight {stats['weight']:g}"
        )
    try:
        from nectarloss.plot import plot_log

        print("wrote", plot_log(log_path, args.out / "loss_graph.png", smooth=5, log_scale=True))
    except ImportError as exc:  # matplotlib is the optional `plot` extra
        print(f"no loss graph: {exc}")
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

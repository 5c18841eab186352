"""pix2pix with VQGAN's adaptive weight on G_GAN, against the fixed weight.

Trains the demo's pix2pix twice with the same seed and data: once with the shipped
``pix2pix_basic`` objective (G_GAN x1 + G_L1 x100), once with ``pix2pix_adaptive``
(G_GAN's weight = ||grad G_L1|| / ||grad G_GAN|| at the generator's last layer, logged
per step). Prints the held-out L1 after each epoch for both and the adaptive weight's
per-epoch mean, min and max, read back from the log.

    python examples/pix2pix_adaptive_weight.py           # 8 epochs x 100 steps each
    python examples/pix2pix_adaptive_weight.py --quick   # a few seconds
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from rich.console import Console

from nectarloss import read_log
from nectarloss.demo import load_demo_config, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs x 10 steps, 16 px")
    parser.add_argument("--out", type=Path, default=Path("runs/adaptive_weight"))
    args = parser.parse_args()
    base = load_demo_config()
    if args.quick:
        base = base.model_copy(
            update={"epochs": 2, "steps_per_epoch": 10, "image_size": 16, "unet_depth": 3}
        )
    curves: dict[str, list[float]] = {}
    series = None
    for spec in ("pix2pix_basic", "pix2pix_adaptive"):
        config = base.model_copy(update={"spec": spec, "experiment_dir": str(args.out / spec)})
        quiet = Console(file=io.StringIO())  # this script prints its own table
        result = run_demo(config, console=quiet, show_progress=False)
        curves[spec] = result.heldout_l1
        if spec == "pix2pix_adaptive":
            series = read_log(result.log_path).losses["G_GAN"]
    print(f"held-out L1 per epoch ({base.epochs} x {base.steps_per_epoch} steps, seed {base.seed})")
    print(f"{'epoch':>5} {'fixed G_GAN x1':>15} {'adaptive':>10}")
    for epoch, (fixed, adaptive) in enumerate(
        zip(curves["pix2pix_basic"], curves["pix2pix_adaptive"], strict=True)
    ):
        print(f"{epoch:>5} {fixed:>15.4f} {adaptive:>10.4f}")
    print("adaptive G_GAN weight per epoch (mean, min, max), from the log:")
    assert series is not None
    weights = list(series.weights)
    per_epoch = base.steps_per_epoch
    for epoch in range(base.epochs):
        chunk = weights[epoch * per_epoch : (epoch + 1) * per_epoch]
        mean = sum(chunk) / len(chunk)
        print(f"{epoch + 1:>5} {mean:>10.3f} {min(chunk):>10.3f} {max(chunk):>10.3f}")


if __name__ == "__main__":
    main()

"""Metric learning with a three-input loss: TripletMarginLoss through the manager.

Ten classes live in an 8-D subspace of a 32-D space whose other 24 dimensions hold
large nuisance noise, so nearest neighbours in the raw space (or after a random
network) rarely share a class. An MLP embeds the points on the unit sphere and is
trained with random (anchor, positive, negative) triplets, the loss called as
``lm.compute_loss("triplet", anchor, positive, negative)`` (the
``nectarloss.specs.metric_triplet`` spec). Recall@1 on held-out points (is the nearest
other point of the same class?) is printed before and after training.

    python examples/triplet_metric.py          # about 10 s on a laptop CPU
    python examples/triplet_metric.py --quick  # a few seconds (smoke test)
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nectarloss import LossManager
from nectarloss.specs import metric_triplet

NUM_CLASSES = 10
SIGNAL_DIM = 8
NOISE_DIM = 24
NOISE_STD = 3.0


def make_data(num: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Class signal in the first 8 dims, strong noise in the other 24."""
    centers = torch.randn(NUM_CLASSES, SIGNAL_DIM, generator=torch.Generator().manual_seed(7))
    labels = torch.randint(0, NUM_CLASSES, (num,), generator=generator)
    signal = centers[labels] + 0.3 * torch.randn(num, SIGNAL_DIM, generator=generator)
    nuisance = NOISE_STD * torch.randn(num, NOISE_DIM, generator=generator)
    return torch.cat([signal, nuisance], dim=1), labels


def sample_triplets(
    labels: Tensor, num: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Random triplets: indices of anchors, same-class positives, other-class negatives."""
    anchor = torch.randint(0, labels.numel(), (num,), generator=generator)
    # positives: a uniform pick among the indices of the anchor's class
    by_class = labels.argsort()
    counts = torch.bincount(labels, minlength=NUM_CLASSES)
    starts = counts.cumsum(0) - counts
    cls = labels[anchor]
    pick = starts[cls] + (torch.rand(num, generator=generator) * counts[cls]).long()
    positive = by_class[pick]
    # negatives: uniform indices, redrawn where they hit the anchor's class
    negative = torch.randint(0, labels.numel(), (num,), generator=generator)
    while bool((clash := labels[negative] == cls).any()):
        negative[clash] = torch.randint(0, labels.numel(), (int(clash.sum()),), generator=generator)
    return anchor, positive, negative


class Embedder(nn.Module):
    def __init__(self, dim_in: int = SIGNAL_DIM + NOISE_DIM, dim_out: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, 128), nn.ReLU(), nn.Linear(128, dim_out))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.net(x), dim=1)


@torch.no_grad()
def recall_at_1(model: nn.Module, x: Tensor, labels: Tensor) -> float:
    """Fraction of points whose nearest other point (in embedding space) shares its class."""
    z = model(x)
    distances = torch.cdist(z, z)
    distances.fill_diagonal_(float("inf"))
    nearest = distances.argmin(dim=1)
    return (labels[nearest] == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run for a smoke test")
    args = parser.parse_args()
    steps, batch = (60, 64) if args.quick else (600, 128)
    start = time.perf_counter()

    data = torch.Generator().manual_seed(0)
    x_train, y_train = make_data(4000, data)
    x_test, y_test = make_data(1000, data)
    torch.manual_seed(0)
    model = Embedder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    print(f"recall@1 before training: {recall_at_1(model, x_test, y_test):.3f}")

    triplets = sample_triplets(y_train, steps * batch, data)
    with LossManager(enable_logging=False) as lm:
        lm.init_from_spec(metric_triplet, margin=0.2)
        for step in range(steps):
            a, p, n = (t[step * batch : (step + 1) * batch] for t in triplets)
            loss = lm.compute_loss(
                "triplet", model(x_train[a]), model(x_train[p]), model(x_train[n])
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % (steps // 4) == 0 or step == steps - 1:
                print(f"step {step:4d}: {lm.get_loss_values(['triplet'], precision=4)}")
    print(f"recall@1 after training:  {recall_at_1(model, x_test, y_test):.3f}")
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

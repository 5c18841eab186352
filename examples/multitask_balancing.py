"""Two tasks with very different loss scales, balanced four ways.

A shared trunk feeds a regression head (targets in the hundreds, so its MSE starts near
1e4) and a classification head (cross-entropy near 1). Trained with no balancing, with
UncertaintyWeighting, DWA and GradNorm, each run reports its held-out regression RMSE
and classification accuracy, and the weights the balancer applied at the end.

    python examples/multitask_balancing.py            # 30 epochs x 50 steps per method
    python examples/multitask_balancing.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn

from nectarloss import DWA, GradNorm, LossManager, UncertaintyWeighting
from nectarloss.balancing import Balancer

NUM_CLASSES = 4
REGRESSION_SCALE = 100.0


class MultiTaskNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.regression = nn.Linear(64, 1)
        self.classification = nn.Linear(64, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.regression(h).squeeze(1), self.classification(h)


def make_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Inputs, a smooth regression target in the hundreds, and classes from another mix."""
    x = torch.randn(n, 8, generator=generator)
    y_reg = REGRESSION_SCALE * (torch.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2])
    y_cls = ((x[:, 3] > 0).long() * 2 + (x[:, 4] + x[:, 5] > 0).long()) % NUM_CLASSES
    return x, y_reg, y_cls


def make_balancer(method: str, net: MultiTaskNet) -> Balancer | None:
    if method == "uncertainty":
        return UncertaintyWeighting(init=-0.5)
    if method == "dwa":
        return DWA(temperature=2.0)
    if method == "gradnorm":
        return GradNorm(shared=lambda: net.trunk[2].weight, alpha=1.5, lr=0.025)
    return None


def train(method: str, epochs: int, steps: int, seed: int = 0) -> dict[str, object]:
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    x_train, y_reg, y_cls = make_data(steps * 64, data)
    x_test, t_reg, t_cls = make_data(1024, data)
    net = MultiTaskNet()
    balancer = make_balancer(method, net)
    with tempfile.TemporaryDirectory() as tmp:
        lm = LossManager(tmp, history_buffer_size=steps)
        lm.register_loss_fn("regression", nn.MSELoss(), balancer=balancer)
        lm.register_loss_fn("classification", nn.CrossEntropyLoss(), balancer=balancer)
        optimizer = torch.optim.Adam([*net.parameters(), *lm.parameters()], lr=1e-3)
        for epoch in range(epochs):
            order = torch.randperm(len(x_train), generator=data)
            for i in range(steps):
                batch = order[i * 64 : (i + 1) * 64]
                pred_reg, logits = net(x_train[batch])
                total = lm.compute_loss_xy("regression", pred_reg, y_reg[batch], epoch=epoch)
                total = total + lm.compute_loss_xy(
                    "classification", logits, y_cls[batch], epoch=epoch
                )
                lm.balance_step()  # GradNorm's update; the others have none
                optimizer.zero_grad()
                total.backward()
                optimizer.step()
            lm.update_loss_log()
        weights = lm.get_loss_weights(precision=4)
        lm.close()
    with torch.no_grad():
        pred_reg, logits = net(x_test)
        rmse = float(torch.sqrt(torch.mean((pred_reg - t_reg) ** 2)))
        accuracy = float((logits.argmax(1) == t_cls).float().mean())
    return {"rmse": rmse, "accuracy": accuracy, "weights": weights}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs x 10 steps")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    epochs, steps = (3, 10) if args.quick else (args.epochs, args.steps)
    print(f"two tasks, {epochs} epochs x {steps} steps of 64, seed {args.seed}")
    print(f"{'method':<12} {'held-out RMSE':>14} {'accuracy':>9}  final weights")
    for method in ("none", "uncertainty", "dwa", "gradnorm"):
        result = train(method, epochs, steps, args.seed)
        weights = ", ".join(f"{k} {v:g}" for k, v in result["weights"].items())  # type: ignore[attr-defined]
        print(f"{method:<12} {result['rmse']:>14.3f} {result['accuracy']:>9.3f}  {weights}")


if __name__ == "__main__":
    main()

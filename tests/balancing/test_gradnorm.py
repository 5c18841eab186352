"""GradNorm's weight update against the paper's loss, differentiated by autograd."""

import pytest
import torch
from torch import nn

from nectarloss import GradNorm, LossManager, read_log

ALPHA = 1.5
LR = 0.05


def paper_update(
    weights: torch.Tensor, losses: list[torch.Tensor], initial: torch.Tensor, shared: torch.Tensor
) -> torch.Tensor:
    """One GradNorm step: L_grad = sum |G_i - mean(G) r_i^alpha|, by autograd, then renorm."""
    w = weights.clone().requires_grad_(True)
    norms = torch.stack(
        [
            torch.autograd.grad(w[i] * loss, shared, retain_graph=True, create_graph=True)[0].norm()
            for i, loss in enumerate(losses)
        ]
    )
    values = torch.stack([loss.detach() for loss in losses])
    ratios = values / initial
    relative = ratios / ratios.mean()
    target = (norms.mean() * relative**ALPHA).detach()
    l_grad = (norms - target).abs().sum()
    (grad,) = torch.autograd.grad(l_grad, w)
    new = (weights - LR * grad).clamp_min(GradNorm.MIN_WEIGHT)
    return new * (len(losses) / new.sum())


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(3, 6)
        self.head_a = nn.Linear(6, 1)
        self.head_b = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.trunk(x))
        return self.head_a(h), self.head_b(h)


def build(tmp_path):
    torch.manual_seed(0)
    model = TwoHeads()
    gradnorm = GradNorm(shared=lambda: model.trunk.weight, alpha=ALPHA, lr=LR)
    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.MSELoss(), loss_weight=2.0, balancer=gradnorm)
    lm.register_loss_fn("b", nn.L1Loss(), balancer=gradnorm)
    return lm, model, gradnorm


def test_update_matches_the_paper_and_weights_are_logged(tmp_path) -> None:
    lm, model, gradnorm = build(tmp_path)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    initial = None
    logged = {"a": [], "b": []}
    for _ in range(5):
        x = torch.randn(8, 3)
        out_a, out_b = model(x)
        before = gradnorm.task_weights.clone()
        la = lm.compute_loss_xy("a", out_a, torch.ones(8, 1) * 3)
        lb = lm.compute_loss_xy("b", out_b, torch.zeros(8, 2))
        torch.testing.assert_close(la, 2.0 * before[0] * nn.MSELoss()(out_a, torch.ones(8, 1) * 3))
        logged["a"].append(2.0 * float(before[0]))
        logged["b"].append(float(before[1]))
        raw = [nn.MSELoss()(out_a, torch.ones(8, 1) * 3), nn.L1Loss()(out_b, torch.zeros(8, 2))]
        if initial is None:
            initial = torch.stack([r.detach() for r in raw])
        expected = paper_update(before, raw, initial, model.trunk.weight)
        lm.balance_step()
        torch.testing.assert_close(gradnorm.task_weights, expected, rtol=1e-5, atol=1e-7)
        assert float(gradnorm.task_weights.sum()) == pytest.approx(2.0, rel=1e-6)
        optimizer.zero_grad()
        (la + lb).backward()  # the graphs survive balance_step
        optimizer.step()
    assert not torch.equal(gradnorm.task_weights, torch.ones(2))
    assert list(lm.parameters()) == []  # the task weights are a buffer, not for the optimizer
    lm.close()
    log = read_log(lm.log_path)
    assert list(log.losses["a"].weights) == pytest.approx(logged["a"], rel=1e-6)
    assert list(log.losses["b"].weights) == pytest.approx(logged["b"], rel=1e-6)


def test_step_needs_every_member(tmp_path) -> None:
    lm, model, gradnorm = build(tmp_path)
    out_a, _ = model(torch.randn(4, 3))
    lm.compute_loss_xy("a", out_a, torch.zeros(4, 1))
    with pytest.raises(RuntimeError, match=r"missing \['b'\]"):
        lm.balance_step()
    assert gradnorm.task_weights.tolist() == [1.0, 1.0]  # nothing changed
    lm.compute_loss_xy("b", model(torch.randn(4, 3))[1], torch.zeros(4, 2))
    lm.balance_step()  # now complete
    assert gradnorm.task_weights.tolist() != [1.0, 1.0]
    lm.close()


def test_step_after_backward_keeps_runtime_error_with_a_note(tmp_path) -> None:
    lm, model, _ = build(tmp_path)
    out_a, out_b = model(torch.randn(4, 3))
    total = lm.compute_loss_xy("a", out_a, torch.zeros(4, 1)) + lm.compute_loss_xy(
        "b", out_b, torch.zeros(4, 2)
    )
    total.backward()
    with pytest.raises(RuntimeError) as info:
        lm.balance_step()
    assert any("before backward()" in note for note in getattr(info.value, "__notes__", []))
    lm.close()


def test_validation_without_grad_does_nothing(tmp_path) -> None:
    lm, model, gradnorm = build(tmp_path)
    with torch.no_grad():
        out_a, out_b = model(torch.randn(4, 3))
        lm.compute_loss_xy("a", out_a, torch.zeros(4, 1))
        lm.compute_loss_xy("b", out_b, torch.zeros(4, 2))
    lm.balance_step()
    assert gradnorm.task_weights.tolist() == [1.0, 1.0]
    lm.close()


def test_shared_must_be_set_and_arguments_checked() -> None:
    gradnorm = GradNorm()
    gradnorm.bind("a")
    x = nn.Parameter(torch.ones(2))
    gradnorm.weigh("a", (x * 2).sum(), 1.0, 0)
    with pytest.raises(ValueError, match="`shared` expected a parameter"):
        gradnorm.step()
    with pytest.raises(ValueError, match="`alpha` expected a finite float >= 0"):
        GradNorm(alpha=-1.0)
    with pytest.raises(ValueError, match="`lr` expected a finite float > 0"):
        GradNorm(lr=0.0)


def test_a_first_loss_of_zero_counts_as_no_change(tmp_path) -> None:
    """L_i(0) = 0 made the loss ratio inf, and the update meaningless (NaN targets)."""
    lm, model, gradnorm = build(tmp_path)
    for i in range(3):
        out_a, out_b = model(torch.randn(4, 3))
        target = out_a.detach() if i == 0 else torch.zeros(4, 1)  # "a" starts at exactly 0
        lm.compute_loss_xy("a", out_a, target)
        lm.compute_loss_xy("b", out_b, torch.ones(4, 2))
        before = gradnorm.task_weights.clone()
        raw = [nn.MSELoss()(out_a, target), nn.L1Loss()(out_b, torch.ones(4, 2))]
        initial = torch.stack([torch.tensor(0.0), gradnorm.initial_losses[1].float()])
        values = torch.stack([r.detach() for r in raw])
        ratios = torch.where(initial > 0, values / initial.clamp_min(1e-30), torch.ones(()))
        norms = torch.stack(
            [torch.autograd.grad(r, model.trunk.weight, retain_graph=True)[0].norm() for r in raw]
        )
        g = before * norms
        target_g = g.mean() * (ratios / ratios.mean()) ** ALPHA
        new = (before - LR * torch.sign(g - target_g) * norms).clamp_min(GradNorm.MIN_WEIGHT)
        expected = new * (2 / new.sum())
        lm.balance_step()
        assert torch.isfinite(gradnorm.task_weights).all()
        torch.testing.assert_close(gradnorm.task_weights, expected, rtol=1e-5, atol=1e-7)
    lm.close()

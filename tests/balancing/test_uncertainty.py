"""UncertaintyWeighting in LibMTL's form: L / (2 exp(s)) + s / 2, s learnable."""

import pytest
import torch
from torch import nn

from nectarloss import LossManager, UncertaintyWeighting, read_log

#: LibMTL's starting log variance (``weighting/UW.py``: ``loss_scale = -0.5``).
LIBMTL_INIT = -0.5


def libmtl_uw(losses: torch.Tensor, loss_scale: torch.Tensor) -> torch.Tensor:
    """LibMTL ``UW.backward``'s loss: ``(losses / (2 * exp(s)) + s / 2).sum()``."""
    return (losses / (2 * loss_scale.exp()) + loss_scale / 2).sum()


def two_tasks(tmp_path, weight_a=1.0):
    uw = UncertaintyWeighting(init=LIBMTL_INIT)
    lm = LossManager(tmp_path)
    lm.register_loss_fn("reg", nn.MSELoss(), loss_weight=weight_a, balancer=uw)
    lm.register_loss_fn("cls", nn.CrossEntropyLoss(), balancer=uw)
    return lm, uw


def test_matches_libmtl_loss_gradient_and_logged_weight(tmp_path) -> None:
    lm, uw = two_tasks(tmp_path)
    torch.manual_seed(0)
    pred, target = torch.randn(5, 3, requires_grad=True), torch.randn(5, 3)
    logits, labels = torch.randn(5, 4, requires_grad=True), torch.tensor([0, 1, 2, 3, 0])
    total = lm.compute_loss_xy("reg", pred, target) + lm.compute_loss_xy("cls", logits, labels)
    raw = torch.stack([nn.MSELoss()(pred, target), nn.CrossEntropyLoss()(logits, labels)])
    scale = torch.full((2,), LIBMTL_INIT, requires_grad=True)
    reference = libmtl_uw(raw, scale)
    torch.testing.assert_close(total, reference, rtol=1e-6, atol=1e-7)
    total.backward()
    reference.backward()
    assert uw.log_vars.grad is not None  # the gradient reaches s
    torch.testing.assert_close(uw.log_vars.grad, scale.grad)
    # d/ds (L / (2 e^s) + s / 2) = 1/2 - L / (2 e^s)
    torch.testing.assert_close(uw.log_vars.grad, 0.5 - raw.detach() / (2 * torch.exp(scale)))
    assert [p is uw.log_vars for p in lm.parameters()] == [True]
    lm.close()
    log = read_log(lm.log_path)
    expected = 1 / (2 * torch.exp(torch.tensor(LIBMTL_INIT)))
    assert log.losses["reg"].weights[0] == pytest.approx(float(expected), rel=1e-7)


def test_loss_weight_scales_the_whole_contribution(tmp_path) -> None:
    lm, uw = two_tasks(tmp_path, weight_a=4.0)
    pred, target = torch.ones(2, 3), torch.zeros(2, 3)
    out = lm.compute_loss_xy("reg", pred, target)
    s = torch.tensor(LIBMTL_INIT)
    torch.testing.assert_close(out, 4.0 * (1.0 / (2 * s.exp()) + s / 2))
    weight = lm.get_loss_weights(["reg"], precision=8)["reg"]
    assert weight == pytest.approx(4.0 / (2 * s.exp().item()), rel=1e-6)
    lm.close()


def test_a_warm_up_at_zero_leaves_s_alone() -> None:
    uw = UncertaintyWeighting()
    uw.bind("a")
    loss, applied = uw.weigh("a", torch.tensor(3.0), 0.0, epoch=0)
    loss.backward()
    assert float(applied) == 0.0
    assert uw.log_vars.grad is not None and float(uw.log_vars.grad[0]) == 0.0


def test_learning_moves_s_towards_log_loss(tmp_path) -> None:
    """Minimising L/(2e^s) + s/2 over s gives s = log L: the weight tracks 1/(2L)."""
    lm, uw = two_tasks(tmp_path)
    optimizer = torch.optim.SGD(lm.parameters(), lr=0.5)
    pred, target = torch.full((4, 3), 3.0), torch.zeros(4, 3)  # MSE = 9
    for _ in range(200):
        optimizer.zero_grad()
        lm.compute_loss_xy("reg", pred, target).backward()
        optimizer.step()
    s = uw.log_vars.detach()
    assert float(s[0]) == pytest.approx(torch.log(torch.tensor(9.0)).item(), abs=1e-3)
    assert float(s[1]) == LIBMTL_INIT  # "cls" was never computed
    lm.close()


def test_state_dict_round_trip() -> None:
    uw = UncertaintyWeighting(init=0.25)
    uw.bind("a")
    uw.bind("b")
    with torch.no_grad():
        uw.log_vars[1] = 1.5
    other = UncertaintyWeighting()
    other.bind("a")
    other.bind("b")
    other.load_state_dict(uw.state_dict())
    assert other.log_vars.tolist() == [0.25, 1.5]


def test_bad_init() -> None:
    with pytest.raises(ValueError, match="`init` expected a finite float"):
        UncertaintyWeighting(init=float("inf"))
    with pytest.raises(TypeError, match="`init` expected a float"):
        UncertaintyWeighting(init="0")  # type: ignore[arg-type]

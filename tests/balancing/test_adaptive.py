"""AdaptiveWeight against taming-transformers' calculate_adaptive_weight, by hand."""

import pytest
import torch
from torch import nn

from nectarloss import AdaptiveWeight, LossManager, read_log

#: taming's constants: ``torch.norm(nll) / (torch.norm(g) + 1e-4)``, clamped to [0, 1e4].
TAMING_EPS = 1e-4
TAMING_MAX = 1e4


def taming_weight(nll: torch.Tensor, g_loss: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """``VQLPIPSWithDiscriminator.calculate_adaptive_weight``, written from its formula."""
    nll_grads = torch.autograd.grad(nll, last, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + TAMING_EPS)
    return torch.clamp(d_weight, 0.0, TAMING_MAX).detach()


def generator_loss(logits: torch.Tensor) -> torch.Tensor:
    return -logits.mean()  # taming's hinge generator loss


def setup(tmp_path, reference="G_L1", disc_weight=0.8):
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 4))
    disc = nn.Linear(4, 1)
    lm = LossManager(tmp_path)
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=10.0, tags=["G"])
    lm.register_loss_fn("G_L2", nn.MSELoss(), loss_weight=3.0, tags=["G"])
    balancer = AdaptiveWeight(reference=reference, last_layer=lambda: gen[2].weight)
    lm.register_loss_fn(
        "G_GAN", generator_loss, loss_weight=disc_weight, tags=["G"], balancer=balancer
    )
    return lm, gen, disc, balancer


def test_weight_matches_taming_and_is_logged(tmp_path) -> None:
    lm, gen, disc, _ = setup(tmp_path)
    expected_weights = []
    for _ in range(4):
        x, y = torch.randn(6, 4), torch.randn(6, 4)
        fake = gen(x)
        nll = lm.compute_loss_xy("G_L1", fake, y)
        g_loss = generator_loss(disc(fake))
        d_weight = taming_weight(nll, g_loss, gen[2].weight)
        out = lm.compute_loss("G_GAN", disc(fake))
        torch.testing.assert_close(out, d_weight * 0.8 * g_loss, rtol=1e-6, atol=0)
        expected_weights.append(float(d_weight) * 0.8)
        (nll + out).backward()
        with torch.no_grad():
            for p in gen.parameters():
                p -= 0.1 * p.grad
                p.grad = None
    lm.close()
    series = read_log(lm.log_path).losses["G_GAN"]
    assert list(series.steps) == [0, 1, 2, 3]
    assert list(series.weights) == pytest.approx(expected_weights, rel=1e-6)
    assert len(set(series.weights)) == 4  # it changes with the gradients


def test_several_references_are_summed(tmp_path) -> None:
    lm, gen, disc, _ = setup(tmp_path, reference=["G_L1", "G_L2"])
    x, y = torch.randn(6, 4), torch.randn(6, 4)
    fake = gen(x)
    nll = lm.compute_loss_xy("G_L1", fake, y) + lm.compute_loss_xy("G_L2", fake, y)
    d_weight = taming_weight(nll, generator_loss(disc(fake)), gen[2].weight)
    out = lm.compute_loss("G_GAN", disc(fake))
    torch.testing.assert_close(out, d_weight * 0.8 * generator_loss(disc(fake)), rtol=1e-6, atol=0)
    lm.close()


def test_reference_must_be_computed_in_this_step(tmp_path) -> None:
    lm, gen, disc, _ = setup(tmp_path)
    fake = gen(torch.randn(6, 4))
    with pytest.raises(RuntimeError, match=r"reference loss 'G_L1' was not computed in this step"):
        lm.compute_loss("G_GAN", disc(fake))
    assert lm.get_registered_losses()["G_GAN"].num_steps == 0  # nothing recorded
    l1 = lm.compute_loss_xy("G_L1", fake, torch.zeros(6, 4))
    first = lm.compute_loss("G_GAN", disc(fake))
    lm.compute_loss("G_GAN", disc(fake * 0.5))  # again in the same step (another scale)
    (l1 + first).backward()
    fake = gen(torch.randn(6, 4))  # the next step forgets G_L1
    with pytest.raises(RuntimeError) as info:
        lm.compute_loss("G_GAN", disc(fake))
    assert any("from an earlier step" in note for note in getattr(info.value, "__notes__", []))
    lm.close()
    assert list(read_log(lm.log_path).losses["G_GAN"].steps) == [0, 1]


def test_eval_mode_and_no_grad_use_the_constant(tmp_path) -> None:
    lm, gen, disc, balancer = setup(tmp_path)
    fake = gen(torch.randn(6, 4))
    with torch.no_grad():  # no reference needed: no gradients to compare
        out = lm.compute_loss("G_GAN", disc(fake))
    torch.testing.assert_close(out, 0.8 * generator_loss(disc(fake)).detach())
    balancer.eval()
    out = lm.compute_loss("G_GAN", disc(fake))
    assert lm.get_loss_weights(["G_GAN"], precision=6) == {"G_GAN": 0.8}
    balancer.train()
    custom = AdaptiveWeight("G_L1", gen[2].weight, eval_factor=0.0)
    custom.eval()
    custom.bind("x")
    value = torch.tensor(2.0, requires_grad=True)
    _, applied = custom.weigh("x", value, 1.0, 0)
    assert float(applied) == 0.0  # taming's eval fallback
    lm.close()


def test_clamp_to_max_factor() -> None:
    last = nn.Parameter(torch.ones(3))
    balancer = AdaptiveWeight("ref", last_layer=last, max_factor=5.0)
    balancer.bind("this")
    balancer.observe("ref", (last * 1000.0).sum())
    value = (last * 1e-3).sum()
    _, applied = balancer.weigh("this", value, 2.0, 0)
    assert float(applied) == 10.0  # 2.0 * clamp(huge, max 5)


def test_last_layer_errors() -> None:
    balancer = AdaptiveWeight("ref")
    balancer.bind("this")
    leaf = nn.Parameter(torch.ones(2))
    balancer.observe("ref", leaf.sum())
    with pytest.raises(ValueError, match="`last_layer` expected a parameter"):
        balancer.weigh("this", (leaf * 2).sum(), 1.0, 0)
    balancer.last_layer = torch.ones(2)
    balancer.observe("ref", leaf.sum())
    with pytest.raises(ValueError, match="requires grad"):
        balancer.weigh("this", (leaf * 2).sum(), 1.0, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reference": []}, "`reference` expected a loss name"),
        ({"reference": "a", "eps": 0.0}, "`eps` expected a finite float > 0"),
        ({"reference": "a", "max_factor": -1.0}, "`max_factor` expected"),
        ({"reference": "a", "eval_factor": float("nan")}, "`eval_factor` expected"),
    ],
)
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        AdaptiveWeight(**kwargs)

"""Balancers as users meet them: model parameters, late joiners, validation, resumes.

Written by a red-team pass over issue 15; each failed on the code it was written against,
and each docstring says what went wrong then.
"""

from __future__ import annotations

import io
import json
import math
import warnings

import pytest
import torch
from torch import nn

from nectarloss import LossManager
from nectarloss.balancing import DWA, AdaptiveWeight, GradNorm, UncertaintyWeighting
from nectarloss.specs import SpecError, load_spec


def _pix2pix_lm(gen: nn.Module, last_layer: object) -> LossManager:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=100.0)
    lm.register_loss_fn(
        "G_GAN", nn.MSELoss(), balancer=AdaptiveWeight(reference="G_L1", last_layer=last_layer)
    )
    return lm


# ----------------------------------------------------------------------------- high
def test_last_layer_parameter_is_not_a_manager_parameter() -> None:
    """AdaptiveWeight(last_layer=gen.weight) registers the generator's weight as the
    balancer's own nn.Parameter, so the README's Adam([*model.parameters(),
    *lm.parameters()]) holds it twice (updated twice per step)."""
    gen = nn.Linear(4, 4)
    lm = _pix2pix_lm(gen, gen.weight)
    assert all(p is not gen.weight for p in lm.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "optimizer contains ... duplicate parameters"
        torch.optim.Adam([*gen.parameters(), *lm.parameters()])


def test_gradnorm_shared_parameter_is_not_a_manager_parameter() -> None:
    """GradNorm(shared=trunk.weight) likewise turns the model's weight into a parameter of
    the balancer (in lm.parameters() and in the balancer's state_dict)."""
    trunk = nn.Linear(3, 3)
    gn = GradNorm(shared=trunk.weight)
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("a", nn.MSELoss(), balancer=gn)
    lm.register_loss_fn("b", nn.L1Loss(), balancer=gn)
    assert all(p is not trunk.weight for p in lm.parameters())
    assert "shared" not in gn.state_dict()


def test_resume_spec_adaptive_weight_before_last_layer_is_set() -> None:
    """The checkpoint of a manager whose AdaptiveWeight got `last_layer` after loading the
    spec (as the demo does) holds the generator's weight; loading it into a fresh
    manager from the same spec fails with torch's 'Unexpected key(s) ... last_layer'."""
    gen = nn.Linear(4, 4)

    def make() -> LossManager:
        lm = LossManager(enable_logging=False)
        lm.init_from_spec("pix2pix_adaptive")
        return lm

    lm = make()
    lm.get_registered_losses(strip=False)["G_GAN"].balancer.last_layer = gen.weight
    out = gen(torch.randn(2, 4))
    lm.compute_loss_xy("G_L1", out, torch.zeros(2, 4))
    lm.compute_loss_xy("G_GAN", out, torch.ones(2, 4))
    buf = io.BytesIO()
    torch.save(lm.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = make()
    fresh.load_state_dict(state)  # then the user sets last_layer again
    assert "last_layer" not in state["losses"]["G_GAN"]["balancer"]


def test_dwa_member_added_mid_run_does_not_give_nan_weights() -> None:
    """A loss that joins a DWA group after epoch 0 (or rejoins after remove_loss) has zero
    epoch means, so r = mean/0 = inf and softmax turns EVERY member's weight into NaN."""
    lm = LossManager(enable_logging=False)
    dwa = DWA()
    lm.register_loss_fn("a", nn.MSELoss(), balancer=dwa)
    lm.register_loss_fn("b", nn.MSELoss(), balancer=dwa)
    one, zero = torch.ones(2), torch.zeros(2)
    for epoch in range(3):
        lm.compute_loss("a", one, zero, epoch=epoch)
        lm.compute_loss("b", one * 2, zero, epoch=epoch)
    lm.register_loss_fn("c", nn.MSELoss(), balancer=dwa)
    for epoch in range(3, 5):
        losses = [lm.compute_loss(k, one, zero, epoch=epoch) for k in "abc"]
        assert all(torch.isfinite(loss) for loss in losses), (epoch, losses)


def test_dwa_member_skipped_for_an_epoch_does_not_give_nan_weights() -> None:
    """A DWA member not computed during one epoch (a task only some batches have) gets a
    mean of 0: its weight first jumps, then r = x/0 makes every weight of the group NaN."""
    lm = LossManager(enable_logging=False)
    dwa = DWA()
    lm.register_loss_fn("a", nn.MSELoss(), balancer=dwa)
    lm.register_loss_fn("b", nn.MSELoss(), balancer=dwa)
    one, zero = torch.ones(2), torch.zeros(2)
    for epoch in range(5):
        a = lm.compute_loss("a", one, zero, epoch=epoch)
        assert torch.isfinite(a), epoch
        if epoch != 1:
            lm.compute_loss("b", one * 2, zero, epoch=epoch)


# ----------------------------------------------------------------------------- medium
def test_dwa_epoch_means_ignore_no_grad_validation_calls() -> None:
    """Validation calls under torch.no_grad() are summed into DWA's epoch means, so the
    training weights depend on the validation set (LibMTL uses train losses only)."""

    def run(validate: bool) -> dict[str, float]:
        lm = LossManager(enable_logging=False)
        dwa = DWA()
        lm.register_loss_fn("a", nn.MSELoss(), balancer=dwa)
        lm.register_loss_fn("b", nn.MSELoss(), balancer=dwa)
        train = {"a": [1.0, 0.5, 0.5], "b": [1.0, 1.0, 1.0]}
        for epoch in range(3):
            for k in "ab":
                p = torch.tensor(math.sqrt(train[k][epoch]), requires_grad=True)
                lm.compute_loss(k, p, torch.tensor(0.0), epoch=epoch)
            if validate:
                with torch.no_grad():
                    for k in "ab":
                        lm.compute_loss(k, torch.tensor(3.0), torch.tensor(0.0), epoch=epoch)
        return lm.get_loss_weights(precision=6)

    assert run(validate=True) == run(validate=False)


def test_uncertainty_remove_loss_keeps_the_optimizers_parameter() -> None:
    """remove_loss replaces UncertaintyWeighting.log_vars with a new nn.Parameter, so the
    optimizer built from lm.parameters() keeps stepping a stale tensor: s stops learning."""
    lm = LossManager(enable_logging=False)
    uw = UncertaintyWeighting()
    for k in "abc":
        lm.register_loss_fn(k, nn.MSELoss(), balancer=uw)
    optimizer = torch.optim.SGD(lm.parameters(), lr=0.1)
    lm.remove_loss("c")
    x, y = torch.randn(3), torch.zeros(3)
    (lm.compute_loss("a", x, y) + lm.compute_loss("b", x, y)).backward()
    optimizer.step()
    assert list(lm.parameters()) == [uw.log_vars]  # still the optimizer's tensor
    assert uw.log_vars.detach()[:2].ne(-0.5).all(), uw.log_vars  # s of a and b took the step


def test_spec_adaptive_weight_unknown_reference_is_a_spec_error() -> None:
    """A JSON spec whose AdaptiveWeight references a loss the spec does not define (a
    typo) loads fine; it only fails at the first step with 'was not computed in this
    step', instead of a SpecError at losses.X.balancer.reference naming close names."""
    spec = {
        "losses": {
            "G_L1": {"loss": "L1Loss", "weight": 100.0},
            "G_GAN": {
                "loss": "MSELoss",
                "balancer": {"name": "AdaptiveWeight", "reference": "G_l1"},
            },
        }
    }
    with pytest.raises(SpecError, match=r"losses\.G_GAN\.balancer\.reference"):
        load_spec(spec)


def test_adaptive_weight_balanced_loss_computed_twice_in_a_step() -> None:
    """Computing the balanced loss twice in one step (pix2pixHD's GAN loss per
    discriminator scale) raises 'reference ... was not computed in this step', although
    the reference was computed in this step."""
    gen = nn.Linear(3, 3)
    lm = _pix2pix_lm(gen, lambda: gen.weight)
    out = gen(torch.randn(2, 3))
    lm.compute_loss_xy("G_L1", out, torch.zeros(2, 3))
    lm.compute_loss_xy("G_GAN", out, torch.ones(2, 3))
    lm.compute_loss_xy("G_GAN", out * 0.5, torch.ones(2, 3))  # second scale


def test_gradnorm_first_values_not_taken_from_a_no_grad_sanity_check() -> None:
    """GradNorm takes L_i(0) from the first call even under torch.no_grad() (a validation
    sanity check before training, as Lightning runs), so every later loss ratio r_i is
    relative to validation values."""
    net = nn.Linear(3, 2)
    lm = LossManager(enable_logging=False)
    gn = GradNorm(shared=lambda: net.weight)
    lm.register_loss_fn("a", nn.MSELoss(), balancer=gn)
    lm.register_loss_fn("b", nn.MSELoss(), balancer=gn)
    with torch.no_grad():
        out = net(torch.randn(4, 3))
        lm.compute_loss("a", out[:, 0], torch.full((4,), 100.0))
        lm.compute_loss("b", out[:, 1], torch.zeros(4))
    assert gn.has_initial == [False, False]


# ----------------------------------------------------------------------------- low
def test_load_state_without_balancer_names_the_balancer() -> None:
    """Loading a checkpoint taken without balancers into a manager whose losses now have
    one fails with "history `weight_values` expected ... got NoneType": the clear
    'state has no balancer state' check is never reached."""

    def make(balanced: bool) -> LossManager:
        lm = LossManager(enable_logging=False)
        dwa = DWA() if balanced else None
        lm.register_loss_fn("a", nn.MSELoss(), balancer=dwa)
        lm.register_loss_fn("b", nn.MSELoss(), balancer=dwa)
        return lm

    old = make(balanced=False)
    old.compute_loss("a", torch.ones(2), torch.zeros(2))
    old.compute_loss("b", torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match="balancer"):
        make(balanced=True).load_state_dict(old.state_dict())


def test_load_state_with_other_group_shape_is_a_value_error() -> None:
    """A state whose DWA group has another size fails inside nn.Module.load_state_dict with
    a RuntimeError (size mismatch) instead of the documented ValueError from the checks."""
    saved = LossManager(enable_logging=False)
    dwa = DWA()
    saved.register_loss_fn("a", nn.MSELoss(), balancer=dwa)
    saved.register_loss_fn("b", nn.MSELoss(), balancer=dwa)
    target = LossManager(enable_logging=False)
    target.register_loss_fn("a", nn.MSELoss(), balancer=DWA())
    target.register_loss_fn("b", nn.MSELoss(), balancer=DWA())
    with pytest.raises(ValueError):
        target.load_state_dict(saved.state_dict())


def test_adaptive_weight_unregistered_reference_error_says_so() -> None:
    """A typo in `reference` gives 'was not computed in this step ... compute it first',
    which sends the user after the call order, not the misspelt name."""
    gen = nn.Linear(3, 3)
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("G_L1", nn.L1Loss())
    lm.register_loss_fn(
        "G_GAN", nn.MSELoss(), balancer=AdaptiveWeight("G_l1", last_layer=lambda: gen.weight)
    )
    out = gen(torch.randn(2, 3))
    lm.compute_loss_xy("G_L1", out, torch.zeros(2, 3))
    with pytest.raises(Exception, match="G_l1.*(not registered|no loss named)"):
        lm.compute_loss_xy("G_GAN", out, torch.ones(2, 3))


def test_gradnorm_error_names_the_member_not_using_shared() -> None:
    """When a member does not depend on `shared`, balance_step raises torch's 'The
    differentiated Tensor at index 0 ...' with a generic note; neither names loss 'b'."""
    trunk, h1, h2 = nn.Linear(3, 3), nn.Linear(3, 1), nn.Linear(3, 1)
    lm = LossManager(enable_logging=False)
    gn = GradNorm(shared=lambda: h1.weight)
    lm.register_loss_fn("a", nn.MSELoss(), balancer=gn)
    lm.register_loss_fn("b", nn.MSELoss(), balancer=gn)
    feats = trunk(torch.randn(4, 3))
    lm.compute_loss("a", h1(feats), torch.zeros(4, 1))
    lm.compute_loss("b", h2(feats), torch.zeros(4, 1))
    with pytest.raises(RuntimeError) as info:
        lm.balance_step()
    text = str(info.value) + " ".join(getattr(info.value, "__notes__", []))
    assert "'b'" in text


def test_float16_applied_weight_does_not_overflow() -> None:
    """A balanced float16 loss casts weight * factor to float16 before multiplying, so a
    weight above 65504 becomes inf (loss inf), where the same unbalanced loss gives 10."""
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("a", nn.MSELoss(), loss_weight=1e5, balancer=DWA())
    lm.register_loss_fn("b", nn.MSELoss(), loss_weight=1e5)
    x = torch.full((4,), 0.01, dtype=torch.float16)
    zero = torch.zeros(4, dtype=torch.float16)
    unbalanced = lm.compute_loss("b", x, zero, epoch=0)
    balanced = lm.compute_loss("a", x, zero, epoch=0)  # DWA factor is 1 in epoch 0
    assert torch.isfinite(unbalanced)
    assert torch.isfinite(balanced), balanced


def test_show_header_names_the_balancer(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nectarloss show` prints a balanced loss as 'weight=1.0 schedule=constant', though
    the log header records its balancer and its weight varies per step."""
    from nectarloss.cli import main

    lm = LossManager(experiment_dir=tmp_path)
    dwa = DWA()
    lm.register_loss_fn("a", nn.MSELoss(), balancer=dwa)
    lm.register_loss_fn("b", nn.MSELoss(), balancer=dwa)
    lm.compute_loss("a", torch.ones(2), torch.zeros(2))
    lm.compute_loss("b", torch.ones(2), torch.zeros(2))
    lm.close()
    header = json.loads(open(lm.log_path).readline())
    assert header["losses"]["a"]["balancer"] == "DWA"
    main(["show", str(lm.log_path)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("a:"))
    assert "DWA" in line, line


@pytest.mark.parametrize("kind", ["adaptive", "gradnorm"])
def test_a_balancer_mid_step_can_be_deep_copied_and_pickled(kind: str) -> None:
    """Their per-step graph tensors (non-leaf) made deepcopy and pickle raise."""
    import copy
    import pickle

    net = nn.Linear(3, 3)
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("G_L1", nn.L1Loss())
    balancer = (
        AdaptiveWeight("G_L1", last_layer=net.weight)
        if kind == "adaptive"
        else GradNorm(shared=net.weight)
    )
    lm.register_loss_fn("G_GAN", nn.MSELoss(), balancer=balancer)
    out = net(torch.randn(2, 3))
    lm.compute_loss_xy("G_L1", out, torch.zeros(2, 3))
    lm.compute_loss_xy("G_GAN", out, torch.ones(2, 3))
    copied = copy.deepcopy(balancer)
    assert copied.members == ["G_GAN"]
    assert torch.equal(
        copied.state_dict().get("task_weights", torch.ones(1)),
        balancer.state_dict().get("task_weights", torch.ones(1)),
    )
    pickle.loads(pickle.dumps(balancer))

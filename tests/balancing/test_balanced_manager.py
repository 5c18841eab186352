"""Balancers inside the manager: no syncs, logged weights, queries, checkpoints, specs."""

import pytest
import torch
from torch import nn

from nectarloss import (
    DWA,
    AdaptiveWeight,
    GradNorm,
    LossManager,
    SyncCounter,
    UncertaintyWeighting,
    dump_spec,
    load_spec,
    read_log,
)
from nectarloss.errors import SpecError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(4, 8)
        self.out = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.trunk(x)))


def build(path, resume=False, **kwargs) -> tuple[LossManager, Net]:
    torch.manual_seed(0)
    net = Net()
    lm = LossManager(path, resume=resume, **kwargs)
    dwa, uw = DWA(), UncertaintyWeighting()
    gradnorm = GradNorm(shared=lambda: net.trunk.weight)
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=10.0, tags=["G"])
    lm.register_loss_fn(
        "G_GAN",
        nn.MSELoss(),
        loss_weight=0.5,
        tags=["G"],
        balancer=AdaptiveWeight("G_L1", last_layer=lambda: net.out.weight),
    )
    lm.register_loss_fn("dwa_a", nn.L1Loss(), balancer=dwa)
    lm.register_loss_fn("dwa_b", nn.MSELoss(), balancer=dwa)
    lm.register_loss_fn("uw_a", nn.L1Loss(), balancer=uw)
    lm.register_loss_fn("uw_b", nn.SmoothL1Loss(), balancer=uw)
    lm.register_loss_fn("gn_a", nn.L1Loss(), balancer=gradnorm)
    lm.register_loss_fn("gn_b", nn.MSELoss(), balancer=gradnorm)
    return lm, net


def train(lm: LossManager, net: Net, steps: range, optimizer: torch.optim.Optimizer) -> None:
    for i in steps:
        g = torch.Generator().manual_seed(i)
        x, y = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
        fake = net(x)
        epoch = i // 4
        total = lm.compute_loss_xy("G_L1", fake, y, epoch=epoch)
        total = total + lm.compute_loss_xy("G_GAN", fake, torch.ones_like(fake), epoch=epoch)
        for name in ("dwa_a", "dwa_b", "uw_a", "uw_b", "gn_a", "gn_b"):
            total = total + lm.compute_loss_xy(name, fake, y * (1 + i % 3), epoch=epoch)
        lm.balance_step()
        optimizer.zero_grad()
        total.backward()
        optimizer.step()


def optimizer_for(lm: LossManager, net: Net) -> torch.optim.Optimizer:
    return torch.optim.SGD([*net.parameters(), *lm.parameters()], lr=0.01)


def test_no_host_sync_per_step_with_every_balancer(tmp_path) -> None:
    lm, net = build(tmp_path)
    optimizer = optimizer_for(lm, net)
    train(lm, net, range(2), optimizer)  # warm-up
    with SyncCounter() as counter:
        train(lm, net, range(2, 14), optimizer)  # crosses DWA's epoch boundaries
    assert (counter.scalar_reads, counter.host_copies) == (0, 0)
    lm.close()


def test_logged_weights_are_the_applied_ones(tmp_path) -> None:
    lm, net = build(tmp_path)
    x = torch.randn(6, 4)
    fake = net(x)
    lm.compute_loss_xy("G_L1", fake, torch.zeros(6, 4))
    out = lm.compute_loss_xy("G_GAN", fake, torch.ones(6, 4))
    raw = nn.MSELoss()(fake, torch.ones(6, 4)).detach()
    applied = lm.get_registered_losses(strip=False)["G_GAN"].last_applied
    assert applied is not None
    torch.testing.assert_close(out.detach(), raw * applied)
    values = lm.get_loss_values(["G_GAN"], precision=10)
    assert values["G_GAN"] == pytest.approx(float(raw * applied), rel=1e-6)
    tensors = lm.get_loss_tensors(["G_GAN"])
    torch.testing.assert_close(tensors["G_GAN"], (raw * applied).detach())
    weight = lm.get_loss_weights(["G_GAN"], precision=10)["G_GAN"]
    assert weight == pytest.approx(float(applied), rel=1e-6)
    assert lm.get_loss_values(["G_GAN"], weighted=False, precision=10)["G_GAN"] == pytest.approx(
        float(raw), rel=1e-6
    )
    lm.close()
    series = read_log(lm.log_path).losses["G_GAN"]
    assert series.weights[0] == float(applied)  # exactly the tensor applied


def test_resume_is_bit_exact_with_every_balancer(tmp_path) -> None:
    whole, net = build(tmp_path / "whole", history_buffer_size=5)
    train(whole, net, range(14), optimizer_for(whole, net))
    whole.close()

    first, net = build(tmp_path / "cut", history_buffer_size=5)
    optimizer = optimizer_for(first, net)
    train(first, net, range(7), optimizer)
    saved = {
        "lm": first.state_dict(),
        "net": net.state_dict(),
        "opt": optimizer.state_dict(),
    }
    first.close()
    second, net = build(tmp_path / "cut", resume=True, history_buffer_size=5)
    optimizer = optimizer_for(second, net)
    second.load_state_dict(saved["lm"])
    net.load_state_dict(saved["net"])
    optimizer.load_state_dict(saved["opt"])
    train(second, net, range(7, 14), optimizer)
    second.close()
    a, b = read_log(whole.log_path), read_log(second.log_path)
    assert list(a.losses) == list(b.losses)
    for name in a.losses:
        assert list(a.losses[name].steps) == list(b.losses[name].steps), name
        assert list(a.losses[name].values) == list(b.losses[name].values), name
        assert list(a.losses[name].weights) == list(b.losses[name].weights), name


def test_state_dict_checks_the_balancer(tmp_path) -> None:
    lm, _ = build(tmp_path)
    state = lm.state_dict()
    plain = LossManager(enable_logging=False)
    for name in state["losses"]:
        plain.register_loss_fn(name, nn.L1Loss())
    with pytest.raises(ValueError, match="G_GAN: state has a balancer state, the loss has no"):
        plain.load_state_dict(state)
    lm.close()


def test_remove_loss_leaves_the_group(tmp_path) -> None:
    lm, _ = build(tmp_path)
    dwa = lm.get_registered_losses(strip=False)["dwa_a"].balancer
    assert dwa is not None and dwa.members == ["dwa_a", "dwa_b"]
    lm.remove_loss("dwa_a")
    assert dwa.members == ["dwa_b"]
    assert isinstance(dwa, DWA) and dwa.weights.tolist() == [1.0]
    assert len(lm.balancers) == 4
    lm.close()


def test_without_a_log(tmp_path) -> None:
    lm = LossManager(enable_logging=False)
    uw = UncertaintyWeighting(init=0.0)
    lm.register_loss_fn("a", nn.L1Loss(), balancer=uw)
    for _ in range(3):
        lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
    assert lm.get_loss_weights(precision=4) == {"a": 0.5}
    assert lm.get_loss_values(precision=4) == {"a": 0.5}


def test_balancer_type_is_checked() -> None:
    lm = LossManager(enable_logging=False)
    with pytest.raises(TypeError, match="a: `balancer` expected a nectarloss.balancing.Balancer"):
        lm.register_loss_fn("a", nn.L1Loss(), balancer=object())  # type: ignore[arg-type]
    assert "a" not in lm


def test_compiled_step_refuses_a_balanced_loss() -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("a", nn.L1Loss(), balancer=UncertaintyWeighting())
    entry = lm.get_registered_losses(strip=False)["a"]
    with pytest.raises(RuntimeError, match="a balanced loss .* cannot run in a compiled"):
        entry._run_on_device(torch.ones(()), torch.ones(()), torch.ones(()), 0, None)


SPEC = {
    "losses": {
        "seg": {"loss": "MSELoss", "balancer": {"name": "DWA", "group": "tasks"}},
        "depth": {
            "loss": "L1Loss",
            "weight": 2.0,
            "balancer": {"name": "DWA", "group": "tasks"},
        },
        "aux": {"loss": "L1Loss", "balancer": {"name": "UncertaintyWeighting", "init": 0.0}},
        "G_GAN": {
            "loss": "MSELoss",
            "weight": 0.5,
            "balancer": {"name": "AdaptiveWeight", "reference": ["seg", "depth"]},
        },
        "gn": {"loss": "L1Loss", "balancer": {"name": "GradNorm", "alpha": 0.5}},
    }
}


def test_spec_groups_share_one_balancer_and_round_trip() -> None:
    losses = load_spec(SPEC)
    assert losses["seg"].balancer is losses["depth"].balancer
    assert losses["aux"].balancer is not losses["seg"].balancer
    lm = LossManager(enable_logging=False)
    lm.init_from_spec(lambda: losses)
    dumped = dump_spec(lm.get_registered_losses(strip=False))
    assert dumped["losses"]["depth"]["balancer"] == {
        "name": "DWA",
        "group": "tasks",
        "temperature": 2.0,
    }
    again = load_spec(dumped)
    assert again["seg"].balancer is again["depth"].balancer
    assert dump_spec(again) == dumped


@pytest.mark.parametrize(
    ("balancer", "path", "fragment"),
    [
        ({"name": "DWB"}, "losses.a.balancer.name", "expected a balancer name, one of"),
        ({"name": "DWA", "temperature": 0}, "losses.a.balancer.temperature", "> 0"),
        ({"name": "DWA", "temprature": 1.0}, "losses.a.balancer", "did you mean 'temperature'"),
        ({"name": "AdaptiveWeight"}, "losses.a.balancer.reference", "required"),
        ({"name": "GradNorm", "lr": -1}, "losses.a.balancer.lr", "> 0"),
    ],
)
def test_spec_errors_name_the_json_path(balancer, path, fragment) -> None:
    with pytest.raises(SpecError) as info:
        load_spec({"losses": {"a": {"loss": "L1Loss", "balancer": balancer}}})
    assert info.value.path == path
    assert fragment in str(info.value)


def test_spec_group_with_different_options_is_refused() -> None:
    spec = {
        "losses": {
            "a": {"loss": "L1Loss", "balancer": {"name": "DWA", "group": "t"}},
            "b": {"loss": "L1Loss", "balancer": {"name": "DWA", "group": "t", "temperature": 3}},
        }
    }
    with pytest.raises(SpecError, match=r"losses\.b\.balancer\.group expected the same balancer"):
        load_spec(spec)

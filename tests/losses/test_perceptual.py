"""Tests for the Perceptual loss (nectarloss/losses/perceptual.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from nectarloss.losses import Perceptual, build_loss


class TinyNet(nn.Module):
    """Two conv stages; returns the features as a Tensor, a list or a dict."""

    def __init__(self, output: str = "tensor") -> None:
        super().__init__()
        self.output = output
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)  # shows eval mode is kept (train mode would update stats)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Any:
        f1 = torch.relu(self.bn(self.conv1(x)))
        f2 = torch.relu(self.conv2(f1))
        if self.output == "list":
            return [f1, f2]
        if self.output == "tuple":
            return (f1, f2)
        if self.output == "dict":
            return {"low": f1, "high": f2}
        return f2


def images(batch: int = 2) -> tuple[Tensor, Tensor]:
    torch.manual_seed(0)
    return torch.rand(batch, 3, 8, 8, requires_grad=True), torch.rand(batch, 3, 8, 8)


@pytest.mark.parametrize("output", ["tensor", "list", "tuple", "dict"])
@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_identical_inputs_give_zero(output: str, criterion: str) -> None:
    x, _ = images()
    loss_fn = Perceptual(TinyNet(output), criterion=criterion, reduction="none")
    assert torch.count_nonzero(loss_fn(x, x.detach().clone())) == 0


def test_identity_extractor_matches_l1_and_mse() -> None:
    x, y = images()
    torch.testing.assert_close(Perceptual(nn.Identity())(x, y), F.l1_loss(x, y))
    torch.testing.assert_close(Perceptual(nn.Identity(), criterion="l2")(x, y), F.mse_loss(x, y))
    per_sample = Perceptual(nn.Identity(), reduction="none")(x, y)
    assert per_sample.shape == (2,)
    torch.testing.assert_close(per_sample, (x - y).abs().flatten(1).mean(1))
    torch.testing.assert_close(Perceptual(nn.Identity(), reduction="sum")(x, y), per_sample.sum())


def test_gradient_reaches_prediction_not_extractor() -> None:
    net = TinyNet("list")
    x, y = images()
    y.requires_grad_(True)
    loss = Perceptual(net)(x, y)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert y.grad is None  # target features are computed under no_grad
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())


def test_extractor_stays_in_eval_mode() -> None:
    net = TinyNet()
    loss_fn = Perceptual(net)
    assert not net.training
    loss_fn.train()
    assert loss_fn.training and not net.training
    running_mean = net.bn.running_mean
    assert running_mean is not None
    stats = running_mean.clone()
    x, y = images()
    loss_fn(x, y)
    assert torch.equal(running_mean, stats)


@pytest.mark.parametrize("output", ["list", "dict"])
def test_all_outputs_sum_to_the_full_loss(output: str) -> None:
    net = TinyNet(output)
    x, y = images()
    keys: list[int | str] = [0, 1] if output == "list" else ["low", "high"]
    full = Perceptual(net, reduction="none")(x, y)
    parts = [Perceptual(net, layers=[k], reduction="none")(x, y) for k in keys]
    torch.testing.assert_close(full, parts[0] + parts[1])


def test_layer_weights() -> None:
    net = TinyNet("dict")
    x, y = images()
    low = Perceptual(net, layers=["low"])(x, y)
    high = Perceptual(net, layers=["high"])(x, y)
    weighted = Perceptual(net, layers={"low": 2.0, "high": 0.5})(x, y)
    torch.testing.assert_close(weighted, 2.0 * low + 0.5 * high)
    zero = Perceptual(net, layers={"low": 0.0})(x, y)
    assert zero == 0.0


def test_plain_callable_extractor() -> None:
    x, y = images()
    loss_fn = Perceptual(lambda t: {"half": t * 0.5})
    torch.testing.assert_close(loss_fn(x, y), 0.5 * F.l1_loss(x, y))
    assert loss_fn.feature_extractor is None


def test_extractor_is_a_submodule() -> None:
    net = TinyNet()
    loss_fn = Perceptual(net)
    assert dict(loss_fn.named_children()) == {"feature_extractor": net}
    assert "criterion='l1'" in repr(loss_fn)


def test_built_from_catalog() -> None:
    loss_fn = build_loss(
        "Perceptual", feature_extractor=TinyNet(), reduction="none", criterion="l2"
    )
    assert isinstance(loss_fn, Perceptual) and loss_fn.reduction == "none"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda() -> None:
    loss_fn = Perceptual(TinyNet("list"), reduction="none").cuda()
    x, y = images()
    assert loss_fn(x.detach().cuda(), y.cuda()).is_cuda


# --------------------------------------------------------------------------- errors
def test_extractor_type_error() -> None:
    with pytest.raises(
        TypeError,
        match="Perceptual: `feature_extractor` expected an nn.Module or a callable, got str.",
    ):
        Perceptual("vgg16")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"criterion": "l3"}, ValueError, "`criterion` expected one of 'l1', 'l2', got 'l3'."),
        ({"reduction": "batchmean"}, ValueError, "`reduction` expected one of"),
        ({"reduction": 1}, TypeError, "`reduction` expected a str, got int."),
        ({"layers": []}, ValueError, "`layers` expected at least one output"),
        ({"layers": "low"}, TypeError, "`layers` expected None, a sequence"),
        ({"layers": {"low": -1.0}}, ValueError, "`layers` expected finite weights >= 0, got -1.0"),
        ({"layers": {"low": float("nan")}}, ValueError, "`layers` expected finite weights"),
        ({"layers": {"low": "1"}}, TypeError, "`layers` expected float weights, got str"),
        ({"layers": [1.5]}, TypeError, "`layers` expected int or str keys, got float."),
        ({"layers": [0, 0]}, ValueError, "`layers` expected unique keys, got 0 twice."),
    ],
)
def test_option_errors(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=f"Perceptual: {match}".replace("(", r"\(").replace(")", r"\)")):
        Perceptual(nn.Identity(), **kwargs)


def test_forward_errors() -> None:
    x, y = images()
    with pytest.raises(
        ValueError, match=r"Perceptual: `layers` expected keys among \('low', 'high'\), got 'mid'."
    ):
        Perceptual(TinyNet("dict"), layers=["mid"])(x, y)
    with pytest.raises(
        ValueError,
        match=r"Perceptual: `target` expected shape \(2, 3, 8, 8\) \(the input's\), "
        r"got \(2, 3, 4, 4\).",
    ):
        Perceptual(TinyNet())(x, y[..., :4, :4])
    with pytest.raises(
        TypeError,
        match="Perceptual: the feature extractor expected to return a Tensor or a "
        "list/tuple/dict of Tensors, got str.",
    ):
        Perceptual(lambda t: "features")(x, y)
    with pytest.raises(TypeError, match="Perceptual: feature 1 expected a Tensor, got int."):
        Perceptual(lambda t: [t, 3])(x, y)
    with pytest.raises(
        ValueError, match="Perceptual: the feature extractor expected outputs, got none."
    ):
        Perceptual(lambda t: [])(x, y)
    with pytest.raises(TypeError, match="Perceptual: inputs expected Tensors, got list."):
        Perceptual(nn.Identity())(x, [1.0])

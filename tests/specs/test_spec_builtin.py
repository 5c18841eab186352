"""Tests for the Python spec functions (nectarloss/specs/builtin.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nectarloss import LMLoss, LossManager
from nectarloss.losses import Laplacian, Sobel
from nectarloss.modifiers import P2, DebiasedEstimation, MinSNR, NoiseSchedule, Sangoi, SuperLoss
from nectarloss.specs import (
    classification,
    diffusion,
    dump_spec,
    load_spec,
    metric_triplet,
    pix2pix,
)

BATCH = 3

#: Each Python spec function call and the shipped JSON spec that must agree with it.
AGREEING = [
    (lambda: pix2pix("basic"), "pix2pix_basic"),
    (lambda: pix2pix("extended"), "pix2pix_extended"),
    (lambda: diffusion("min_snr"), "diffusion_min_snr"),
    (lambda: diffusion("sangoi"), "diffusion_sangoi"),
    (lambda: classification(superloss=True), "classification_superloss"),
    (lambda: metric_triplet(), "metric_triplet"),
]


def _summary(losses: dict[str, LMLoss]) -> dict[str, tuple[object, ...]]:
    return {
        name: (
            type(e.function),
            getattr(e.function, "reduction", None),
            e.loss_weight,
            tuple(e.tags),
            tuple(type(m) for m in e.modifiers),
        )
        for name, e in losses.items()
    }


def test_pix2pix_basic_matches_nectargan() -> None:
    losses = pix2pix()
    assert list(losses) == ["G_GAN", "G_L1", "D_real", "D_fake"]
    assert _summary(losses) == {
        "G_GAN": (nn.BCEWithLogitsLoss, "mean", 1.0, ("G",), ()),
        "G_L1": (nn.L1Loss, "mean", 100.0, ("G",), ()),
        "D_real": (nn.BCEWithLogitsLoss, "mean", 1.0, ("D",), ()),
        "D_fake": (nn.BCEWithLogitsLoss, "mean", 1.0, ("D",), ()),
    }
    assert all(e.name == name for name, e in losses.items())


def test_pix2pix_extended_adds_structure_losses() -> None:
    losses = pix2pix("extended", lambda_l2=2.0, lambda_sobel=3.0, lambda_laplacian=4.0)
    assert list(losses)[4:] == ["G_L2", "G_SOBEL", "G_LAP"]
    assert isinstance(losses["G_L2"].function, nn.MSELoss)
    assert isinstance(losses["G_SOBEL"].function, Sobel)
    assert isinstance(losses["G_LAP"].function, Laplacian)
    assert [losses[n].loss_weight for n in ("G_L2", "G_SOBEL", "G_LAP")] == [2.0, 3.0, 4.0]
    assert all(losses[n].tags == ["G"] for n in ("G_L2", "G_SOBEL", "G_LAP"))


def test_pix2pix_options() -> None:
    losses = pix2pix(lambda_gan=2.0, lambda_l1=50.0, lambda_d=0.5, gan_loss="MSELoss")
    assert isinstance(losses["G_GAN"].function, nn.MSELoss)
    assert isinstance(losses["D_real"].function, nn.MSELoss)
    assert [e.loss_weight for e in losses.values()] == [2.0, 50.0, 0.5, 0.5]
    assert losses["D_real"].function is not losses["D_fake"].function


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"subspec": "basic+vgg"}, ValueError, "pix2pix: `subspec` expected 'basic' or"),
        ({"lambda_l1": -1.0}, ValueError, "pix2pix: `lambda_l1` expected a finite float >= 0"),
        ({"lambda_gan": "1"}, TypeError, "pix2pix: `lambda_gan` expected a float"),
        ({"gan_loss": "BCEWithLogits"}, ValueError, "did you mean 'BCEWithLogitsLoss'"),
    ],
)
def test_pix2pix_rejects_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        pix2pix(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("weighting", "modifier"),
    [("min_snr", MinSNR), ("sangoi", Sangoi), ("debiased", DebiasedEstimation), ("p2", P2)],
)
def test_diffusion_weightings(weighting: str, modifier: type[nn.Module]) -> None:
    entry = diffusion(weighting, num_steps=100)["denoise"]  # type: ignore[arg-type]
    assert entry.tags == ["diffusion"]
    assert isinstance(entry.function, nn.MSELoss) and entry.function.reduction == "none"
    assert [type(m) for m in entry.modifiers] == [modifier]
    assert entry.modifiers[0].noise_schedule.num_steps == 100


def test_diffusion_options() -> None:
    plain = diffusion("none")["denoise"]
    assert plain.modifiers == [] and plain.function.reduction == "mean"
    assert diffusion("min_snr", gamma=1.0)["denoise"].modifiers[0].gamma == 1.0
    assert diffusion("p2")["denoise"].modifiers[0].gamma == 1.0
    assert diffusion("p2", gamma=0.5)["denoise"].modifiers[0].gamma == 0.5
    v = diffusion("debiased", prediction="v_prediction")["denoise"].modifiers[0]
    assert v.prediction == "v_prediction"
    custom = NoiseSchedule.flow_matching(10)
    assert diffusion("min_snr", schedule=custom)["denoise"].modifiers[0].noise_schedule is custom


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weighting": "snr"}, "diffusion: `weighting` expected one of"),
        ({"schedule": "cosine"}, "diffusion: `schedule` expected one of"),
        ({"num_steps": 0}, "diffusion: `num_steps` expected an int >= 1"),
        ({"weighting": "sangoi", "gamma": 5.0}, "diffusion: `gamma` expected None"),
        ({"prediction": "x0"}, "MinSNR: `prediction` expected one of"),
    ],
)
def test_diffusion_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        diffusion(**kwargs)  # type: ignore[arg-type]


def test_classification() -> None:
    entry = classification(num_classes=10, regularization=0.5)["cross_entropy"]
    assert isinstance(entry.function, nn.CrossEntropyLoss) and entry.function.reduction == "none"
    (modifier,) = entry.modifiers
    assert isinstance(modifier, SuperLoss)
    assert modifier.threshold == pytest.approx(math.log(10))
    assert modifier.regularization == 0.5
    assert classification()["cross_entropy"].modifiers[0].threshold == "exp"
    plain = classification(superloss=False)["cross_entropy"]
    assert plain.modifiers == [] and plain.function.reduction == "mean"
    with pytest.raises(ValueError, match="classification: `num_classes` expected an int >= 2"):
        classification(num_classes=1)
    with pytest.raises(TypeError, match="classification: `num_classes` expected an int"):
        classification(num_classes=2.0)  # type: ignore[arg-type]


def test_metric_triplet() -> None:
    entry = metric_triplet(margin=0.3)["triplet"]
    assert isinstance(entry.function, nn.TripletMarginLoss)
    assert entry.function.margin == 0.3 and entry.tags == ["metric"]
    with pytest.raises(ValueError, match="metric_triplet: `margin` expected"):
        metric_triplet(margin=-1.0)


@pytest.mark.parametrize(("spec_fn", "name"), AGREEING)
def test_spec_functions_agree_with_json(spec_fn: object, name: str) -> None:
    from_python = spec_fn()  # type: ignore[operator]
    from_json = load_spec(name)
    assert _summary(from_python) == _summary(from_json)
    assert dump_spec(from_python) == dump_spec(from_json)


def test_each_call_builds_fresh_modules() -> None:
    a, b = diffusion(), diffusion()
    assert a["denoise"].function is not b["denoise"].function
    assert a["denoise"].modifiers[0] is not b["denoise"].modifiers[0]


def test_init_from_spec_nectargan_style() -> None:
    lm = LossManager(enable_logging=False)
    lm.init_from_spec(pix2pix, "extended", lambda_l1=10.0)
    assert lm.get_loss_weights(query=["G"]) == {
        "G_GAN": 1.0,
        "G_L1": 10.0,
        "G_L2": 1.0,
        "G_SOBEL": 10.0,
        "G_LAP": 10.0,
    }
    y = torch.rand(BATCH, 3, 8, 8)
    y_fake = torch.rand(BATCH, 3, 8, 8, requires_grad=True)
    total = sum(lm.compute_loss_xy(n, y_fake, y, epoch=0) for n in ("G_L1", "G_SOBEL", "G_LAP"))
    assert isinstance(total, torch.Tensor)
    total.backward()
    assert y_fake.grad is not None and torch.isfinite(y_fake.grad).all()

"""Published reference values for the modifiers' math, each constant with its source."""

import math

import pytest
import torch

from nectarloss.functional import (
    debiased_estimation_weight,
    lambertw,
    min_snr_weight,
    p2_weight,
    super_loss,
    super_loss_confidence,
)
from nectarloss.modifiers import NoiseSchedule, SuperLoss

# scipy.special.lambertw(x).real, principal branch
LAMBERTW_REFERENCE = [
    (-1.0 / math.e, -1.0),
    (-0.3, -0.4894022271802149),
    (0.5, 0.35173371124919584),
    (1.0, 0.5671432904097838),
    (math.e, 1.0),
    (10.0, 1.7455280027406994),
    (100.0, 3.38563014029005),
    (1e6, 11.383358086140053),
]
BRANCH_POINT = -1.0 / math.e

# SuperLoss closed forms, lambda = 1 (Castells et al. 2020, eq. 5)
SIGMA_AT_1 = 0.703467422  # l - tau = 1: exp(-W0(0.5))
LOSS_AT_1 = 0.827184026
SIGMA_AT_2 = 0.567143290  # l - tau = 2: exp(-W0(1)) = omega
SIGMA_AT_MINUS_1 = math.e  # l - tau = -1: beta clamped to -2/e, W0(-1/e) = -1
LOSS_AT_MINUS_1 = 1.0 - math.e

# FastEstimator's SuperLoss unit test: cross-entropy of these predictions, first batch
FE_PREDICTIONS = [[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7]]
FE_LABELS = [1, 0, 2]
FE_TAU = 0.22839302  # first batch: tau = mean cross-entropy
FE_MEAN_SUPERLOSS = -0.0026386082


@pytest.mark.parametrize(("x", "w"), LAMBERTW_REFERENCE)
def test_lambertw_float64_reference(x: float, w: float) -> None:
    got = lambertw(torch.tensor([x], dtype=torch.float64)).item()
    assert got == pytest.approx(w, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("x", "w"), LAMBERTW_REFERENCE)
def test_lambertw_float32_reference(x: float, w: float) -> None:
    got = lambertw(torch.tensor([x], dtype=torch.float32)).item()
    if abs(x - BRANCH_POINT) < 1e-4:
        assert got == pytest.approx(w, abs=2e-4)
    else:
        assert got == pytest.approx(w, rel=1e-6)


@pytest.mark.parametrize(
    ("excess", "sigma", "loss"),
    [
        (1.0, SIGMA_AT_1, LOSS_AT_1),
        (2.0, SIGMA_AT_2, None),
        (-1.0, SIGMA_AT_MINUS_1, LOSS_AT_MINUS_1),
    ],
)
def test_superloss_closed_form_points(excess: float, sigma: float, loss: float | None) -> None:
    per_sample = torch.tensor([excess], dtype=torch.float64)
    tau = torch.tensor(0.0, dtype=torch.float64)
    assert super_loss_confidence(per_sample, tau, 1.0).item() == pytest.approx(sigma, rel=1e-8)
    if loss is not None:
        assert super_loss(per_sample, tau, 1.0).item() == pytest.approx(loss, rel=1e-8)


def test_fastestimator_value() -> None:
    probs = torch.tensor(FE_PREDICTIONS, dtype=torch.float64)
    ce = -torch.log(probs[torch.arange(3), torch.tensor(FE_LABELS)])
    assert ce.mean().item() == pytest.approx(FE_TAU, rel=1e-7)
    modifier = SuperLoss(threshold="exp", regularization=1.0)
    out = modifier(ce.float())
    assert modifier.tau.item() == pytest.approx(FE_TAU, rel=1e-6)
    assert out.mean().item() == pytest.approx(FE_MEAN_SUPERLOSS, rel=1e-4)


def test_snr_weights_on_sd_schedule_match_published_formulas() -> None:
    snr = NoiseSchedule.scaled_linear(num_steps=1000).snr_table.double()
    gamma = 5.0
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    torch.testing.assert_close(min_snr_weight(snr, gamma, "epsilon").double(), clipped / snr)
    torch.testing.assert_close(
        min_snr_weight(snr, gamma, "v_prediction").double(), clipped / (snr + 1)
    )
    torch.testing.assert_close(min_snr_weight(snr, gamma, "sample").double(), clipped)
    capped = torch.minimum(snr, torch.full_like(snr, 1000.0))
    torch.testing.assert_close(
        debiased_estimation_weight(snr, "epsilon").double(), 1 / capped.sqrt()
    )
    torch.testing.assert_close(
        debiased_estimation_weight(snr, "v_prediction").double(), 1 / (snr + 1).sqrt()
    )
    torch.testing.assert_close(p2_weight(snr, gamma=1.0, k=1.0).double(), (1 + snr) ** -1.0)


def test_zero_terminal_snr_gives_finite_weights() -> None:
    snr = torch.tensor([0.0, 1e-3, 1.0])
    for weight in (
        min_snr_weight(snr, 5.0, "epsilon"),
        min_snr_weight(snr, 5.0, "v_prediction"),
        min_snr_weight(snr, 5.0, "sample"),
        debiased_estimation_weight(snr, "epsilon"),
        debiased_estimation_weight(snr, "v_prediction"),
        p2_weight(snr, gamma=1.0, k=1.0),
    ):
        assert bool(torch.isfinite(weight).all())

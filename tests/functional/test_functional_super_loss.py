"""Tests for nectarloss.functional.super_loss and super_loss_confidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import lambertw as scipy_lambertw

from nectarloss.functional import rank_by_confidence, super_loss, super_loss_confidence
from nectarloss.functional.super_loss import _batch_mean
from nectarloss.modifiers import SuperLoss
from nectarloss.testing import SyncCounter

OMEGA = 0.5671432904097838  # W0(1), OEIS A030178; exp(-OMEGA) == OMEGA
# loss - tau = 2, lambda = 1: beta = 2, sigma* = exp(-W0(1)) = OMEGA,
# SuperLoss = 2 * OMEGA + OMEGA**2 (closed form, see the super_loss docstring).
SL_BETA_2 = 2.0 * OMEGA + OMEGA**2


def _reference(loss: np.ndarray, tau: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Castells et al. 2020, eq. 5 with scipy's W0 (W0 = -1 where beta <= -2/e).

    In floating point 0.5 * (-2/e) can land just below -1/e, where scipy returns NaN.
    """
    beta = (loss - tau) / lam
    capped = beta <= -2.0 / math.e
    w = scipy_lambertw(0.5 * np.where(capped, 0.0, beta)).real
    log_sigma = -np.where(capped, -1.0, w)
    sigma = np.exp(log_sigma)
    return (loss - tau) * sigma + lam * log_sigma**2, sigma


def test_closed_form_values() -> None:
    out = super_loss(torch.tensor([1.0, 3.0], dtype=torch.float64), tau=1.0)
    torch.testing.assert_close(
        out, torch.tensor([0.0, SL_BETA_2], dtype=torch.float64), rtol=1e-12, atol=1e-15
    )
    sigma = super_loss_confidence(torch.tensor([1.0, 3.0], dtype=torch.float64), tau=1.0)
    torch.testing.assert_close(sigma, torch.tensor([1.0, OMEGA], dtype=torch.float64))


def test_beta_capped_at_minus_two_over_e() -> None:
    # beta = -5 < -2/e: W0(-1/e) = -1, sigma* = e, SuperLoss = (l - tau) e + lambda.
    loss = torch.tensor([0.0], dtype=torch.float64)
    sigma = super_loss_confidence(loss, tau=5.0, regularization=1.0)
    torch.testing.assert_close(sigma, torch.tensor([math.e], dtype=torch.float64))
    out = super_loss(loss, tau=5.0, regularization=1.0)
    torch.testing.assert_close(out, torch.tensor([-5.0 * math.e + 1.0], dtype=torch.float64))


@pytest.mark.parametrize("lam", [0.25, 1.0, 4.0])
def test_matches_scipy_reference(lam: float) -> None:
    gen = torch.Generator().manual_seed(0)
    loss = torch.rand(256, generator=gen, dtype=torch.float64) * 6.0
    ref_out, ref_sigma = _reference(loss.numpy(), tau=2.0, lam=lam)
    out = super_loss(loss, tau=2.0, regularization=lam)
    sigma = super_loss_confidence(loss, tau=2.0, regularization=lam)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), ref_sigma, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_wrt_loss_is_exactly_sigma(dtype: torch.dtype) -> None:
    loss = (torch.rand(64, dtype=dtype) * 5.0).requires_grad_(True)
    tau = torch.tensor(1.5, dtype=dtype, requires_grad=True)
    out = super_loss(loss, tau, regularization=0.5)
    grad_loss, grad_tau = torch.autograd.grad(out.sum(), (loss, tau), allow_unused=True)
    sigma = super_loss_confidence(loss, tau, regularization=0.5)
    assert torch.equal(grad_loss, sigma)
    assert grad_tau is None  # tau is treated as a constant


def test_large_regularization_tends_to_shifted_loss() -> None:
    loss = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    out = super_loss(loss, tau=1.0, regularization=1e6)
    torch.testing.assert_close(out, loss - 1.0, rtol=0.0, atol=1e-5)


def test_half_precision_loss_is_computed_in_float32() -> None:
    loss = torch.tensor([0.5, 2.0], dtype=torch.float16)
    out = super_loss(loss, tau=1.0)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, super_loss(loss.float(), tau=1.0))


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0.0, ValueError, r"super_loss: `regularization` expected a finite float > 0, got 0.0"),
        (-1.0, ValueError, r"expected a finite float > 0, got -1.0"),
        (math.nan, ValueError, r"expected a finite float > 0, got nan"),
        (True, TypeError, r"super_loss: `regularization` expected a float > 0, got bool"),
        ("1", TypeError, r"expected a float > 0, got str"),
    ],
)
def test_regularization_validation(value: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        super_loss(torch.ones(2), tau=1.0, regularization=value)  # type: ignore[arg-type]


def test_empty_batch() -> None:
    loss = torch.zeros(0, dtype=torch.float64, requires_grad=True)
    out = super_loss(loss, tau=torch.tensor(1.0))
    assert out.shape == (0,) and out.dtype == torch.float64
    out.sum().backward()
    assert loss.grad is not None and loss.grad.shape == (0,)
    assert super_loss_confidence(torch.zeros(0), tau=1.0).shape == (0,)


def test_non_finite_losses_stay_per_sample() -> None:
    """A NaN or inf sample is non-finite in the output; the others are untouched."""
    loss = torch.tensor([1.0, math.nan, 3.0, math.inf], dtype=torch.float64)
    out = super_loss(loss, tau=1.0)
    assert torch.equal(torch.isfinite(out), torch.tensor([True, False, True, False]))
    torch.testing.assert_close(out[[0, 2]], super_loss(loss[[0, 2]], tau=1.0))


# The running threshold (threshold="exp", momentum 0.1) that SuperLoss feeds to these
# functions: the first batch sets tau to its mean, then tau <- tau - 0.1 * (tau - mean).
TAU_AFTER_EXP_STEP = 2.0 - 0.1 * (2.0 - 6.0)


def running(*batches: list[float]) -> SuperLoss:
    """A SuperLoss(threshold="exp") in float64 that has seen ``batches``."""
    modifier = SuperLoss(threshold="exp", momentum=0.1).to(torch.float64)
    for batch in batches:
        modifier(torch.tensor(batch, dtype=torch.float64))
    return modifier


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("is_initialized", [False, True])
def test_running_threshold_skips_non_finite_mean(bad: float, is_initialized: bool) -> None:
    before = [[2.0]] if is_initialized else []
    modifier = running(*before, [1.0, bad])
    assert modifier.tau.item() == (2.0 if is_initialized else 0.0)  # unchanged
    modifier(torch.tensor([6.0], dtype=torch.float64))  # as if the bad batch was skipped
    expected = TAU_AFTER_EXP_STEP if is_initialized else 6.0
    assert modifier.tau.item() == pytest.approx(expected)


def test_running_threshold_moves_on_finite_mean() -> None:
    assert running([2.0, 2.0]).tau.item() == 2.0  # the first batch sets tau to its mean
    assert running([2.0], [6.0]).tau.item() == pytest.approx(TAU_AFTER_EXP_STEP)


@pytest.mark.parametrize("bad", ["nan", "empty"])
def test_bad_batch_is_computed_with_the_unchanged_tau(bad: str) -> None:
    loss = torch.tensor([1.0, math.nan]) if bad == "nan" else torch.empty(0)
    modifier = running([2.0])
    out = modifier(loss.double())
    assert modifier.tau.item() == 2.0
    assert out.shape == modifier.confidences.shape == loss.shape
    torch.testing.assert_close(out, super_loss(loss.double(), 2.0), equal_nan=True)


@pytest.mark.parametrize("lam", [0.25, 1.0, 4.0])
def test_float32_matches_scipy_reference(lam: float) -> None:
    """float32 stays within its condition numbers from the cap (beta = -2/e) to huge losses.

    sigma* = exp(-W) moves by the absolute error of W, about eps32 W for large W; near
    the cap W has infinite slope (dW/dz = e / (1 + W)), so the float32 rounding of
    ``loss - tau`` alone moves sigma* by ~eps32 e / (1 + W). The tolerance is 2e-6 plus
    both.
    """
    gen = torch.Generator().manual_seed(1)
    loss = torch.cat(
        [
            torch.rand(256, generator=gen) * 6.0,
            2.0 - 2.0 * lam / math.e + torch.logspace(-6, 0, 64),  # just above the cap
            torch.logspace(1, 30, 64),
        ]
    ).float()
    ref_out, ref_sigma = _reference(loss.double().numpy(), tau=2.0, lam=lam)
    one_plus_w = 1.0 - np.log(ref_sigma)  # 1 + W, as W = -log(sigma*)
    eps32 = float(torch.finfo(torch.float32).eps)
    slope = math.e / np.maximum(one_plus_w, math.sqrt(eps32))  # infinite at the cap itself
    rtol = 2e-6 + eps32 * (2.0 * (one_plus_w - 1.0) + 2.0 * slope)
    sigma = super_loss_confidence(loss, tau=2.0, regularization=lam).double().numpy()
    assert np.all(np.abs(sigma - ref_sigma) <= rtol * ref_sigma)
    out = super_loss(loss, tau=2.0, regularization=lam).double().numpy()
    assert np.all(np.abs(out - ref_out) <= rtol * (np.abs(ref_out) + lam) + 1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_finite_losses_stay_finite(dtype: torch.dtype) -> None:
    """Even where (loss - tau) / lambda overflows, sigma* and the SuperLoss stay finite."""
    big = torch.finfo(dtype).max
    loss = torch.tensor([1e30, big / 4, big], dtype=dtype)
    sigma = super_loss_confidence(loss, tau=0.0, regularization=1e-3)
    assert bool(torch.isfinite(sigma).all()) and bool((sigma >= 0).all())
    assert bool(torch.isfinite(super_loss(loss, tau=0.0, regularization=1e-3)).all())


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_float32_just_above_the_cap_keeps_relative_precision(lam: float) -> None:
    """Where beta is just above -2/e, W has infinite slope: 2 lambda / e must cancel exactly.

    The float32 losses and tau are exact inputs (their difference is exact in float64);
    scaling loss - tau by e / lambda before adding 2 loses ~1e-4 of sigma* here.
    """
    gen = torch.Generator().manual_seed(3)
    cap = 2.0 - 2.0 * lam / math.e
    loss = (cap + torch.rand(4096, generator=gen, dtype=torch.float64) * 1e-3 * lam).float()
    _, ref_sigma = _reference(loss.double().numpy(), tau=2.0, lam=lam)
    sigma = super_loss_confidence(loss, tau=2.0, regularization=lam).double().numpy()
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [1, 3, 256, 1000])
def test_batch_mean_is_the_mean_up_to_the_last_bit(dtype: torch.dtype, size: int) -> None:
    """The running threshold's batch mean is a sum times a cached 1 / n (cheaper on CPU)."""
    values = torch.rand(size, dtype=dtype) * 5.0
    torch.testing.assert_close(
        _batch_mean(values), values.mean(), rtol=2 * torch.finfo(dtype).eps, atol=0.0
    )


def test_batch_mean_of_an_empty_batch_is_nan() -> None:
    """As ``mean``: NaN, so the running threshold skips the batch."""
    assert bool(torch.isnan(_batch_mean(torch.empty(0))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_traced_forward_gives_the_eager_bits(dtype: torch.dtype) -> None:
    """Traced by dynamo (backend "eager": the same ops), the SuperLoss gives eager's bits.

    Guards against forms dynamo rewrites (``torch.addcdiv(..., value=)`` becomes an add of
    a div) and against constants that differ between the cached and the traced path.
    """
    torch._dynamo.reset()
    traced = torch.compile(super_loss, backend="eager", fullgraph=True)
    gen = torch.Generator().manual_seed(5)
    loss = torch.rand(4096, generator=gen, dtype=dtype) * 6.0
    assert torch.equal(traced(loss, 2.0, 0.7), super_loss(loss, 2.0, 0.7))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_capped_confidences_tie_at_exactly_e(dtype: torch.dtype) -> None:
    """The docstring's claim: loss <= tau - 2 lambda / e gives sigma* == e in the dtype."""
    lam, tau = 0.5, 10.0
    cap = tau - 2.0 * lam / math.e
    loss = torch.tensor([0.0, 1.0, 5.0, cap - 1e-3, cap + 1e-2, tau], dtype=dtype)
    sigma = super_loss_confidence(loss, tau, lam)
    e = torch.tensor(math.e, dtype=dtype)
    assert torch.equal(sigma[:4], e.expand(4))  # four different losses, one confidence
    assert bool((sigma[4:] < e).all())


def test_rank_by_confidence_breaks_ties_by_the_raw_loss() -> None:
    loss = torch.tensor([0.5, 9.0, 0.1, 3.0, 4.5, math.nan])
    confidence = super_loss_confidence(loss, tau=4.0)  # 0.5, 0.1 and 3.0 are capped
    order = rank_by_confidence(confidence, loss)
    # NaN first, then by confidence ascending; the three tied at e by loss descending.
    assert order.tolist() == [5, 1, 4, 3, 0, 2]
    assert torch.equal(order[1:4], torch.argsort(loss[:5], descending=True)[:3])


def test_rank_by_confidence_orders_a_batch_as_the_loss_does() -> None:
    """Within one batch (one tau) sigma* decreases with the loss: both rankings agree."""
    gen = torch.Generator().manual_seed(1)
    loss = torch.rand(500, generator=gen, dtype=torch.float64) * 8.0
    confidence = super_loss_confidence(loss, tau=6.0, regularization=0.3)
    assert int((confidence == math.e).sum()) > 100  # many ties
    order = rank_by_confidence(confidence, loss)
    assert torch.equal(order, torch.argsort(loss, descending=True, stable=True))


def test_rank_by_confidence_does_not_sync() -> None:
    loss = torch.rand(64)
    confidence = super_loss_confidence(loss, tau=0.9)
    with SyncCounter() as counter:
        rank_by_confidence(confidence, loss)
    assert counter.total == 0


def test_rank_by_confidence_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"rank_by_confidence: `loss` expected .* got \(3,\)"):
        rank_by_confidence(torch.ones(4), torch.ones(3))

"""Tests for nectarloss.functional.snr_weights (min-SNR, debiased estimation, P2)."""

from __future__ import annotations

import math

import pytest
import torch

from nectarloss.functional import (
    debiased_estimation,
    debiased_estimation_weight,
    min_snr,
    min_snr_weight,
    p2,
    p2_weight,
)

SNR = torch.tensor([0.0, 0.5, 5.0, 50.0, 1e6], dtype=torch.float64)
# Hang et al. 2023, eq. for gamma = 5: min(SNR, 5) / SNR (epsilon), the SNR = 0 limit is 1.
MIN_SNR_EPS = [1.0, 1.0, 1.0, 0.1, 5e-6]
MIN_SNR_V = [0.0, 0.5 / 1.5, 5.0 / 6.0, 5.0 / 51.0, 5.0 / (1e6 + 1.0)]  # min(SNR,5)/(SNR+1)
MIN_SNR_X0 = [0.0, 0.5, 5.0, 5.0, 5.0]  # min(SNR, 5)
# Choi et al. 2022: 1 / (k + SNR)^gamma with k = 1, gamma = 0.5.
P2_HALF = [1.0 / math.sqrt(1.0 + s) for s in SNR.tolist()]


def _kohya_debiased(snr: torch.Tensor, v_prediction: bool) -> torch.Tensor:
    """Debiased estimation (Yu et al. 2024, kohya's SNR cap of 1000); v: 1/sqrt(SNR + 1)."""
    if v_prediction:
        return 1 / torch.sqrt(snr + 1)
    snr_t = torch.minimum(snr, torch.ones_like(snr) * 1000)
    return 1 / torch.sqrt(snr_t)


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [("epsilon", MIN_SNR_EPS), ("v_prediction", MIN_SNR_V), ("sample", MIN_SNR_X0)],
)
def test_min_snr_reference_values(prediction: str, expected: list[float]) -> None:
    weight = min_snr_weight(SNR, gamma=5.0, prediction=prediction)
    torch.testing.assert_close(weight, torch.tensor(expected, dtype=torch.float64))


def test_min_snr_parameterisations_agree_in_x0_terms() -> None:
    # loss_eps = SNR * loss_x0 and loss_v = (SNR + 1) * loss_x0 (alpha^2 + sigma^2 = 1).
    snr = SNR[1:]
    x0 = min_snr_weight(snr, 5.0, "sample")
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "epsilon") * snr, x0)
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "v_prediction") * (snr + 1), x0)


def test_debiased_matches_reference_for_epsilon_and_v() -> None:
    snr = SNR[1:].float()
    torch.testing.assert_close(
        debiased_estimation_weight(snr, "epsilon"), _kohya_debiased(snr, False)
    )
    torch.testing.assert_close(
        debiased_estimation_weight(snr, "v_prediction"), _kohya_debiased(snr, True)
    )


def test_debiased_infinite_and_zero_snr_stay_finite() -> None:
    snr = torch.tensor([math.inf, 0.0])
    weight = debiased_estimation_weight(snr)
    torch.testing.assert_close(weight, torch.tensor([1 / math.sqrt(1000.0), 1 / math.sqrt(1e-6)]))
    assert torch.isfinite(debiased_estimation_weight(snr, "sample")).all()


def test_debiased_sample_is_epsilon_weight_in_x0_terms() -> None:
    snr = SNR[1:4]
    torch.testing.assert_close(
        debiased_estimation_weight(snr, "sample") / snr, debiased_estimation_weight(snr)
    )


def test_p2_reference_values() -> None:
    torch.testing.assert_close(
        p2_weight(SNR, gamma=0.5, k=1.0), torch.tensor(P2_HALF, dtype=torch.float64)
    )
    torch.testing.assert_close(
        p2_weight(torch.tensor([3.0]), gamma=2.0, k=1.0), torch.tensor([1 / 16])
    )


def test_loss_twins_multiply() -> None:
    loss = torch.tensor([2.0, 3.0, 4.0], requires_grad=True)
    snr = torch.tensor([0.5, 5.0, 50.0])
    torch.testing.assert_close(min_snr(loss, snr), loss * min_snr_weight(snr))
    torch.testing.assert_close(
        debiased_estimation(loss, snr), loss * debiased_estimation_weight(snr)
    )
    torch.testing.assert_close(p2(loss, snr), loss * p2_weight(snr))
    (grad,) = torch.autograd.grad(p2(loss, snr).sum(), loss)
    torch.testing.assert_close(grad, p2_weight(snr))


def test_weights_are_detached_and_float32_for_integer_snr() -> None:
    snr = torch.tensor([1.0, 2.0], requires_grad=True)
    assert not min_snr_weight(snr).requires_grad
    assert min_snr_weight(torch.tensor([1, 2])).dtype == torch.float32
    assert p2_weight(torch.tensor([1.0], dtype=torch.float16)).dtype == torch.float32


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: min_snr_weight(SNR, gamma=0.0),
            ValueError,
            r"min_snr_weight: `gamma` expected a finite float > 0, got 0.0",
        ),
        (
            lambda: min_snr_weight(SNR, gamma="5"),
            TypeError,
            r"`gamma` expected a finite float > 0, got str",
        ),
        (
            lambda: min_snr_weight(SNR, prediction="x0"),
            ValueError,
            r"`prediction` expected one of \('epsilon', 'v_prediction', 'sample'\), got 'x0'",
        ),
        (lambda: min_snr_weight(SNR, prediction=None), TypeError, r"`prediction` expected one of"),
        (
            lambda: min_snr_weight([1.0]),
            TypeError,
            r"min_snr_weight: `snr` expected a Tensor, got list",
        ),
        (
            lambda: p2_weight(SNR, k=-1.0),
            ValueError,
            r"p2_weight: `k` expected a finite float > 0, got -1.0",
        ),
        (
            lambda: p2_weight(SNR, gamma=math.inf),
            ValueError,
            r"p2_weight: `gamma` expected a finite float > 0, got inf",
        ),
        (
            lambda: debiased_estimation_weight(SNR, snr_range=(10.0, 1.0)),
            ValueError,
            r"`snr_range` expected 0 <= low < high, got \(10.0, 1.0\)",
        ),
        (
            lambda: debiased_estimation_weight(SNR, snr_range=5.0),
            TypeError,
            r"`snr_range` expected a \(low, high\) pair",
        ),
        (
            lambda: min_snr(torch.ones(3), torch.ones(4)),
            ValueError,
            r"min_snr: `snr` expected a shape broadcastable to the loss shape \(3,\), got \(4,\)",
        ),
    ],
)
def test_validation(call: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    "twin", [min_snr, debiased_estimation, p2], ids=["min_snr", "debiased", "p2"]
)
@pytest.mark.parametrize("snr_dtype", [torch.float32, torch.int64])
def test_empty_batch(twin: object, snr_dtype: torch.dtype) -> None:
    loss = torch.zeros(0, requires_grad=True)
    out = twin(loss, torch.zeros(0, dtype=snr_dtype))  # type: ignore[operator]
    assert out.shape == (0,) and out.dtype == torch.float32
    out.sum().backward()
    assert loss.grad is not None and loss.grad.shape == (0,)
    for weight in (min_snr_weight, debiased_estimation_weight, p2_weight):
        assert weight(torch.zeros(0, dtype=snr_dtype)).shape == (0,)

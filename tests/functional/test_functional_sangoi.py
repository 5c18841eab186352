"""Tests for nectarloss.functional.sangoi (sangoi_weight, sangoi, mape)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from benchmarks.baselines.seed_modifiers import seed_sangoi_weight
from nectarloss.functional import mape, sangoi, sangoi_weight


def _inputs(
    shape: tuple[int, ...], dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(shape, generator=gen).to(dtype)
    prediction = (target + 0.3 * torch.randn(shape, generator=gen)).to(dtype)
    snr = torch.logspace(-5, 3, shape[0]).to(dtype)  # covers both clamp ends
    return snr, prediction, target


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_reference_exact_is_bit_for_bit(dtype: torch.dtype) -> None:
    snr, prediction, target = _inputs((6, 4, 8, 8), dtype)
    assert bool(((target + 1e-8) != 0).all())
    ours = sangoi_weight(snr, prediction, target, reference_exact=True)
    assert ours.dtype == dtype
    assert torch.equal(ours, seed_sangoi_weight(snr, prediction, target))


def test_reference_exact_gradients_match_seed_with_detach_false() -> None:
    snr, prediction, target = _inputs((3, 2, 4, 4), torch.float64)
    p1 = prediction.clone().requires_grad_(True)
    p2 = prediction.clone().requires_grad_(True)
    (g_ours,) = torch.autograd.grad(
        sangoi_weight(snr, p1, target, reference_exact=True, detach=False).sum(), p1
    )
    (g_seed,) = torch.autograd.grad(seed_sangoi_weight(snr, p2, target).sum(), p2)
    assert torch.equal(g_ours, g_seed)


def test_default_close_to_seed_for_positive_targets() -> None:
    snr, prediction, target = _inputs((4, 3, 5, 5), torch.float64)
    target = target.abs() + 0.5  # here |target| == target, so only log1p vs log differ
    ours = sangoi_weight(snr, prediction, target)
    torch.testing.assert_close(
        ours, seed_sangoi_weight(snr, prediction, target), rtol=1e-12, atol=0
    )


def test_sign_safe_epsilon() -> None:
    # target == -eps: the seed divides 0 by 0 (NaN); |target| + eps does not.
    target = torch.full((2, 1, 2, 2), -1e-8, dtype=torch.float64)
    snr = torch.tensor([10.0, 10.0], dtype=torch.float64)
    assert torch.isnan(seed_sangoi_weight(snr, target.clone(), target)).all()
    weight = sangoi_weight(snr, target.clone(), target)
    torch.testing.assert_close(weight, torch.full((2,), 1 / 11, dtype=torch.float64))
    assert torch.isnan(sangoi_weight(snr, target.clone(), target, sign_safe=False)).all()


@pytest.mark.parametrize("shape", [(5, 7), (5, 16, 8), (5, 3, 6, 6), (5, 2, 3, 4, 4)])
def test_any_rank_reduces_all_non_batch_dims(shape: tuple[int, ...]) -> None:
    snr, prediction, target = _inputs(shape)
    weight = sangoi_weight(snr, prediction, target)
    assert weight.shape == (shape[0],)
    flat = sangoi_weight(snr, prediction.flatten(1), target.flatten(1))
    torch.testing.assert_close(weight, flat)


def test_rank_one_inputs() -> None:
    weight = sangoi_weight(torch.tensor([3.0, 3.0]), torch.tensor([1.0, 0.0]), torch.ones(2))
    torch.testing.assert_close(weight, torch.tensor([0.25, 1.0]))


def test_mask_selects_elements() -> None:
    snr, prediction, target = _inputs((4, 2, 6, 6), torch.float64)
    mask = torch.zeros(4, 1, 6, 6, dtype=torch.bool)
    mask[:, :, :3] = True
    weight = sangoi_weight(snr, prediction, target, mask=mask)
    expected = sangoi_weight(snr, prediction[:, :, :3], target[:, :, :3])
    torch.testing.assert_close(weight, expected)
    all_ones = sangoi_weight(snr, prediction, target, mask=torch.ones(4, 2, 6, 6))
    torch.testing.assert_close(all_ones, sangoi_weight(snr, prediction, target))


def test_zero_mask_row_gives_weight_one() -> None:
    snr, prediction, target = _inputs((3, 4, 4))
    mask = torch.ones(3, 4, 4)
    mask[1] = 0.0
    weight = sangoi_weight(snr, prediction, target, mask=mask)
    assert weight[1].item() == 1.0
    assert torch.isfinite(weight).all()


def test_upcast_half_precision() -> None:
    snr, prediction, target = _inputs((2, 3, 4, 4), torch.float16)
    weight = sangoi_weight(snr, prediction, target)
    assert weight.dtype == torch.float32
    torch.testing.assert_close(
        weight, sangoi_weight(snr.float(), prediction.float(), target.float())
    )
    assert sangoi_weight(snr, prediction, target, upcast=False).dtype == torch.float16


def test_detach_controls_gradient_flow() -> None:
    snr, prediction, target = _inputs((2, 3, 4))
    prediction.requires_grad_(True)
    assert not sangoi_weight(snr, prediction, target).requires_grad
    assert sangoi_weight(snr, prediction, target, detach=False).requires_grad


def test_sangoi_multiplies_loss() -> None:
    snr, prediction, target = _inputs((4, 3, 4, 4))
    loss = torch.rand(4, requires_grad=True)
    out = sangoi(loss, snr, prediction, target)
    weight = sangoi_weight(snr, prediction, target)
    torch.testing.assert_close(out, loss * weight)
    (grad,) = torch.autograd.grad(out.sum(), loss)
    torch.testing.assert_close(grad, weight)


def test_mape_reference_values() -> None:
    prediction = torch.tensor([[1.0, 3.0], [0.0, -2.0]])
    target = torch.tensor([[2.0, 2.0], [1.0, -2.0]])
    # |1-2|/2 = 0.5, |2-3|/2 = 0.5 -> 0.5; |1-0|/1 = 1, 0 -> 0.5 (eps negligible)
    torch.testing.assert_close(mape(prediction, target), torch.tensor([0.5, 0.5]))
    unclamped = mape(torch.tensor([[5.0]]), torch.tensor([[1.0]]), max_error=None)
    torch.testing.assert_close(unclamped, torch.tensor([4.0]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"target": torch.ones(2, 3)},
            ValueError,
            r"sangoi_weight: `target` expected the prediction's shape \(2, 4\), got \(2, 3\)",
        ),
        (
            {"mask": torch.ones(3, 4)},
            ValueError,
            r"`mask` expected a shape broadcastable to the inputs' shape \(2, 4\), got \(3, 4\)",
        ),
        ({"mask": [1, 0]}, TypeError, r"`mask` expected a Tensor, got list"),
        ({"eps": 0.0}, ValueError, r"sangoi_weight: `eps` expected a finite float > 0, got 0.0"),
        ({"snr_range": (1.0, 1.0)}, ValueError, r"`snr_range` expected 0 <= low < high"),
        (
            {"reference_exact": True, "mask": torch.ones(2, 4)},
            ValueError,
            r"`mask` expected None with reference_exact=True",
        ),
    ],
)
def test_validation(kwargs: dict[str, object], error: type, match: str) -> None:
    args: dict[str, object] = {
        "snr": torch.ones(2),
        "prediction": torch.ones(2, 4),
        "target": torch.ones(2, 4),
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sangoi_weight(**args)  # type: ignore[arg-type]


def test_sangoi_batch_mismatch() -> None:
    with pytest.raises(
        ValueError, match=r"sangoi: `prediction` expected shape \[B, \.\.\.\] with B matching"
    ):
        sangoi(torch.ones(3), torch.ones(3), torch.ones(2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"sangoi: `snr` expected a shape broadcastable"):
        sangoi(torch.ones(2), torch.ones(3), torch.ones(2, 4), torch.ones(2, 4))


def test_perfect_prediction_weight_is_inverse_one_plus_snr() -> None:
    target = torch.randn(3, 5).abs() + 1.0
    snr = torch.tensor([0.0, 1.0, 1e4])
    weight = sangoi_weight(snr, target.clone(), target)
    expected = 1.0 / (1.0 + snr.clamp(1e-4, 100.0))
    torch.testing.assert_close(weight, expected)
    assert math.isclose(weight[2].item(), 1 / 101, rel_tol=1e-6)


def test_float32_under_autocast() -> None:
    snr, prediction, target = _inputs((2, 3, 4, 4))
    expected = sangoi_weight(snr, prediction, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        weight = sangoi_weight(snr, prediction.bfloat16(), target.bfloat16())
        same = sangoi_weight(snr, prediction, target)
    assert weight.dtype == torch.float32
    assert torch.equal(same, expected)
    torch.testing.assert_close(
        weight, sangoi_weight(snr, prediction.bfloat16().float(), target.bfloat16().float())
    )


@pytest.mark.parametrize("reference_exact", [False, True])
@pytest.mark.parametrize("shape", [(0,), (0, 4), (0, 3, 8, 8)])
def test_empty_batch(shape: tuple[int, ...], reference_exact: bool) -> None:
    prediction = torch.randn(shape, requires_grad=True)
    target = torch.randn(shape)
    loss, snr = torch.zeros(0), torch.zeros(0)
    assert mape(prediction, target).shape == (0,)
    assert sangoi_weight(snr, prediction, target, reference_exact=reference_exact).shape == (0,)
    mask = None if reference_exact else torch.ones(shape, dtype=torch.bool)
    out = sangoi(
        loss, snr, prediction, target, mask=mask, detach=False, reference_exact=reference_exact
    )
    assert out.shape == (0,)
    out.sum().backward()
    assert prediction.grad is not None and prediction.grad.shape == shape

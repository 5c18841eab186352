"""Tests for the MinSNR, DebiasedEstimation and P2 modifiers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor

from nectarloss.functional import debiased_estimation, min_snr, p2
from nectarloss.modifiers import P2, DebiasedEstimation, LossContext, MinSNR, NoiseSchedule

SCHEDULE = NoiseSchedule.scaled_linear()
TIMESTEPS = torch.tensor([0, 10, 100, 500, 999])
# min(SNR, 5) / SNR at t = 0 with SNR(0) = 1175.47 (scaled_linear, see test_noise_schedule).
MIN_SNR_EPS_T0 = 5.0 / 1175.4706
# kohya clamps SNR at 1000: 1 / sqrt(1000) at t = 0.
DEBIASED_EPS_T0 = 1.0 / math.sqrt(1000.0)


def _context(timesteps: Tensor | None = TIMESTEPS) -> LossContext:
    batch = 5 if timesteps is None else timesteps.shape[0]
    return LossContext("mse", (torch.zeros(batch, 3), torch.zeros(batch, 3)), timesteps=timesteps)


def _kohya_snr_weight(snr: Tensor, gamma: float, v_prediction: bool) -> Tensor:
    """kohya-ss apply_snr_weight's weight (inline reference)."""
    min_snr_gamma = torch.minimum(snr, torch.full_like(snr, gamma))
    if v_prediction:
        return torch.div(min_snr_gamma, snr + 1).float()
    return torch.div(min_snr_gamma, snr).float()


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_module_equals_functional(prediction: str) -> None:
    loss = torch.rand(5)
    snr = SCHEDULE.snr(TIMESTEPS)
    ctx = _context()
    torch.testing.assert_close(
        MinSNR(SCHEDULE, 3.0, prediction)(loss, ctx), min_snr(loss, snr, 3.0, prediction)
    )
    torch.testing.assert_close(
        DebiasedEstimation(SCHEDULE, prediction)(loss, ctx),
        debiased_estimation(loss, snr, prediction),
    )
    torch.testing.assert_close(P2(SCHEDULE, 0.5, 2.0)(loss, ctx), p2(loss, snr, 0.5, 2.0))


def test_reference_values() -> None:
    ones = torch.ones(5)
    min_weight = MinSNR(SCHEDULE)(ones, _context())
    assert min_weight[0].item() == pytest.approx(MIN_SNR_EPS_T0, rel=1e-5)
    assert min_weight[-1].item() == 1.0
    debiased = DebiasedEstimation(SCHEDULE)(ones, _context())
    assert debiased[0].item() == pytest.approx(DEBIASED_EPS_T0, rel=1e-6)


@pytest.mark.parametrize("v_prediction", [False, True])
def test_min_snr_matches_kohya(v_prediction: bool) -> None:
    snr = SCHEDULE.snr_table
    modifier = MinSNR(SCHEDULE, 5.0, "v_prediction" if v_prediction else "epsilon")
    t = torch.arange(1000)
    torch.testing.assert_close(modifier.weight(t), _kohya_snr_weight(snr, 5.0, v_prediction))


def test_float_timesteps_interpolate() -> None:
    modifier = P2(SCHEDULE)
    loss = torch.ones(1)
    snr = (SCHEDULE.snr_table[10] + SCHEDULE.snr_table[11]) / 2
    out = modifier(loss, _context(torch.tensor([10.5])))
    torch.testing.assert_close(out, 1.0 / (1.0 + snr.reshape(1)))


def test_requires_timesteps() -> None:
    for modifier in (MinSNR(SCHEDULE), DebiasedEstimation(SCHEDULE), P2(SCHEDULE)):
        assert modifier.requires_timesteps
        name = type(modifier).__name__
        with pytest.raises(ValueError, match=rf"mse: modifier {name} expected `timesteps`"):
            modifier(torch.ones(5), _context(None))


def test_timesteps_shape_must_match_batch() -> None:
    with pytest.raises(
        ValueError,
        match=(
            r"mse: modifier MinSNR: `timesteps` expected a shape broadcastable to the loss "
            r"shape \(3,\), got \(5,\)"
        ),
    ):
        MinSNR(SCHEDULE)(torch.ones(3), _context())


def test_accepts_scheduler_objects() -> None:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    modifier = MinSNR(SimpleNamespace(betas=betas))
    assert torch.equal(modifier.noise_schedule.snr_table, SCHEDULE.snr_table)
    with pytest.raises(
        TypeError, match=r"P2: `noise_schedule` expected a NoiseSchedule .*, got str"
    ):
        P2("scaled_linear")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: MinSNR(SCHEDULE, gamma=0.0),
            ValueError,
            r"MinSNR: `gamma` expected a finite float > 0, got 0.0",
        ),
        (
            lambda: MinSNR(SCHEDULE, gamma=None),
            TypeError,
            r"MinSNR: `gamma` expected a finite float > 0, got NoneType",
        ),
        (
            lambda: MinSNR(SCHEDULE, prediction="v"),
            ValueError,
            r"MinSNR: `prediction` expected one of "
            r"\('epsilon', 'v_prediction', 'sample'\), got 'v'",
        ),
        (
            lambda: DebiasedEstimation(SCHEDULE, prediction="flow"),
            ValueError,
            r"DebiasedEstimation: `prediction` expected one of",
        ),
        (
            lambda: DebiasedEstimation(SCHEDULE, snr_range=(0.0, -1.0)),
            ValueError,
            r"DebiasedEstimation: `snr_range` expected 0 <= low < high",
        ),
        (
            lambda: P2(SCHEDULE, gamma=-1.0),
            ValueError,
            r"P2: `gamma` expected a finite float > 0, got -1.0",
        ),
        (lambda: P2(SCHEDULE, k=0), ValueError, r"P2: `k` expected a finite float > 0, got 0.0"),
        (lambda: P2(SCHEDULE, k=True), TypeError, r"P2: `k` expected a finite float > 0, got bool"),
    ],
)
def test_validation(call: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]


def test_state_dict_holds_the_table_and_moves_with_to() -> None:
    modifier = DebiasedEstimation(NoiseSchedule.linear())
    state = modifier.state_dict()
    assert list(state) == ["noise_schedule.snr_table"]
    fresh = DebiasedEstimation(NoiseSchedule.scaled_linear())
    fresh.load_state_dict(state)
    assert torch.equal(fresh.noise_schedule.snr_table, modifier.noise_schedule.snr_table)
    assert modifier.to(torch.float64).noise_schedule.snr_table.dtype == torch.float64
    assert "prediction='epsilon'" in repr(modifier)


def test_gradient_flows_through_loss_only() -> None:
    loss = torch.rand(5, requires_grad=True)
    out = MinSNR(SCHEDULE)(loss, _context())
    (grad,) = torch.autograd.grad(out.sum(), loss)
    torch.testing.assert_close(grad, MinSNR(SCHEDULE).weight(TIMESTEPS))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    loss = torch.rand(5)
    for modifier in (MinSNR(SCHEDULE), DebiasedEstimation(SCHEDULE), P2(SCHEDULE)):
        cuda_modifier = type(modifier)(NoiseSchedule.scaled_linear()).cuda()
        ctx = LossContext("mse", (torch.zeros(5, 3, device="cuda"),), timesteps=TIMESTEPS.cuda())
        out = cuda_modifier(loss.cuda(), ctx)
        torch.testing.assert_close(out.cpu(), modifier(loss, _context()))

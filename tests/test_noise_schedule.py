"""Tests for nectarloss.noise.NoiseSchedule."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import nectarloss.modifiers
from nectarloss.noise import NoiseSchedule
from nectarloss.testing import SyncCounter

# SNR = alphas_cumprod / (1 - alphas_cumprod) of Stable Diffusion's scaled_linear schedule
# (betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2), closed form in float64.
SCALED_LINEAR_SNR = {0: 1175.47, 10: 103.508, 100: 8.45389, 500: 0.381850, 999: 0.00468192}
# DDPM linear schedule, beta_0 = 1e-4: SNR(0) = (1 - 1e-4) / 1e-4.
LINEAR_SNR_0 = 9999.0


def test_scaled_linear_reference_values() -> None:
    schedule = NoiseSchedule.scaled_linear()
    t = torch.tensor(list(SCALED_LINEAR_SNR))
    expected = torch.tensor(list(SCALED_LINEAR_SNR.values()))
    torch.testing.assert_close(schedule.snr(t), expected, rtol=1e-5, atol=0.0)
    assert schedule.num_steps == 1000
    assert schedule.snr_table.dtype == torch.float32


def test_table_is_computed_in_float64() -> None:
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    reference = torch.tensor(alphas_cumprod / (1.0 - alphas_cumprod)).float()
    assert torch.equal(NoiseSchedule.scaled_linear().snr_table, reference)


def test_linear_and_from_betas_agree() -> None:
    schedule = NoiseSchedule.linear()
    assert schedule.snr_table[0].item() == pytest.approx(LINEAR_SNR_0, rel=1e-6)
    same = NoiseSchedule.from_betas(torch.linspace(0.0001, 0.02, 1000, dtype=torch.float64))
    assert torch.equal(schedule.snr_table, same.snr_table)


def test_from_alphas_cumprod_and_scheduler() -> None:
    betas = torch.linspace(0.0001, 0.02, 50, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    by_betas = NoiseSchedule.from_betas(betas)
    by_ac = NoiseSchedule.from_alphas_cumprod(alphas_cumprod)
    torch.testing.assert_close(by_ac.snr_table, by_betas.snr_table)
    scheduler = SimpleNamespace(alphas_cumprod=alphas_cumprod, betas=betas)
    assert torch.equal(NoiseSchedule.from_scheduler(scheduler).snr_table, by_ac.snr_table)
    only_betas = SimpleNamespace(betas=betas.tolist())
    torch.testing.assert_close(
        NoiseSchedule.from_scheduler(only_betas).snr_table, by_betas.snr_table
    )
    with pytest.raises(
        TypeError,
        match=(
            r"from_scheduler: `scheduler` expected an object with `alphas_cumprod` or "
            r"`betas`, got object"
        ),
    ):
        NoiseSchedule.from_scheduler(object())


def test_alphas_cumprod_of_one_is_largest_float32() -> None:
    schedule = NoiseSchedule.from_alphas_cumprod([1.0, 0.5])
    assert schedule.snr_table[0].item() == torch.finfo(torch.float32).max
    assert schedule.snr(torch.tensor([0.5])).isfinite().all()


def test_flow_matching_grid() -> None:
    schedule = NoiseSchedule.flow_matching(num_steps=1000)
    sigma = torch.arange(1, 1001, dtype=torch.float64) / 1000  # sigma_t = (t + 1) / n
    expected = (((1 - sigma) / sigma) ** 2).float()
    assert torch.equal(schedule.snr_table, expected)
    assert schedule.snr_table[-1].item() == 0.0
    assert torch.isfinite(schedule.snr_table).all()
    sigmas = [0.25, 0.5, 1.0]
    torch.testing.assert_close(
        NoiseSchedule.from_sigmas(sigmas).snr_table, torch.tensor([9.0, 1.0, 0.0])
    )


def test_integer_lookup_is_a_gather() -> None:
    schedule = NoiseSchedule.scaled_linear()
    for dtype in (torch.int64, torch.int32, torch.uint8):
        t = torch.tensor([[0, 7], [100, 200]], dtype=dtype)
        assert torch.equal(schedule.snr(t), schedule.snr_table[t.long()])


def test_float_lookup_interpolates() -> None:
    schedule = NoiseSchedule.scaled_linear()
    table = schedule.snr_table
    assert torch.equal(schedule.snr(torch.tensor([3.0, 999.0])), table[[3, 999]])
    mid = schedule.snr(torch.tensor([10.5], dtype=torch.float64))
    torch.testing.assert_close(mid, (table[10:11] + table[11:12]) / 2)
    quarter = schedule.snr(torch.tensor([10.25], dtype=torch.float16))
    torch.testing.assert_close(quarter, table[10:11] * 0.75 + table[11:12] * 0.25)


def test_out_of_range_is_clamped_and_nan_propagates() -> None:
    schedule = NoiseSchedule.scaled_linear()
    table = schedule.snr_table
    assert torch.equal(schedule.snr(torch.tensor([-5, 5000])), table[[0, 999]])
    assert torch.equal(schedule.snr(torch.tensor([-0.5, 1e6])), table[[0, 999]])
    assert torch.isnan(schedule.snr(torch.tensor([math.nan]))).all()


def test_check_timesteps() -> None:
    schedule = NoiseSchedule.linear(num_steps=10)
    schedule.check_timesteps(torch.tensor([0, 9]))
    schedule.check_timesteps(torch.tensor([0.0, 8.5]))
    with pytest.raises(
        ValueError, match=r"NoiseSchedule: `timesteps` expected values in \[0, 9\], got 10"
    ):
        schedule.snr(torch.tensor([3, 10]), check=True)
    with pytest.raises(ValueError, match=r"expected values in \[0, 9\], got nan"):
        schedule.check_timesteps(torch.tensor([math.nan]))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: NoiseSchedule.from_betas([0.1, 1.0]),
            ValueError,
            r"from_betas: `betas` expected values in \(0, 1\), got 1.0 at index 1",
        ),
        (
            lambda: NoiseSchedule.from_betas([0.0, 0.1]),
            ValueError,
            r"`betas` expected values in \(0, 1\), got 0.0 at index 0",
        ),
        (
            lambda: NoiseSchedule.from_betas([[0.1]]),
            ValueError,
            r"`betas` expected a non-empty 1-D tensor, got shape \(1, 1\)",
        ),
        (
            lambda: NoiseSchedule.from_betas([]),
            ValueError,
            r"`betas` expected a non-empty 1-D tensor, got shape \(0,\)",
        ),
        (
            lambda: NoiseSchedule.from_betas([0.1, math.nan]),
            ValueError,
            r"`betas` expected finite values",
        ),
        (
            lambda: NoiseSchedule.from_betas("abc"),
            TypeError,
            r"`betas` expected a 1-D Tensor or sequence of floats, got str",
        ),
        (
            lambda: NoiseSchedule.from_alphas_cumprod([0.5, 0.0]),
            ValueError,
            r"`alphas_cumprod` expected values in \(0, 1\], got 0.0 at index 1",
        ),
        (
            lambda: NoiseSchedule.from_alphas_cumprod(torch.tensor([1.5])),
            ValueError,
            r"expected values in \(0, 1\]",
        ),
        (
            lambda: NoiseSchedule.from_sigmas([0.0]),
            ValueError,
            r"`sigmas` expected values in \(0, 1\]",
        ),
        (
            lambda: NoiseSchedule.linear(num_steps=0),
            ValueError,
            r"linear: `num_steps` expected an int >= 1, got 0",
        ),
        (
            lambda: NoiseSchedule.flow_matching(num_steps=10.0),
            TypeError,
            r"`num_steps` expected an int >= 1, got float",
        ),
        (
            lambda: NoiseSchedule.scaled_linear(beta_end=1.2),
            ValueError,
            r"scaled_linear: `beta_end` expected a float in \(0, 1\), got 1.2",
        ),
        (
            lambda: NoiseSchedule([-1.0]),
            ValueError,
            r"NoiseSchedule: `snr` expected values >= 0, got -1.0",
        ),
        (
            lambda: NoiseSchedule.linear().snr(torch.tensor([True])),
            TypeError,
            r"`timesteps` expected an integer or float Tensor, got torch.bool",
        ),
        (
            lambda: NoiseSchedule.linear().snr([1, 2]),
            TypeError,
            r"`timesteps` expected a Tensor, got list",
        ),
    ],
)
def test_validation(call: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]


def test_state_dict_round_trip_and_dtype_move() -> None:
    schedule = NoiseSchedule.scaled_linear()
    state = schedule.state_dict()
    assert list(state) == ["snr_table"]
    other = NoiseSchedule.linear()
    other.load_state_dict(state)
    assert torch.equal(other.snr_table, schedule.snr_table)
    assert schedule.to(torch.float64).snr_table.dtype == torch.float64


def test_lookup_does_not_sync() -> None:
    schedule = NoiseSchedule.scaled_linear()
    with SyncCounter() as counter:
        schedule.snr(torch.randint(0, 1000, (16,)))
        schedule.snr(torch.rand(16) * 999)
        schedule(torch.tensor([5000, -1]))
    assert counter.total == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_lookup_without_sync() -> None:
    schedule = NoiseSchedule.scaled_linear().cuda()
    t_int = torch.randint(0, 1000, (16,), device="cuda")
    t_float = torch.rand(16, device="cuda") * 999
    torch.cuda.set_sync_debug_mode("error")
    try:
        snr_int = schedule.snr(t_int)
        snr_float = schedule.snr(t_float)
        snr_host_t = schedule.snr(torch.tensor([1, 2]))  # CPU timesteps move to the table
    finally:
        torch.cuda.set_sync_debug_mode("default")
    cpu = NoiseSchedule.scaled_linear()
    torch.testing.assert_close(snr_int.cpu(), cpu.snr(t_int.cpu()))
    torch.testing.assert_close(snr_float.cpu(), cpu.snr(t_float.cpu()))
    assert snr_host_t.device.type == "cuda"
    with pytest.raises(ValueError, match=r"`timesteps` expected device cpu"):
        cpu.snr(t_int)


def test_reexported_from_modifiers() -> None:
    assert nectarloss.modifiers.NoiseSchedule is NoiseSchedule


def test_config_is_none_unless_built_from_a_spec() -> None:
    assert NoiseSchedule.scaled_linear().config is None
    assert NoiseSchedule([1.0, 0.5]).config is None

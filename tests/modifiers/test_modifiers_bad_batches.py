"""Every modifier survives a non-finite or empty per-sample batch.

A bad batch (a NaN or inf per-sample loss, or ``B = 0``) still gets an output of shape
``[B]``, but leaves the modifier's state (every buffer in ``state_dict``) exactly as if
the batch had been skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from nectarloss.modifiers import (
    P2,
    DebiasedEstimation,
    LossContext,
    MinSNR,
    Modifier,
    NoiseSchedule,
    Sangoi,
    SuperLoss,
)

SCHEDULE = NoiseSchedule.scaled_linear()
SHAPE = (3, 8, 8)


MODIFIERS: dict[str, Callable[[], Modifier]] = {
    "Sangoi": lambda: Sangoi(SCHEDULE),
    "Sangoi-reference_exact": lambda: Sangoi(SCHEDULE, reference_exact=True, mask_key=None),
    "Sangoi-no_detach": lambda: Sangoi(SCHEDULE, detach=False),
    "SuperLoss-exp": lambda: SuperLoss("exp"),
    "SuperLoss-global": lambda: SuperLoss("global"),
    "SuperLoss-constant": lambda: SuperLoss(2.0),
    "MinSNR": lambda: MinSNR(SCHEDULE),
    "DebiasedEstimation": lambda: DebiasedEstimation(SCHEDULE, prediction="v_prediction"),
    "P2": lambda: P2(SCHEDULE),
}


def _batch(seed: int, batch: int, float_timesteps: bool = False) -> tuple[Tensor, LossContext]:
    gen = torch.Generator().manual_seed(seed)
    prediction = torch.randn(batch, *SHAPE, generator=gen, requires_grad=True)
    target = torch.randn(batch, *SHAPE, generator=gen)
    if float_timesteps:
        timesteps = torch.rand(batch, generator=gen) * 999
    else:
        timesteps = torch.randint(0, 1000, (batch,), generator=gen)
    mask = torch.rand(batch, 1, 8, 8, generator=gen) > 0.3
    loss = (prediction - target).square().mean(dim=(1, 2, 3))
    ctx = LossContext("mse", (prediction, target), timesteps=timesteps, extra={"mask": mask})
    return loss, ctx


def _without_mask(modifier: Modifier, ctx: LossContext) -> LossContext:
    if getattr(modifier, "reference_exact", False):
        return LossContext(ctx.loss_name, ctx.inputs, timesteps=ctx.timesteps)
    return ctx


def _state(modifier: Modifier) -> dict[str, Tensor]:
    return {key: value.clone() for key, value in modifier.state_dict().items()}


def _assert_same_state(got: dict[str, Tensor], want: dict[str, Tensor]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), f"{key}: {got[key]} != {value}"


def _poison(loss: Tensor, value: float) -> Tensor:
    return torch.where(torch.arange(loss.shape[0]) == 1, torch.full_like(loss, value), loss)


@pytest.mark.parametrize("bad_value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", list(MODIFIERS))
def test_non_finite_batch_leaves_state_as_if_skipped(name: str, bad_value: float) -> None:
    hit, skip = MODIFIERS[name](), MODIFIERS[name]()
    for seed in range(5):
        loss, ctx = _batch(seed, 4)
        hit(loss, _without_mask(hit, ctx))
        skip(loss, _without_mask(skip, ctx))
    loss, ctx = _batch(99, 4)
    bad_loss = _poison(loss, bad_value)
    out = hit(bad_loss, _without_mask(hit, ctx))
    assert out.shape == (4,)
    assert not bool(torch.isfinite(out[1]))  # the bad sample stays visible to the manager
    _assert_same_state(_state(hit), _state(skip))
    for seed in range(5, 8):
        loss, ctx = _batch(seed, 4)
        torch.testing.assert_close(
            hit(loss, _without_mask(hit, ctx)),
            skip(loss, _without_mask(skip, ctx)),
            rtol=0.0,
            atol=0.0,
        )
        _assert_same_state(_state(hit), _state(skip))


@pytest.mark.parametrize("float_timesteps", [False, True], ids=["int_t", "float_t"])
@pytest.mark.parametrize("name", list(MODIFIERS))
def test_empty_batch_returns_empty_and_keeps_state(name: str, float_timesteps: bool) -> None:
    modifier = MODIFIERS[name]()
    loss, ctx = _batch(0, 4, float_timesteps)
    modifier(loss, _without_mask(modifier, ctx))
    state = _state(modifier)
    loss, ctx = _batch(1, 0, float_timesteps)
    out = modifier(loss, _without_mask(modifier, ctx))
    assert out.shape == (0,)
    assert out.dtype == torch.float32
    out.sum().backward()
    prediction = ctx.prediction
    assert prediction.grad is not None and prediction.grad.shape == (0, *SHAPE)
    _assert_same_state(_state(modifier), state)


@pytest.mark.parametrize("name", list(MODIFIERS))
def test_empty_batch_first(name: str) -> None:
    """An empty batch before any other leaves a fresh modifier fresh."""
    modifier = MODIFIERS[name]()
    state = _state(modifier)
    loss, ctx = _batch(0, 0)
    assert modifier(loss, _without_mask(modifier, ctx)).shape == (0,)
    _assert_same_state(_state(modifier), state)

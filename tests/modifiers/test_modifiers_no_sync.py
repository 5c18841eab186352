"""Every modifier's forward and backward run without a host sync (CPU proof)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

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
from nectarloss.testing import SyncCounter

SCHEDULE = NoiseSchedule.scaled_linear()


class _ItemCounter(TorchDispatchMode):
    """Counts aten.item and aten._local_scalar_dense, independently of SyncCounter."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default):
            self.count += 1
        return func(*args, **(kwargs or {}))


def _modifiers() -> list[Modifier]:
    return [
        Sangoi(SCHEDULE),
        Sangoi(SCHEDULE, reference_exact=True, mask_key=None),
        Sangoi(SCHEDULE, detach=False),
        SuperLoss("exp"),
        SuperLoss("global"),
        SuperLoss(2.0),
        MinSNR(SCHEDULE),
        DebiasedEstimation(SCHEDULE, prediction="v_prediction"),
        P2(SCHEDULE),
    ]


@pytest.mark.parametrize("modifier", _modifiers(), ids=lambda m: repr(m).split("(")[0])
@pytest.mark.parametrize("float_timesteps", [False, True])
def test_forward_and_backward_do_not_sync(modifier: Modifier, float_timesteps: bool) -> None:
    prediction = torch.randn(4, 3, 8, 8, requires_grad=True)
    target = torch.randn(4, 3, 8, 8)
    timesteps = torch.rand(4) * 999 if float_timesteps else torch.randint(0, 1000, (4,))
    mask = torch.rand(4, 1, 8, 8) > 0.3
    extra = {} if getattr(modifier, "reference_exact", False) else {"mask": mask}
    ctx = LossContext("mse", (prediction, target), timesteps=timesteps, extra=extra)
    items = _ItemCounter()
    with SyncCounter() as counter, items:
        for _ in range(3):  # several steps: running state updates included
            loss = (prediction - target).square().mean(dim=(1, 2, 3))
            modifier(loss, ctx).mean().backward()
    assert counter.scalar_reads == 0
    assert counter.host_copies == 0
    assert items.count == 0


@pytest.mark.parametrize("modifier", _modifiers(), ids=lambda m: repr(m).split("(")[0])
def test_bad_and_empty_batches_do_not_sync(modifier: Modifier) -> None:
    """The guarded state update (NaN, inf and empty batches) stays on the device."""
    extra_ok = not getattr(modifier, "reference_exact", False)
    items = _ItemCounter()
    with SyncCounter() as counter, items:
        for batch, bad in ((4, None), (4, math.nan), (4, math.inf), (0, None), (4, None)):
            prediction = torch.randn(batch, 3, 8, 8, requires_grad=True)
            target = torch.randn(batch, 3, 8, 8)
            mask = torch.rand(batch, 1, 8, 8) > 0.3
            ctx = LossContext(
                "mse",
                (prediction, target),
                timesteps=torch.randint(0, 1000, (batch,)),
                extra={"mask": mask} if extra_ok else {},
            )
            loss = (prediction - target).square().mean(dim=(1, 2, 3))
            if bad is not None:
                loss = torch.cat([loss[:1], loss[1:2] * bad, loss[2:]])
            modifier(loss, ctx).sum().backward()
    assert counter.scalar_reads == 0
    assert counter.host_copies == 0
    assert items.count == 0
    tau = getattr(modifier, "tau", None)
    if tau is not None:
        assert bool(torch.isfinite(tau))

"""Every modifier's forward and backward run without a host sync (CPU proof)."""

from __future__ import annotations

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
        Sangoi(SCHEDULE, seed_exact=True, mask_key=None),
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
    extra = {} if getattr(modifier, "seed_exact", False) else {"mask": mask}
    ctx = LossContext("mse", (prediction, target), timesteps=timesteps, extra=extra)
    items = _ItemCounter()
    with SyncCounter() as counter, items:
        for _ in range(3):  # several steps: running state updates included
            loss = (prediction - target).square().mean(dim=(1, 2, 3))
            modifier(loss, ctx).mean().backward()
    assert counter.scalar_reads == 0
    assert counter.host_copies == 0
    assert items.count == 0

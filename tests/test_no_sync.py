"""The per-step path never synchronises with the device; a flush costs one copy."""

from pathlib import Path

import torch
from torch import nn

from nectarloss import LossManager, Schedule, read_log
from nectarloss.log import LOG_FILENAME
from nectarloss.testing import SyncCounter


def test_sync_counter_sees_item_cpu_and_tolist() -> None:
    x = torch.ones(3)
    with SyncCounter() as c:
        x.sum().item()
        float(x[0])
    assert c.scalar_reads == 2
    with SyncCounter() as c:
        x.cpu()
        x.tolist()
        x.to("cpu", torch.float64)
    assert c.host_copies == 3 and c.total == 3
    c.reset()
    assert c.total == 0


def test_thousand_steps_no_sync_then_one_copy_per_flush(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lm = LossManager(tmp_path, history_buffer_size=5_000)
    lm.register_loss_fn("G_GAN", nn.BCEWithLogitsLoss(), tags=["G"])
    lm.register_loss_fn(
        "G_L1",
        nn.L1Loss(),
        schedule=Schedule(
            schedule="linear", start_epoch=0, end_epoch=10, initial_value=100.0, target_value=10.0
        ),
        tags=["G"],
    )
    lm.register_loss_fn("D_real", nn.BCEWithLogitsLoss(), loss_weight=0.5, tags=["D"])
    lm.register_loss_fn("D_fake", nn.BCEWithLogitsLoss(), loss_weight=0.5, tags=["D"])
    x, y = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    logits = torch.randn(2, 1, 4, 4)
    with SyncCounter() as steps:
        for i in range(1000):
            epoch = i // 100
            lm.compute_loss_xy("G_L1", x, y, epoch=epoch)
            lm.compute_loss_xy("G_GAN", logits, torch.ones_like(logits), epoch=epoch)
            lm.compute_loss_xy("D_real", logits, torch.ones_like(logits), epoch=epoch)
            lm.compute_loss_xy("D_fake", logits, torch.zeros_like(logits), epoch=epoch)
    assert steps.scalar_reads == 0
    assert steps.host_copies == 0
    with SyncCounter() as flush:
        lm.update_loss_log()
    assert flush.scalar_reads == 0
    assert flush.host_copies == 1  # all four buffers in one transfer
    log = read_log(tmp_path / LOG_FILENAME)
    assert [len(s.values) for s in log.losses.values()] == [1000] * 4
    with SyncCounter() as query:
        lm.get_loss_values()
    assert query.host_copies == 1 and query.scalar_reads == 0


def test_modifier_free_reduction_none_loss_is_sync_free(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("map", nn.MSELoss(reduction="none"))
    x = torch.randn(4, 8)
    with SyncCounter() as c:
        for _ in range(300):
            lm.compute_loss_xy("map", x, x * 0.5)
    assert c.total == 0

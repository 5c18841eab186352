"""Flushes append to the log: the cost of a flush does not depend on the log size."""

from pathlib import Path

import torch
from torch import nn

from nectarloss import LossManager, read_log
from nectarloss.log import LOG_FILENAME

#: Flushes in the run; each must leave the bytes already written as they were.
FLUSHES = 20
STEPS_PER_FLUSH = 5


def test_each_flush_only_appends(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.register_loss_fn("b", nn.MSELoss(), loss_weight=2.0)
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    path = tmp_path / LOG_FILENAME
    previous = b""
    for _ in range(FLUSHES):
        for _ in range(STEPS_PER_FLUSH):
            lm.compute_loss_xy("a", x, y)
            lm.compute_loss_xy("b", x, y)
        lm.update_loss_log()
        data = path.read_bytes()
        assert data.startswith(previous) and len(data) > len(previous)
        previous = data
    log = read_log(path)
    total = FLUSHES * STEPS_PER_FLUSH
    assert log.losses["a"].steps == list(range(total))
    assert log.losses["b"].weights == [2.0] * total

"""Shared helpers of the sink tests: a small run and readers for what sinks wrote."""

from __future__ import annotations

import struct
from pathlib import Path

import torch
from torch import nn

from nectarloss import LossManager
from nectarloss.log import read_log
from nectarloss.sinks import Sink


def run_two_losses(
    directory: Path, sinks: list[Sink], steps: int = 6, flush_every: int = 4, **kwargs: object
) -> LossManager:
    """Two losses (one tagged and weighted 2, one untagged) called ``steps`` times."""
    torch.manual_seed(0)
    lm = LossManager(directory, sinks=sinks, **kwargs)  # type: ignore[arg-type]
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=2.0, tags=["G", "pixel"])
    lm.register_loss_fn("mse", nn.MSELoss())
    for step in range(steps):
        lm.compute_loss_xy("G_L1", torch.rand(4), torch.rand(4))
        lm.compute_loss_xy("mse", torch.rand(4), torch.rand(4))
        if (step + 1) % flush_every == 0:
            lm.update_loss_log()
    lm.close()
    return lm


def log_rows(path: Path) -> dict[str, list[tuple[int, float, float, float]]]:
    """Per loss, ``(step, raw, weight, weighted)`` from the JSONL log."""
    log = read_log(path)
    return {
        name: list(zip(s.steps, s.values, s.weights, s.weighted, strict=True))
        for name, s in log.losses.items()
    }


def as_float32(value: float) -> float:
    """``value`` rounded to float32, as TensorBoard stores scalars."""
    rounded: float = struct.unpack("f", struct.pack("f", value))[0]
    return rounded


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in ``log_dir``, read with TensorBoard's own EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}

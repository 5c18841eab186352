"""BASELINE, not nectarloss: the per-step design of NectarGAN's LossManager (seed document).

Written for the benchmarks only, from the seed's description
(``/work/shared/seeds/nectargan-lossmanager-api.txt``):

* every ``compute_loss_xy`` call reads the loss mean back with ``.item()`` and appends it,
  and the weight, to two Python lists (``LMHistory.losses`` / ``LMHistory.weights``);
* every call stores ``last_loss_map``, a detached CPU clone of the loss tensor;
* a flush (``update_loss_log``, or automatically when a list reaches
  ``history_buffer_size``) reads the whole ``loss_log.json`` with the standard ``json``
  module, appends the buffered values, and rewrites the file: O(log), not O(buffer).

The log layout is NectarGAN's: ``{"LOSSMANAGER_LOG": {"loss_functions": {name:
{"loss": [...], "weights": [...]}}}}``. Only what the benchmarks call is implemented.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["NaiveHistory", "NaiveLMLoss", "NaiveLossManager"]

LOG_FILENAME = "loss_log.json"


@dataclass
class NaiveHistory:
    """Two Python lists, as NectarGAN's ``LMHistory``."""

    losses: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


@dataclass
class NaiveLMLoss:
    """A registered loss, as NectarGAN's ``LMLoss`` (no schedule: a constant weight)."""

    name: str
    function: Callable[..., Tensor]
    loss_weight: float = 1.0
    tags: list[str] = field(default_factory=list)
    last_loss_map: Tensor | None = None
    history: NaiveHistory = field(default_factory=NaiveHistory)


class NaiveLossManager:
    """The seed's per-step design: ``.item()`` and a CPU clone per call, rewrite-all flush."""

    def __init__(
        self,
        experiment_dir: str | os.PathLike[str],
        enable_logging: bool = True,
        history_buffer_size: int = 50_000,
    ) -> None:
        self.experiment_dir = Path(experiment_dir)
        self.experiment_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.experiment_dir / LOG_FILENAME
        self.enable_logging = enable_logging
        self.history_buffer_size = history_buffer_size
        self.losses: dict[str, NaiveLMLoss] = {}

    def register_loss_fn(
        self,
        loss_name: str,
        loss_fn: Callable[..., Tensor],
        loss_weight: float = 1.0,
        tags: Sequence[str] | None = None,
    ) -> NaiveLMLoss:
        if loss_name in self.losses:
            raise ValueError(f"NaiveLossManager: {loss_name!r} is already registered.")
        entry = NaiveLMLoss(loss_name, loss_fn, float(loss_weight), list(tags or []))
        self.losses[loss_name] = entry
        return entry

    # -- per step ------------------------------------------------------------------------
    def compute_loss_xy(
        self, loss_name: str, x: Tensor, y: Tensor, epoch: int | None = None
    ) -> Tensor:
        entry = self.losses[loss_name]
        history = entry.history
        if self.enable_logging and len(history.losses) >= self.history_buffer_size:
            self.update_loss_log()
        loss = entry.function(x, y)
        entry.last_loss_map = loss.detach().cpu().clone()  # a device-to-host copy per call
        weighted = loss * entry.loss_weight
        if not self.enable_logging:
            history.losses.clear()
            history.weights.clear()
        history.losses.append(loss.mean().item())  # a host sync per call
        history.weights.append(entry.loss_weight)
        return weighted

    # -- queries -------------------------------------------------------------------------
    def _select(self, query: Sequence[str] | None) -> list[NaiveLMLoss]:
        if query is None:
            return list(self.losses.values())
        return [e for e in self.losses.values() if e.name in query or set(e.tags) & set(query)]

    def get_loss_values(
        self, query: Sequence[str] | None = None, precision: int = 2
    ) -> dict[str, float]:
        return {
            e.name: round(e.history.losses[-1] * e.history.weights[-1], precision)
            for e in self._select(query)
            if e.history.losses
        }

    def get_loss_tensors(self, query: Sequence[str] | None = None) -> dict[str, Tensor]:
        return {e.name: e.last_loss_map for e in self._select(query) if e.last_loss_map is not None}

    # -- log -----------------------------------------------------------------------------
    def update_loss_log(self, silent: bool = True, capture: bool = False) -> str | None:
        """Read the whole JSON log, append every buffer, rewrite the file."""
        start = time.perf_counter()
        if self.log_path.exists():
            with self.log_path.open("r", encoding="utf-8") as fh:
                data: dict[str, Any] = json.load(fh)
        else:
            data = {"LOSSMANAGER_LOG": {"loss_functions": {}}}
        functions = data["LOSSMANAGER_LOG"]["loss_functions"]
        for name, entry in self.losses.items():
            logged = functions.setdefault(name, {"loss": [], "weights": []})
            logged["loss"].extend(entry.history.losses)
            logged["weights"].extend(entry.history.weights)
            entry.history.losses.clear()
            entry.history.weights.clear()
        with self.log_path.open("w", encoding="utf-8") as fh:
            json.dump(data, fh)
        if silent:
            return None
        message = f"Loss log updated in {(time.perf_counter() - start) * 1e3:.2f} ms"
        if capture:
            return message
        print(message)
        return None


def naive_device_note(device: torch.device) -> str:
    """What the per-call ``.item()`` and ``.cpu()`` mean on ``device``."""
    if device.type == "cuda":
        return "each .item() and .cpu() blocks until the GPU has finished the step so far"
    return "on CPU .item() and .cpu() do not wait for a device, so the naive cost is lower"

"""The NectarGAN seed's LossManager usage, nearly verbatim (import changed, Config dropped)."""

from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

from nectarloss import LMLoss, LossManager


def test_seed_usage(tmp_path: Path) -> None:
    device = "cpu"
    loss_manager = LossManager(experiment_dir=str(tmp_path / "experiment"))

    L1 = nn.L1Loss().to(device)
    loss_manager.register_loss_fn(
        loss_name="mylossfunction",
        loss_fn=L1,
        loss_weight=100.0,
        tags=["descriptive_lookup_tag"],
    )

    y = torch.rand(1, 3, 8, 8)  # Ground truth
    y_fake = torch.rand(1, 3, 8, 8)  # Generator output
    result: torch.Tensor = loss_manager.compute_loss_xy(loss_name="mylossfunction", x=y_fake, y=y)
    assert torch.allclose(result, L1(y_fake, y) * 100.0)

    losses: dict[str, LMLoss] = loss_manager.get_registered_losses(query=None)
    mylossfn: LMLoss = losses["mylossfunction"]
    lossfn = mylossfn.function
    loss_map = mylossfn.last_loss_map
    assert lossfn is L1 and loss_map is not None
    assert mylossfn.history.losses == [] and mylossfn.history.weights == []  # strip=True default
    full = loss_manager.get_registered_losses(query=None, strip=False)["mylossfunction"]
    assert len(full.history.losses) == 1 and full.history.weights == [100.0]

    values: dict[str, float] = loss_manager.get_loss_values(precision=2)
    tensors = loss_manager.get_loss_tensors()
    weights: dict[str, float] = loss_manager.get_loss_weights(precision=2)
    assert set(values) == set(tensors) == set(weights) == {"mylossfunction"}
    assert weights == {"mylossfunction": 100.0}

    lossfns: dict[str, LMLoss] = loss_manager.get_registered_losses(
        query=["descriptive_lookup_tag"]
    )
    values = loss_manager.get_loss_values(query=["descriptive_lookup_tag"])
    tensors_q: dict[str, Tensor] = loss_manager.get_loss_tensors(query=["descriptive_lookup_tag"])
    weights = loss_manager.get_loss_weights(query=["descriptive_lookup_tag"])
    assert len(lossfns) == len(values) == len(tensors_q) == len(weights) == 1

    loss_manager.update_loss_log(silent=True, capture=False)
    report = loss_manager.update_loss_log(silent=False, capture=True)
    assert isinstance(report, str)

    text = loss_manager.print_weights(capture=True)
    assert text == "Loss weights: mylossfunction: 100.00"


def test_seed_history_semantics_without_logging() -> None:
    """enable_logging=False: each list holds only the most recent value."""
    loss_manager = LossManager(enable_logging=False)
    loss_manager.register_loss_fn(loss_name="l", loss_fn=nn.MSELoss(), loss_weight=1.0)
    for i in range(3):
        loss_manager.compute_loss_xy(loss_name="l", x=torch.full((2,), float(i)), y=torch.zeros(2))
    h = loss_manager.get_registered_losses(strip=False)["l"].history
    assert h.losses == [4.0] and h.weights == [1.0]

"""LossManagerCallback with a real lightning.Trainer on CPU: logging, checkpoints, resume.

The reference is a run of 2 epochs x 4 batches. Another run crashes in its second epoch
after its manager flushed part of it (as at interpreter exit), then resumes from the
epoch-1 checkpoint: its JSONL log, its TensorBoardSink scalars and the values its
CSVLogger got must equal the reference's, at the same steps.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")
pytest.importorskip("tensorboard")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sinks"))
from sink_helpers import as_float32, tensorboard_scalars  # noqa: E402

from nectarloss import LossManager  # noqa: E402
from nectarloss.integrations.lightning import LossManagerCallback  # noqa: E402
from nectarloss.log import read_log  # noqa: E402
from nectarloss.sinks import TensorBoardSink  # noqa: E402

BATCHES, EPOCHS = 4, 2


class Regressor(pl.LightningModule):
    """A linear model trained on two registered losses; logs its total with self.log."""

    def __init__(self, lm: LossManager) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(4, 1)
        self.lm = lm

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        x, y = batch
        pred = self.net(x)
        mse = self.lm.compute_loss_xy("mse", pred, y, epoch=self.current_epoch)
        l1 = self.lm.compute_loss_xy("l1", pred, y, epoch=self.current_epoch)
        self.log("mse_weighted", mse, on_step=True, on_epoch=False)
        return mse + l1

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.net.parameters(), lr=0.1)

    def train_dataloader(self) -> Any:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(4 * BATCHES, 4, generator=g)
        y = x.sum(dim=1, keepdim=True)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)


class Crash(pl.Callback):
    """Raises after the given batch of the given epoch (a run killed mid-epoch)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if (trainer.current_epoch, args[-1]) == self.at:
            raise RuntimeError("simulated crash")


def make_manager(directory: Path, **kwargs: Any) -> LossManager:
    lm = LossManager(directory, sinks=[TensorBoardSink(directory / "tb")], **kwargs)
    lm.register_loss_fn("mse", nn.MSELoss(), loss_weight=2.0, tags=["fit"])
    lm.register_loss_fn("l1", nn.L1Loss(), loss_weight=0.5)
    return lm


def fit(directory: Path, lm: LossManager, extra: list[Any], ckpt_path: Path | None = None) -> None:
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(directory / "csv", name="", version=None),
        callbacks=[
            LossManagerCallback(lm),
            ModelCheckpoint(directory / "ckpt", save_top_k=-1, save_on_train_epoch_end=True),
            *extra,
        ],
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(Regressor(lm), ckpt_path=ckpt_path)


def csv_metrics(path: Path) -> dict[tuple[int, str], float]:
    """(step, metric) -> value of a CSVLogger's metrics.csv (empty cells skipped)."""
    out: dict[tuple[int, str], float] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            for key, value in row.items():
                if key not in ("step", "epoch") and value != "":
                    out[int(row["step"]), key] = float(value)
    return out


def log_series(directory: Path) -> dict[str, Any]:
    log = read_log(directory / "loss_log.jsonl")
    return {n: (list(s.steps), list(s.values), list(s.weights)) for n, s in log.losses.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("reference")
    lm = make_manager(directory)
    fit(directory, lm, [])
    # the loggers' forwarding is removed after fit (Lightning has finalized them)
    assert [type(s).__name__ for s in lm.sinks] == ["TensorBoardSink"]
    lm.close()
    return directory


def test_flushes_each_epoch_and_forwards_at_lightning_steps(reference: Path) -> None:
    series = log_series(reference)
    assert series["mse"][0] == list(range(EPOCHS * BATCHES))
    metrics = csv_metrics(reference / "csv" / "version_0" / "metrics.csv")
    steps, values, weights = series["mse"]
    for step, raw, weight in zip(steps, values, weights, strict=True):
        assert metrics[step, "loss/fit/mse/raw"] == raw
        assert metrics[step, "loss/fit/mse/weighted"] == raw * weight
        assert metrics[step, "weight/fit/mse"] == weight == 2.0
        # the module's own self.log of the same value lands on the same step
        assert metrics[step, "mse_weighted"] == pytest.approx(raw * weight, rel=1e-6)
    l1_steps, l1_values, _ = series["l1"]
    assert [metrics[s, "loss/l1/weighted"] for s in l1_steps] == [v * 0.5 for v in l1_values]


def test_checkpoint_holds_the_manager_state(reference: Path) -> None:
    ckpt = torch.load(reference / "ckpt" / "epoch=0-step=4.ckpt", weights_only=False)
    state = ckpt["nectarloss"]
    assert state["losses"]["mse"]["num_steps"] == BATCHES
    assert state["log"]["bytes"] > 0


def test_resume_from_epoch_1_checkpoint_equals_the_uninterrupted_run(
    reference: Path, tmp_path: Path
) -> None:
    lm = make_manager(tmp_path)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tmp_path, lm, [Crash(epoch=1, batch=1)])
    lm.close()  # what interpreter exit does: epoch 2's first values reach log and sinks
    assert log_series(tmp_path)["mse"][0] == list(range(BATCHES + 2))

    resumed = make_manager(tmp_path, resume=True)
    fit(tmp_path, resumed, [], ckpt_path=tmp_path / "ckpt" / "epoch=0-step=4.ckpt")
    resumed.close()

    assert log_series(tmp_path) == log_series(reference)
    assert tensorboard_scalars(tmp_path / "tb") == tensorboard_scalars(reference / "tb")
    want = csv_metrics(reference / "csv" / "version_0" / "metrics.csv")
    got = csv_metrics(tmp_path / "csv" / "version_1" / "metrics.csv")  # the resumed run
    assert got == {k: v for k, v in want.items() if k[0] >= BATCHES}
    # and the TensorBoard scalars are the log's values at the log's steps
    steps, values, weights = log_series(tmp_path)["mse"]
    assert tensorboard_scalars(tmp_path / "tb")["loss/fit/mse/weighted"] == [
        (s, as_float32(v * w)) for s, v, w in zip(steps, values, weights, strict=True)
    ]


def test_checkpoint_without_manager_state_is_refused(tmp_path: Path) -> None:
    callback = LossManagerCallback(LossManager(enable_logging=False))
    with pytest.raises(KeyError, match=r"checkpoint expected the key 'nectarloss'"):
        callback.on_load_checkpoint(None, None, {"state_dict": {}})  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"LossManagerCallback: `lm` expected a LossManager"):
        LossManagerCallback("lm")  # type: ignore[arg-type]
    callback = LossManagerCallback(lambda module: "not a manager")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"expected its function to return a LossManager"):
        callback.manager(None)  # type: ignore[arg-type]

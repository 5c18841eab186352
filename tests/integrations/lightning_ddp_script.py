"""Lightning DDP on CPU: 2 processes (gloo). argv: out_dir.

The manager is built with the module, before Lightning starts the process group (and in
rank 1 before it is told its rank), as users write it; rank 0 alone takes the log.
"""

import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from nectarloss import LossManager
from nectarloss.integrations.lightning import LossManagerCallback
from nectarloss.sinks import CSVSink


class Model(pl.LightningModule):
    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out
        torch.manual_seed(0)
        self.net = nn.Linear(4, 1)
        self.lm = LossManager(out / "run", sinks=[CSVSink(out / "sink.csv")])
        self.lm.register_loss_fn("mse", nn.MSELoss())

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        return self.lm.compute_loss_xy("mse", self.net(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> Any:
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
        data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
        return torch.utils.data.DataLoader(data, batch_size=4)


def main(out: Path) -> None:
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        logger=CSVLogger(out / "csv"),
        callbacks=[LossManagerCallback(lambda module: module.lm)],
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        enable_checkpointing=False,
    )
    trainer.fit(Model(out))
    print(f"rank {trainer.global_rank} done", flush=True)
    if torch.distributed.is_initialized():  # Lightning leaves it up; gloo may abort at exit
        torch.distributed.destroy_process_group()


if __name__ == "__main__":  # pytest --doctest-modules imports this file: run nothing then
    main(Path(sys.argv[1]))

"""``LossManagerCallback``: a :class:`~nectarloss.LossManager` inside a Lightning ``Trainer``.

Flushes at the end of each training epoch and of training, forwards every flushed
value to ``trainer.loggers`` at its step, and keeps the manager's state in Lightning
checkpoints, so ``trainer.fit(..., ckpt_path=...)`` resumes the log bit for bit.
Needs ``lightning`` (``pip install 'nectarloss[lightning]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nectarloss.errors import MissingDependencyError
from nectarloss.manager import LossManager
from nectarloss.sinks.base import FlushedChunk, Sink, by_step

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError as exc:
    raise MissingDependencyError(
        "LossManagerCallback needs the lightning package: pip install 'nectarloss[lightning]'"
    ) from exc

__all__ = ["CHECKPOINT_KEY", "LossManagerCallback"]

#: The checkpoint key the manager's state is stored under by default.
CHECKPOINT_KEY = "nectarloss"


class _TrainerLoggers(Sink):
    """Forwards each flush to the current trainer's loggers, one call per step."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None

    @property
    def name(self) -> str:
        return "LossManagerCallback (trainer.loggers)"

    def write(self, chunks: Sequence[FlushedChunk]) -> None:
        loggers = [] if self.trainer is None else list(self.trainer.loggers)
        if not loggers:
            return
        for step, metrics in by_step(chunks).items():
            for logger in loggers:
                logger.log_metrics(metrics, step=step)
        for logger in loggers:
            logger.save()


class LossManagerCallback(Callback):
    """Runs a loss manager's flushes, logging and checkpointing inside a ``Trainer``.

    * **Flushes** (:meth:`LossManager.update_loss_log`) at the end of every training
      epoch and at the end of training (``on_train_end``, before Lightning finalizes
      its loggers). Under DDP each flush is the manager's collective; every rank
      reaches these hooks together.
    * **Forwards** every flushed value to each of ``trainer.loggers`` with
      ``log_metrics(metrics, step)``, under :func:`~nectarloss.sinks.scalar_names`
      (``loss/<tag>/<name>/raw``, ``.../weighted``, ``weight/<tag>/<name>``), at the
      loss's own step number: the number of calls of that loss before it. Lightning
      logs a batch's ``self.log`` values at the number of batches before it, so when
      each loss is called once per training batch (one or several optimizers, no
      gradient accumulation), both land on the same step. A loss called more or less
      often (twice per batch, in validation too, under ``accumulate_grad_batches``)
      keeps its own numbering, as in the JSONL log. Only the process that writes the
      log forwards (rank 0 under DDP), through the manager's sinks, so a logger that
      raises is reported once and no longer fed. The forwarding sink is added at
      ``on_train_start`` and removed at ``teardown``, so flushes after ``fit`` leave
      the finalized loggers alone.
    * **Checkpoints**: ``on_save_checkpoint`` stores :meth:`LossManager.state_dict`
      under ``checkpoint[checkpoint_key]``; ``on_load_checkpoint`` restores it. With a
      manager built on the same directory with ``resume=True``,
      ``trainer.fit(model, ckpt_path=...)`` cuts the log back to the checkpoint and
      continues it as the uninterrupted run would have.
    * Installs no signal handler: Lightning owns the process.

    Args:
        lm: The manager, or a function of the ``LightningModule`` returning it, called
            when the manager is first needed (after ``LightningModule.setup``). Use
            the function form under DDP when the manager is built in ``setup``, after
            the process group exists.
        checkpoint_key: The checkpoint key.
        log_to_loggers: Forward flushed values to ``trainer.loggers``.

    Raises:
        TypeError: ``lm`` is neither a ``LossManager`` nor callable, or ``checkpoint_key`` is
            not a str.
    """

    def __init__(
        self,
        lm: LossManager | Callable[[LightningModule], LossManager],
        checkpoint_key: str = CHECKPOINT_KEY,
        log_to_loggers: bool = True,
    ) -> None:
        if not isinstance(lm, LossManager) and not callable(lm):
            raise TypeError(
                "LossManagerCallback: `lm` expected a LossManager or a function of the "
                f"LightningModule returning one, got {type(lm).__name__}."
            )
        if not isinstance(checkpoint_key, str) or not checkpoint_key:
            raise TypeError(
                "LossManagerCallback: `checkpoint_key` expected a non-empty str, "
                f"got {checkpoint_key!r}."
            )
        self._lm = lm
        self.checkpoint_key = checkpoint_key
        self.log_to_loggers = bool(log_to_loggers)
        self._loggers = _TrainerLoggers()

    def manager(self, pl_module: LightningModule) -> LossManager:
        """The manager (resolving the function form once, with ``pl_module``)."""
        if not isinstance(self._lm, LossManager):
            lm = self._lm(pl_module)
            if not isinstance(lm, LossManager):
                raise TypeError(
                    "LossManagerCallback: `lm` expected its function to return a LossManager, "
                    f"got {type(lm).__name__}."
                )
            self._lm = lm
        return self._lm

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Point the logger forwarding at this trainer (added to the manager once)."""
        lm = self.manager(pl_module)
        self._loggers.trainer = trainer
        if self.log_to_loggers and lm.enable_logging and self._loggers not in lm.sinks:
            lm.add_sink(self._loggers)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Flush the epoch's values (to the log, the sinks and the loggers)."""
        self.manager(pl_module).update_loss_log()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Flush what is left, before Lightning finalizes its loggers."""
        self.manager(pl_module).update_loss_log()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """After ``fit``: stop forwarding to the trainer's loggers (they are finalized)."""
        lm = self._lm
        if isinstance(lm, LossManager) and self._loggers in lm.sinks:
            lm.remove_sink(self._loggers)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Store the manager's state (plain values and tensors) in the checkpoint."""
        checkpoint[self.checkpoint_key] = self.manager(pl_module).state_dict()

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Restore the manager's state; a resumed log is cut back to the checkpoint.

        Raises:
            KeyError: The checkpoint holds no manager state under ``checkpoint_key``.
        """
        if self.checkpoint_key not in checkpoint:
            raise KeyError(
                f"LossManagerCallback: the checkpoint expected the key {self.checkpoint_key!r} "
                "(written by this callback's on_save_checkpoint), got keys "
                f"{sorted(checkpoint)}."
            )
        self.manager(pl_module).load_state_dict(checkpoint[self.checkpoint_key])

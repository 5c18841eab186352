"""``WandbSink``: each flush's values logged to a Weights & Biases run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nectarloss.sinks.base import FlushedChunk, Sink, by_step, import_optional

__all__ = ["WANDB_STEP_METRIC", "WandbSink"]

#: The step metric every nectarloss series is plotted against in W&B.
WANDB_STEP_METRIC = "nectarloss/step"


class WandbSink(Sink):
    """Logs raw values, weighted values and weights to a W&B run.

    Names are :func:`~nectarloss.sinks.scalar_names`'. Each is plotted against its own
    step metric, ``nectarloss/step`` (``define_metric``), logged with the values, so
    the loss's true step numbers are the x axis whatever else logs to the run (W&B's
    own ``_step`` must increase, which losses flushed at different steps, or
    Lightning's ``WandbLogger`` sharing the run, would break). One ``run.log`` per step
    of a flush. NaN and Inf are logged as they are.

    Args:
        run: The run to log to (``wandb.init(...)``'s result); ``None`` uses the run
            active at the first flush (``wandb.run``).

    Raises:
        MissingDependencyError: wandb is not installed.

    The first flush raises ``RuntimeError`` (and the sink is disabled) when ``run`` is
    ``None`` and no run is active.
    """

    def __init__(self, run: Any = None) -> None:
        self._wandb = import_optional("wandb", "WandbSink", "wandb")
        self.run = run
        self._defined: set[str] = set()

    def write(self, chunks: Sequence[FlushedChunk]) -> None:
        """Log every step of ``chunks`` (ascending) with its step metric."""
        run = self.run if self.run is not None else self._wandb.run
        if run is None:
            raise RuntimeError(
                "WandbSink: `run` expected a W&B run or an active one (wandb.init() before "
                "the first flush), got None."
            )
        if WANDB_STEP_METRIC not in self._defined:
            run.define_metric(WANDB_STEP_METRIC)
            self._defined.add(WANDB_STEP_METRIC)
        for step, metrics in by_step(chunks).items():
            for name in metrics.keys() - self._defined:
                run.define_metric(name, step_metric=WANDB_STEP_METRIC)
                self._defined.add(name)
            run.log({WANDB_STEP_METRIC: step, **metrics})

    def __repr__(self) -> str:
        return f"WandbSink(run={self.run!r})"

"""Sinks: where each flush's values go besides the JSONL log.

A :class:`Sink` gets every flush's values, as :class:`FlushedChunk` objects, after the
log holds them: ``LossManager(..., sinks=[TensorBoardSink("runs/tb")])`` or
``lm.add_sink(...)``. Shipped: :class:`TensorBoardSink` (``nectarloss[tensorboard]``),
:class:`CSVSink`, :class:`WandbSink` (``nectarloss[wandb]``) and :class:`MLflowSink`
(``nectarloss[mlflow]``); a missing package raises
:class:`~nectarloss.errors.MissingDependencyError` with the install command.
:func:`replay_log` feeds a finished log to sinks (``nectarloss export --tensorboard``). Nothing here
imports the manager, and the optional packages are imported when a sink is built.
"""

from nectarloss.errors import MissingDependencyError, SinkWarning
from nectarloss.sinks.base import FlushedChunk, Sink, by_step, import_optional, scalar_names
from nectarloss.sinks.csv import CSV_COLUMNS, CSVSink
from nectarloss.sinks.mlflow import MLflowSink
from nectarloss.sinks.replay import replay_log
from nectarloss.sinks.tensorboard import TensorBoardSink
from nectarloss.sinks.wandb import WANDB_STEP_METRIC, WandbSink

__all__ = [
    "CSV_COLUMNS",
    "WANDB_STEP_METRIC",
    "CSVSink",
    "FlushedChunk",
    "MLflowSink",
    "Sink",
    "MissingDependencyError",
    "SinkWarning",
    "TensorBoardSink",
    "WandbSink",
    "by_step",
    "import_optional",
    "replay_log",
    "scalar_names",
]

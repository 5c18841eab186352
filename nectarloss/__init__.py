"""nectarloss: a loss manager for PyTorch.

Register named, weighted, scheduled loss terms, run them without host syncs, query
them by name or tag, and log every value to a JSON Lines file (and, through sinks,
to TensorBoard, a CSV file, W&B or MLflow).
"""

from nectarloss.balancing import DWA, AdaptiveWeight, Balancer, GradNorm, UncertaintyWeighting
from nectarloss.errors import (
    ExistingLogError,
    LogInUseError,
    LogWriteError,
    MissingDependencyError,
    NonFiniteLossError,
    NonFiniteLossWarning,
    RankMismatchError,
    UnknownLossError,
)
from nectarloss.log import LossLog, LossSeries, export_nectargan, read_log, summarize_log
from nectarloss.losses import register_loss
from nectarloss.manager import LossManager
from nectarloss.modifiers import (
    P2,
    DebiasedEstimation,
    LossContext,
    MinSNR,
    Modifier,
    Sangoi,
    SuperLoss,
)
from nectarloss.noise import NoiseSchedule
from nectarloss.records import LMHistory, LMLoss
from nectarloss.schedules import Schedule
from nectarloss.shutdown import flush_on_sigterm
from nectarloss.sinks import (
    CSVSink,
    FlushedChunk,
    MLflowSink,
    Sink,
    SinkWarning,
    TensorBoardSink,
    WandbSink,
)
from nectarloss.specs import SpecError, dump_spec, load_spec
from nectarloss.testing import SyncCounter

__version__ = "0.1.0"

__all__ = [
    "AdaptiveWeight",
    "Balancer",
    "CSVSink",
    "DWA",
    "DebiasedEstimation",
    "ExistingLogError",
    "FlushedChunk",
    "GradNorm",
    "LMHistory",
    "LMLoss",
    "LogInUseError",
    "LogWriteError",
    "LossContext",
    "LossLog",
    "LossManager",
    "LossSeries",
    "MLflowSink",
    "MinSNR",
    "MissingDependencyError",
    "Modifier",
    "NoiseSchedule",
    "NonFiniteLossError",
    "NonFiniteLossWarning",
    "P2",
    "RankMismatchError",
    "Sangoi",
    "Schedule",
    "Sink",
    "SinkWarning",
    "SpecError",
    "SuperLoss",
    "SyncCounter",
    "TensorBoardSink",
    "UncertaintyWeighting",
    "UnknownLossError",
    "WandbSink",
    "__version__",
    "dump_spec",
    "export_nectargan",
    "flush_on_sigterm",
    "load_spec",
    "read_log",
    "register_loss",
    "summarize_log",
]

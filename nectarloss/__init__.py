"""nectarloss: a loss manager for PyTorch.

Register named, weighted, scheduled loss terms, run them without host syncs, query
them by name or tag, and log every value to a JSON Lines file.
"""

from nectarloss.log import LossLog, LossSeries, export_nectargan, read_log
from nectarloss.manager import LogWriteError, LossManager, UnknownLossError
from nectarloss.records import LMHistory, LMLoss
from nectarloss.schedules import Schedule

__version__ = "0.1.0"

__all__ = [
    "LMHistory",
    "LMLoss",
    "LogWriteError",
    "LossLog",
    "LossManager",
    "LossSeries",
    "Schedule",
    "UnknownLossError",
    "__version__",
    "export_nectargan",
    "read_log",
]

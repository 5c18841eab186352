"""The JSON Lines loss log: writer, reader and NectarGAN export.

``<experiment_dir>/loss_log.jsonl`` holds one JSON object per line, written with orjson
and only ever appended to:

* line 1, ``{"kind": "header", "format": "nectarloss.loss_log", "version": 1,
  "created": ISO time, "losses": {name: {"tags": [...], "weight": w, "schedule": ...}}}``
* ``{"kind": "register", "losses": {...}}`` for losses registered after the header,
* ``{"kind": "chunk", "loss": name, "steps": [...], "values": [...], "weights": [...]}``,
  one per loss per flush: raw (unweighted) values and the weight applied at each step.

:func:`read_log` joins the chunks of every loss in order and ignores a truncated last
line (a crash in the middle of a write); :class:`LogFollower` reads the lines a running
run appends, a poll at a time.
"""

from nectarloss.errors import LogFormatError
from nectarloss.log.export import export_nectargan, write_nectargan_json
from nectarloss.log.format import (
    LOG_FILENAME,
    LOG_FORMAT,
    LOG_VERSION,
    encode_nonfinite,
    header_line,
    resolve_log_path,
)
from nectarloss.log.reader import (
    LogFollower,
    LogUpdate,
    LossLog,
    LossSeries,
    read_log,
    summarize_log,
)
from nectarloss.log.writer import LossLogWriter

__all__ = [
    "LOG_FILENAME",
    "LOG_FORMAT",
    "LOG_VERSION",
    "LogFollower",
    "LogFormatError",
    "LogUpdate",
    "LossLog",
    "LossLogWriter",
    "LossSeries",
    "encode_nonfinite",
    "export_nectargan",
    "header_line",
    "read_log",
    "resolve_log_path",
    "summarize_log",
    "write_nectargan_json",
]

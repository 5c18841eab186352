"""What a sink is: :class:`Sink`, the :class:`FlushedChunk` it is fed, and scalar names.

A flush copies each loss's buffered values to the host once, appends them to the JSONL
log, and only then hands the same host values to every sink as :class:`FlushedChunk`
objects (one per loss that had values). Nothing here imports the manager.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType

from nectarloss.errors import MissingDependencyError

__all__ = [
    "FlushedChunk",
    "Sink",
    "MissingDependencyError",
    "by_step",
    "import_optional",
    "scalar_names",
]


@dataclass(frozen=True)
class FlushedChunk:
    """One loss's values from one flush, as written to the log.

    Attributes:
        name: The loss.
        steps: The loss's step numbers (its own call count, from 0).
        values: Raw (unweighted, post-modifier) means, one per step; NaN/Inf kept.
        weights: The weight applied at each step.
        tags: The loss's tags, in registration order.

    Example:
        >>> chunk = FlushedChunk("G_L1", range(3, 5), (0.5, 0.25), (2.0, 2.0), ("G",))
        >>> chunk.weighted, list(chunk.rows())
        ((1.0, 0.5), [(3, 0.5, 2.0, 1.0), (4, 0.25, 2.0, 0.5)])
    """

    name: str
    steps: range
    values: tuple[float, ...]
    weights: tuple[float, ...]
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not len(self.steps) == len(self.values) == len(self.weights):
            raise ValueError(
                f"FlushedChunk: `values` and `weights` expected {len(self.steps)} items "
                f"(one per step), got {len(self.values)} and {len(self.weights)}."
            )

    @property
    def weighted(self) -> tuple[float, ...]:
        """``values[i] * weights[i]`` in float64, as :func:`nectarloss.read_log` computes it."""
        return tuple(v * w for v, w in zip(self.values, self.weights, strict=True))

    def rows(self) -> Iterator[tuple[int, float, float, float]]:
        """``(step, raw, weight, weighted)`` per step, in order."""
        for step, value, weight in zip(self.steps, self.values, self.weights, strict=True):
            yield step, value, weight, value * weight


def scalar_names(chunk: FlushedChunk) -> tuple[str, str, str]:
    """The metric names of a loss: raw, weighted, weight.

    ``loss/<tag>/<name>/raw``, ``loss/<tag>/<name>/weighted`` and
    ``weight/<tag>/<name>``, where ``<tag>`` is the loss's first tag; an untagged loss
    drops the ``<tag>/`` part. Every sink that writes scalars, and the Lightning
    callback, use these names, so one run reads the same everywhere.

    Example:
        >>> scalar_names(FlushedChunk("G_L1", range(0), (), (), ("G", "pixel")))
        ('loss/G/G_L1/raw', 'loss/G/G_L1/weighted', 'weight/G/G_L1')
        >>> scalar_names(FlushedChunk("mse", range(0), (), ()))
        ('loss/mse/raw', 'loss/mse/weighted', 'weight/mse')
    """
    path = f"{chunk.tags[0]}/{chunk.name}" if chunk.tags else chunk.name
    return f"loss/{path}/raw", f"loss/{path}/weighted", f"weight/{path}"


def by_step(chunks: Sequence[FlushedChunk]) -> dict[int, dict[str, float]]:
    """Every value of ``chunks`` keyed by step, then by :func:`scalar_names` name.

    Steps come out ascending (loggers that need increasing steps take them in order).

    Example:
        >>> by_step([FlushedChunk("a", range(1, 2), (0.5,), (2.0,))])
        {1: {'loss/a/raw': 0.5, 'loss/a/weighted': 1.0, 'weight/a': 2.0}}
    """
    out: dict[int, dict[str, float]] = {}
    for chunk in chunks:
        raw_name, weighted_name, weight_name = scalar_names(chunk)
        for step, raw, weight, weighted in chunk.rows():
            metrics = out.setdefault(step, {})
            metrics[raw_name] = raw
            metrics[weighted_name] = weighted
            metrics[weight_name] = weight
    return dict(sorted(out.items()))


class Sink(ABC):
    """Receives every flush's values after they are in the JSONL log.

    Subclass it and implement :meth:`write`; :meth:`close` is optional. A manager calls
    :meth:`write` on the process that writes the log (rank 0 under DDP), once per flush
    that wrote values, with the manager's lock held: keep it short, and create
    anything tied to the process (a writer, a file, a run) at the first ``write``,
    not in ``__init__`` (a Lightning module is built before the process group).

    A sink that raises is reported once with a
    :class:`~nectarloss.errors.SinkWarning` and disabled (closed and removed from the
    manager); the log already holds the values, and ``nectarloss export LOG
    --tensorboard DIR`` / ``--csv FILE`` rebuilds what a sink missed.

    Attributes:
        name: How reports name the sink (the class name unless set).
    """

    #: Whether the sink can forget what it holds from a step on (event files, a file):
    #: a manager then calls :meth:`rewind` before the sink's first write, with the
    #: earliest step any loss goes on from, and that write also holds the log's values
    #: from that step up to where each loss goes on (one loss may run ahead of another),
    #: so a run resumed into the same place shows each step once, as its log does. A sink
    #: that cannot forget (a W&B or MLflow run, a Lightning logger) just gets new values.
    rewinds: bool = False

    @property
    def name(self) -> str:
        """How reports name the sink: its class name."""
        return type(self).__name__

    def rewind(self, step: int) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Forget every value at ``step`` and later.

        Called before the first write, and again when ``load_state_dict`` cuts the log
        back to a checkpoint.
        """

    @abstractmethod
    def write(self, chunks: Sequence[FlushedChunk]) -> None:
        """Take one flush's values: one chunk per loss that had values, steps ascending."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Flush and release what the sink holds (called by ``LossManager.close``)."""


def import_optional(module: str, owner: str, extra: str, package: str | None = None) -> ModuleType:
    """Import an optional module for ``owner``, or raise a one-line install hint.

    Args:
        module: The module to import (``"torch.utils.tensorboard"``).
        owner: Who needs it, for the message.
        extra: The nectarloss extra that installs it.
        package: The package named in the message (default: ``module``'s top level).

    Raises:
        MissingDependencyError: ``module`` cannot be imported.

    Example:
        >>> try:
        ...     import_optional("no_such_module_x", "MySink", "tensorboard")
        ... except ImportError as exc:
        ...     print(exc)
        MySink needs the no_such_module_x package: pip install 'nectarloss[tensorboard]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{owner} needs the {package or module.split('.')[0]} package: "
            f"pip install 'nectarloss[{extra}]'"
        ) from exc

"""``MLflowSink``: each flush's values logged as MLflow metrics at their true steps."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from nectarloss.sinks.base import FlushedChunk, Sink, import_optional, scalar_names

__all__ = ["MLflowSink"]

#: Metrics per ``log_batch`` request (MLflow accepts at most 1000).
_BATCH = 1000


class MLflowSink(Sink):
    """Logs raw values, weighted values and weights as MLflow metrics.

    Names are :func:`~nectarloss.sinks.scalar_names`'; each value is logged at the
    loss's step number with ``MlflowClient.log_batch`` (1,000 metrics a request), all
    of one flush with the flush's time stamp. NaN and Inf are logged as they are.

    Args:
        run_id: The run to log to; ``None`` uses the active run at the first flush
            (``mlflow.active_run()``), starting one if none is active, as
            ``mlflow.log_metric`` does.
        tracking_uri: The tracking server or store (``"file:///tmp/mlruns"``); ``None``
            uses MLflow's current one.

    Raises:
        MissingDependencyError: mlflow (or mlflow-skinny) is not installed.
        TypeError: ``run_id`` or ``tracking_uri`` is not a str.
    """

    def __init__(self, run_id: str | None = None, tracking_uri: str | None = None) -> None:
        for argument, value in (("run_id", run_id), ("tracking_uri", tracking_uri)):
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"MLflowSink: `{argument}` expected a str or None, got {type(value).__name__}."
                )
        self._mlflow = import_optional("mlflow", "MLflowSink", "mlflow")
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self._client: Any = None

    def write(self, chunks: Sequence[FlushedChunk]) -> None:
        """Log every value of ``chunks`` in batches of 1,000 metrics."""
        mlflow = self._mlflow
        if self._client is None:
            self._client = mlflow.MlflowClient(self.tracking_uri)
        if self.run_id is None:
            active = mlflow.active_run() or mlflow.start_run()
            self.run_id = active.info.run_id
        metric = mlflow.entities.Metric
        stamp = int(time.time() * 1000)
        batch: list[Any] = []
        for chunk in chunks:
            raw_name, weighted_name, weight_name = scalar_names(chunk)
            for step, raw, weight, weighted in chunk.rows():
                batch.append(metric(raw_name, raw, stamp, step))
                batch.append(metric(weighted_name, weighted, stamp, step))
                batch.append(metric(weight_name, weight, stamp, step))
                if len(batch) >= _BATCH - 2:
                    self._client.log_batch(self.run_id, metrics=batch)
                    batch = []
        if batch:
            self._client.log_batch(self.run_id, metrics=batch)

    def __repr__(self) -> str:
        return f"MLflowSink(run_id={self.run_id!r})"

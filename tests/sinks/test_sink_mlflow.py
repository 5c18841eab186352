"""MLflowSink against a local file store, read back with MlflowClient.get_metric_history."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sink_helpers import log_rows, run_two_losses

from nectarloss.sinks import FlushedChunk, MLflowSink

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps it opt-in
    return (tmp_path / "mlruns").as_uri()


def history(client: object, run_id: str, key: str) -> list[tuple[int, float]]:
    metrics = client.get_metric_history(run_id, key)  # type: ignore[attr-defined]
    return sorted((m.step, m.value) for m in metrics)


def test_metrics_hold_the_log_at_its_steps(tmp_path: Path, store: str) -> None:
    client = mlflow.MlflowClient(store)
    run_id = client.create_run(client.create_experiment("nl")).info.run_id
    run_two_losses(tmp_path / "run", [MLflowSink(run_id, tracking_uri=store)], steps=6)
    rows = log_rows(tmp_path / "run" / "loss_log.jsonl")
    for name, prefix in (("G_L1", "G/G_L1"), ("mse", "mse")):
        assert history(client, run_id, f"loss/{prefix}/raw") == [
            (s, r) for s, r, _, _ in rows[name]
        ]
        assert history(client, run_id, f"loss/{prefix}/weighted") == [
            (s, x) for s, _, _, x in rows[name]
        ]
        assert history(client, run_id, f"weight/{prefix}") == [(s, w) for s, _, w, _ in rows[name]]


def test_batches_of_a_long_flush_and_nan(tmp_path: Path, store: str) -> None:
    client = mlflow.MlflowClient(store)
    run_id = client.create_run(client.create_experiment("nl")).info.run_id
    values = (math.nan,) + tuple(float(i) for i in range(1, 700))
    sink = MLflowSink(run_id, tracking_uri=store)
    sink.write([FlushedChunk("a", range(700), values, (1.0,) * 700)])  # 2,100 metrics
    got = history(client, run_id, "loss/a/raw")
    assert (
        len(got) == 700
        and math.isnan(got[0][1])
        and got[1:] == [(i, float(i)) for i in range(1, 700)]
    )


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"MLflowSink: `run_id` expected a str or None, got int"):
        MLflowSink(run_id=3)  # type: ignore[arg-type]

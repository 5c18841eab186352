"""The README's "Using nectarloss with ..." snippets run as they are.

Each fenced ``python`` block after a ``<!-- readme-snippet: NAME -->`` line is run in a
fresh directory (W&B offline, MLflow on a local file store: no network), then what it
wrote is checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nectarloss.log import read_log

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPET = re.compile(r"<!-- readme-snippet: (\w+) -->\n```python\n(.*?)```", re.DOTALL)
SNIPPETS = dict(SNIPPET.findall(README.read_text()))
#: The package each snippet needs, and the experiment directory it writes.
NEEDS = {
    "tensorboard": ("tensorboard", "runs/tb_exp"),
    "wandb": ("wandb", "runs/wandb_exp"),
    "mlflow": ("mlflow", "runs/mlflow_exp"),
    "lightning": ("lightning", "runs/pl_exp"),
}


def test_every_integration_has_a_snippet() -> None:
    assert sorted(SNIPPETS) == sorted(NEEDS)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_snippet_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package, run_dir = NEEDS[name]
    pytest.importorskip(package)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    exec(compile(SNIPPETS[name], f"README.md:{name}", "exec"), {"__name__": "__readme__"})
    log = read_log(tmp_path / run_dir / "loss_log.jsonl")
    assert all(len(series.steps) > 0 for series in log.losses.values())
    if name == "tensorboard":
        assert list((tmp_path / run_dir / "tensorboard").glob("events.out.tfevents.*"))
    if name == "mlflow":
        import mlflow

        (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss/fit/mse/raw")
        assert [m.step for m in history] == list(log.losses["mse"].steps)
    if name == "lightning":
        (metrics,) = (tmp_path / run_dir).rglob("metrics.csv")
        assert "loss/fit/mse/weighted" in metrics.read_text().splitlines()[0]

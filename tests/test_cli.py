import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nectarloss import LossManager, __version__
from nectarloss.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"nectarloss {__version__}"


def test_help_without_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: nectarloss" in capsys.readouterr().out


def test_console_script_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nectarloss.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,  # a hard stop for a hang, not a timing check
    )
    assert "nectarloss" in out.stdout


def test_python_dash_m_nectarloss_runs_the_cli(tmp_path: Path) -> None:
    """``python -m nectarloss`` is the console script: same output, same exit codes."""
    missing = tmp_path / "missing.jsonl"
    out = subprocess.run(
        [sys.executable, "-m", "nectarloss", "show", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,  # a hard stop for a hang, not a timing check
    )
    assert out.returncode == 2
    assert out.stderr.startswith("nectarloss: error: ") and "missing.jsonl" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    version = subprocess.run(
        [sys.executable, "-m", "nectarloss", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert version.stdout.strip() == f"nectarloss {__version__}"


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    assert main(["schema"]) == 0
    schema = orjson.loads(capsys.readouterr().out)
    assert "losses" in schema["properties"]


def test_validate_ok_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = Path(__file__).parent.parent / "specs" / "pix2pix_basic.json"
    assert main(["validate", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('{"losses": {"G_L1": {"loss": "L1Loss", "weight": -1}}}')
    assert main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("nectarloss: error: ") and "bad.json" in err and "losses.G_L1.weight" in err
    )
    assert "Traceback" not in err


def test_show_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import orjson
    import torch
    from torch import nn

    from nectarloss import LossManager

    lm = LossManager(tmp_path)
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=2.0, tags=["G"])
    for v in (1.0, 2.0):
        lm.compute_loss_xy("G_L1", torch.full((2,), v), torch.zeros(2))
    lm.update_loss_log()
    log = str(tmp_path / "loss_log.jsonl")
    assert main(["show", log]) == 0
    out = capsys.readouterr().out
    assert "G_L1" in out and "nectarloss.loss_log v1" in out and "4.0000" in out
    assert main(["export", log, "-o", str(tmp_path / "nl.json")]) == 0
    data = orjson.loads((tmp_path / "nl.json").read_bytes())
    assert data["LOSSMANAGER_LOG"]["loss_functions"]["G_L1"]["loss"] == [2.0, 4.0]


def test_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.jsonl" in err
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n')
    assert main(["show", str(tmp_path / "x.jsonl")]) == 2
    assert "header" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["plot", "log", "--smooth", "0"])
    assert info.value.code == 2


def test_show_plot_and_export_take_an_experiment_directory(tmp_path: Path) -> None:
    with LossManager(tmp_path) as lm:
        lm.register_loss_fn("a", nn.L1Loss())
        lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
    assert main(["show", str(tmp_path)]) == 0
    out = tmp_path / "exported.json"
    assert main(["export", str(tmp_path), "-o", str(out)]) == 0
    assert "LOSSMANAGER_LOG" in out.read_text()
    pytest.importorskip("matplotlib")
    graph = tmp_path / "graph.png"
    assert main(["plot", str(tmp_path), "-o", str(graph)]) == 0
    assert graph.stat().st_size > 0

import math
import sys
from pathlib import Path

import orjson
import pytest
import torch
from torch import nn

from nectarloss import LossManager, Schedule
from nectarloss.log import LossLog, header_line, read_log
from nectarloss.plot import UNTAGGED, group_losses, moving_average, plot_log, summarize_log

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAN = math.nan

#: Raw values fed to the losses below, one per step (hand-checked statistics follow).
G_L1_VALUES = [0.5, 0.25, NAN, 0.125]  # weight 2.0
D_VALUES = [1.0, 3.0, 2.0]  # weight 1.0
# summarize_log (weighted): G_L1 -> 1.0, 0.5, nan, 0.25; NaN skipped in mean/min/max
G_L1_STATS = {"last": 0.25, "mean": 1.75 / 3, "min": 0.25, "max": 1.0, "weight": 2.0}
D_STATS = {"last": 2.0, "mean": 2.0, "min": 1.0, "max": 3.0, "weight": 1.0}


class Constant(nn.Module):
    """A 'loss' returning its first input's mean: the value fed in is the value logged."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.mean()


def write_log(directory: Path) -> Path:
    lm = LossManager(directory, nonfinite="ignore")
    lm.register_loss_fn("G_L1", Constant(), loss_weight=2.0, tags=["G", "pixel"])
    lm.register_loss_fn("D_real", Constant(), tags=["D"])
    lm.register_loss_fn(
        "aux",
        Constant(),
        schedule=Schedule(
            schedule="linear", start_epoch=0, end_epoch=2, initial_value=1.0, target_value=0.0
        ),
    )
    lm.register_loss_fn("never_run", Constant(), tags=["G"])
    y = torch.zeros(1)
    for step, value in enumerate(G_L1_VALUES):
        lm.compute_loss_xy("G_L1", torch.tensor([value]), y, epoch=step)
    for value in D_VALUES:
        lm.compute_loss_xy("D_real", torch.tensor([value]), y)
    for epoch in range(3):
        lm.compute_loss_xy("aux", torch.tensor([-0.5 + epoch]), y, epoch=epoch)
    lm.close()
    assert lm.log_path is not None
    return lm.log_path


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(tmp_path_factory.mktemp("plot"))


def test_summarize_log_matches_hand_computation(log_path: Path) -> None:
    stats = summarize_log(log_path)
    assert set(stats) == {"G_L1", "D_real", "aux"}  # never_run logged nothing
    for name, expected in (("G_L1", G_L1_STATS), ("D_real", D_STATS)):
        for key, value in expected.items():
            assert stats[name][key] == pytest.approx(value), (name, key)
    assert stats["G_L1"]["nonfinite"] == 1
    assert stats["aux"]["weight"] == 0.0  # the schedule's last value


def test_summarize_log_last_value_may_be_nan(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, nonfinite="ignore")
    lm.register_loss_fn("x", Constant())
    for value in (1.0, NAN):
        lm.compute_loss_xy("x", torch.tensor([value]), torch.zeros(1))
    lm.close()
    stats = summarize_log(tmp_path / "loss_log.jsonl")["x"]
    assert math.isnan(stats["last"])
    assert stats["mean"] == stats["min"] == stats["max"] == 1.0


def test_summarize_log_raw_values(log_path: Path) -> None:
    stats = summarize_log(read_log(log_path), weighted=False)
    assert stats["G_L1"]["max"] == pytest.approx(0.5)
    assert stats["G_L1"]["weight"] == 2.0


def test_moving_average_skips_nan() -> None:
    assert moving_average([1.0, 3.0, NAN, 5.0], 2) == [1.0, 2.0, 3.0, 5.0]
    assert moving_average([1.0, 2.0, 3.0], 1) == [1.0, 2.0, 3.0]
    out = moving_average([NAN, NAN, 4.0], 2)
    assert math.isnan(out[0]) and math.isnan(out[1]) and out[2] == 4.0
    assert moving_average([1.0, 2.0, 3.0, 4.0], 3) == [1.0, 1.5, 2.0, 3.0]
    with pytest.raises(ValueError, match="`smooth`"):
        moving_average([1.0], 0)
    with pytest.raises(TypeError, match="`smooth`"):
        moving_average([1.0], 1.5)  # type: ignore[arg-type]


def test_group_losses(log_path: Path) -> None:
    log = read_log(log_path)
    assert group_losses(log, "tag") == {
        "G": ["G_L1"],
        "pixel": ["G_L1"],
        "D": ["D_real"],
        UNTAGGED: ["aux"],
    }
    assert group_losses(log, "loss") == {"G_L1": ["G_L1"], "D_real": ["D_real"], "aux": ["aux"]}
    with pytest.raises(ValueError, match="`group_by`"):
        group_losses(log, "tags")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("group_by", "log_scale", "smooth"),
    [("tag", False, 1), ("loss", False, 1), ("tag", True, 3), ("loss", True, 2)],
)
def test_plot_log_writes_png(
    log_path: Path, tmp_path: Path, group_by: str, log_scale: bool, smooth: int
) -> None:
    out = plot_log(
        log_path,
        tmp_path / "deep" / "graph.png",
        group_by=group_by,  # type: ignore[arg-type]
        log_scale=log_scale,
        smooth=smooth,
    )
    assert out == tmp_path / "deep" / "graph.png"
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert out.stat().st_size > 5_000


def test_plot_log_accepts_loss_log_and_no_weights(log_path: Path, tmp_path: Path) -> None:
    out = plot_log(read_log(log_path), tmp_path / "g.png", show_weights=False)
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_log_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "loss_log.jsonl"
    path.write_bytes(orjson.dumps(header_line({"a": {"tags": ["G"], "weight": 1.0}})) + b"\n")
    out = plot_log(path, tmp_path / "empty.png")
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_log_rejects_bad_arguments(log_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`smooth`"):
        plot_log(log_path, tmp_path / "x.png", smooth=0)
    with pytest.raises(ValueError, match="`group_by`"):
        plot_log(log_path, tmp_path / "x.png", group_by="nope")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        plot_log(tmp_path / "missing.jsonl", tmp_path / "x.png")


def test_plot_log_without_matplotlib(
    log_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"nectarloss\[plot\]"):
        plot_log(log_path, tmp_path / "x.png")


def test_plot_log_leaves_pyplot_backend_alone(log_path: Path, tmp_path: Path) -> None:
    before = sys.modules.get("matplotlib.pyplot")
    plot_log(LossLog(header={}, losses={}, info={}), tmp_path / "x.png")
    assert sys.modules.get("matplotlib.pyplot") is before

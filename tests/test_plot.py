import math
import random
import sys
from pathlib import Path

import orjson
import pytest
import torch
from torch import nn

from nectarloss import LossManager, Schedule
from nectarloss.log import LossLog, LossSeries, header_line, read_log
from nectarloss.plot import (
    UNTAGGED,
    _envelope,
    _thin,
    _weight_changes,
    group_losses,
    moving_average,
    plot_log,
    run_title,
    summarize_log,
)

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


def reference_moving_average(values: list[float], window: int) -> list[float]:
    """The definition: mean of the finite values among the last ``window``."""
    out = []
    for i in range(len(values)):
        finite = [v for v in values[max(0, i - window + 1) : i + 1] if math.isfinite(v)]
        out.append(sum(finite) / len(finite) if finite else NAN)
    return out


@pytest.mark.parametrize("window", [2, 3, 7, 50])
def test_moving_average_matches_its_definition(window: int) -> None:
    rng = random.Random(window)
    values = [rng.choice([NAN, math.inf, rng.uniform(-2, 2)]) for _ in range(40)]
    got, want = moving_average(values, window), reference_moving_average(values, window)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_envelope_keeps_extremes_in_order_and_bounds_the_points() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    values = rng.normal(size=100_003)
    values[[5, 70_000]] = [50.0, -50.0]  # spikes must survive
    values[[10, 11]] = [np.nan, np.inf]
    steps = np.arange(values.size) * 2
    xs, ys = _envelope(steps, values, max_buckets=100)
    assert xs.size <= 2 * 100 + 4 and np.all(np.diff(xs) > 0)
    assert np.isfinite(ys).all() and ys.max() == 50.0 and ys.min() == -50.0
    assert xs[0] == 0 and xs[-1] == steps[-1]
    assert np.array_equal(ys, values[xs // 2])  # points of the series, not averages
    short_x, short_y = _envelope(steps[:50], values[:50])
    assert short_x.size == 48 and not np.isin([20, 22], short_x).any()  # only NaN/Inf dropped


def test_weight_changes_and_thin() -> None:
    np = pytest.importorskip("numpy")
    steps = np.arange(10)
    xs, ws = _weight_changes(steps, np.array([1.0] * 4 + [0.5] * 6))
    assert xs.tolist() == [0, 4, 9] and ws.tolist() == [1.0, 0.5, 0.5]
    thinned = _thin(np.arange(0, 1_000_000, 3), max_points=100)
    assert thinned.size <= 100 and thinned[0] == 0 and np.all(np.diff(thinned) > 0)


def test_plot_log_of_a_long_series(tmp_path: Path) -> None:
    n = 300_000
    values = [0.5 + math.sin(i / 1000) for i in range(n)]
    values[123] = NAN
    log = LossLog(
        header={"created": "now"},
        losses={
            "a": LossSeries(range(n), values, [2.0] * (n // 2) + [1.0] * (n - n // 2)),
            "b": LossSeries(range(n), values, [1.0] * n),
        },
        info={"a": {"tags": ["G"]}, "b": {"tags": ["G"]}},
    )
    out = plot_log(log, tmp_path / "long.png", log_scale=True, smooth=100)
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_run_title() -> None:
    log = LossLog(header={"created": "2026-03-04T23:59:30+02:00"}, losses={}, info={})
    assert run_title(log, "exp1") == "exp1: losses, started 2026-03-04 21:59 UTC"
    assert run_title(log) == "loss log, started 2026-03-04 21:59 UTC"
    assert run_title(LossLog(header={"created": "yesterday"}, losses={}, info={}), "r") == (
        "r: losses, started yesterday"
    )
    assert run_title(LossLog(header={}, losses={}, info={}), "r") == "r: losses"


def test_plot_log_title_names_the_log_directory(log_path: Path, tmp_path: Path) -> None:
    svg = plot_log(log_path, tmp_path / "g.svg").read_text()  # each text is in a comment
    title = run_title(read_log(log_path), log_path.parent.name)
    assert title.startswith(f"{log_path.parent.name}: losses, started ")
    assert f"<!-- {title} -->" in svg
    svg = plot_log(read_log(log_path), tmp_path / "h.svg", run_name="mine").read_text()
    assert "<!-- mine: losses, started " in svg

"""``nectarloss.compat.nectargan`` runs NectarGAN trainer code with only its imports changed.

NectarGAN is not on the package index, so these tests port the behaviour of its calling
code (``Trainer.init_loss_manager``, ``Pix2pixTrainer``'s loss section and spec module,
``scripts/build_loss_graphs.py`` and the Toolbox review panel's reading of
``loss_log.json``) rather than import it. The reference numbers are NectarGAN's, taken
from running v0.2.3 (commit 7a34485) beside this adapter.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from nectarloss import read_log
from nectarloss.compat import nectargan
from nectarloss.compat.nectargan import (
    LMHistory,
    LMLoss,
    LossManager,
    Schedule,
    TorchScheduler,
    schedule_map,
)
from nectarloss.log import LOG_FILENAME
from nectarloss.testing import SyncCounter


# ----------------------------------------------------------------------------- fixtures
def make_config(root: Path, *, continue_train: bool = False, images: int = 5) -> Any:
    """An object with the attributes of NectarGAN's Config that its loss code reads."""
    dataroot = root / "dataset"
    (dataroot / "train").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        (dataroot / "train" / f"{i}.png").write_bytes(b"")
    return SimpleNamespace(
        common=SimpleNamespace(device="cpu"),
        dataloader=SimpleNamespace(
            dataroot=str(dataroot), load=SimpleNamespace(input_nc=3, crop_size=8)
        ),
        train=SimpleNamespace(
            loss=SimpleNamespace(lambda_gan=1.0, lambda_l1=100.0, lambda_l2=3.0, lambda_sobel=2.0),
            load=SimpleNamespace(continue_train=continue_train),
        ),
    )


def pix2pix_spec(config: Any, subspec: str = "basic") -> dict[str, LMLoss]:
    """A spec function shaped like NectarGAN's ``pix2pix_objective.pix2pix``."""
    bce = nn.BCEWithLogitsLoss()
    l1 = nn.L1Loss()
    lam = config.train.loss
    fns = {
        "G_GAN": LMLoss(name="G_GAN", function=bce, loss_weight=lam.lambda_gan, tags=["G"]),
        "G_L1": LMLoss(name="G_L1", function=l1, loss_weight=lam.lambda_l1, tags=["G"]),
        "D_real": LMLoss(name="D_real", function=bce, tags=["D"]),
        "D_fake": LMLoss(name="D_fake", function=bce, tags=["D"]),
    }
    if "extended" in subspec:
        fns["G_L2"] = LMLoss(
            name="G_L2", function=nn.MSELoss(), loss_weight=lam.lambda_l2, tags=["G"]
        )
    return fns


def scheduled_weights(schedule: Schedule, epochs: list[int], **weight_kwargs: Any) -> list[float]:
    """The weights a manager applies at ``epochs`` for a loss with ``schedule``."""
    lm = LossManager(
        SimpleNamespace(common=SimpleNamespace(device="cpu")), "", enable_logging=False
    )
    lm.register_loss_fn("w", nn.L1Loss(), schedule=schedule)
    out = []
    for epoch in epochs:
        x = torch.ones(1)
        lm.compute_loss_xy("w", x, x, epoch, loss_kwargs={"weight_kwargs": weight_kwargs})
        out.append(lm.get_loss_weights(precision=12)["w"])
    return out


# ----------------------------------------------------------------------------- schedules
@pytest.mark.parametrize(
    ("schedule", "epochs", "expected"),
    [
        (
            Schedule(start_epoch=100, end_epoch=200, initial_value=100.0, target_value=0.0),
            [0, 99, 100, 101, 150, 199, 200],
            [100, 100, 99, 98, 49, 0, 0],
        ),
        (Schedule(end_epoch=10, initial_value=1.0, target_value=0.0), [0, 5, 9], [0.9, 0.4, 0.0]),
        (
            Schedule(start_epoch=5, end_epoch=15, initial_value=0.0, target_value=10.0),
            [4, 5, 10, 14],
            [0, 1, 6, 10],
        ),
        (Schedule("exponential", 0, 10, 1.0, 0.01), [0, 5, 9], [0.630957, 0.0630957, 0.01]),
        (Schedule("exponential", 0, 10, 1.0, 0.0), [0, 5, 9], [0.125893, 3.98107e-6, 1e-9]),
    ],
    ids=["linear-100-200", "linear-end-10", "linear-up", "exponential", "exponential-to-0"],
)
def test_schedule_values_are_nectargans(
    schedule: Schedule, epochs: list[int], expected: list[float]
) -> None:
    assert scheduled_weights(schedule, epochs) == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_schedule_shifts_only_when_a_field_is_set() -> None:
    default = Schedule()
    assert (default.start_epoch, default.end_epoch) == (0, 10_000_000)
    s = Schedule(start_epoch=3, end_epoch=7, initial_value=2.0, target_value=4.0)
    assert (s.start_epoch, s.end_epoch, s.current_value) == (2, 6, 2.0)
    assert Schedule(schedule="exponential").start_epoch == -1  # any field set shifts
    assert default == Schedule() and s != Schedule()  # equality: the epochs only
    assert Schedule.adopt(s) is s


def test_exponential_weight_kwargs() -> None:
    to_zero = Schedule("exponential", 0, 10, 1.0, 0.0)
    assert scheduled_weights(to_zero, [9], epsilon=1e-6) == pytest.approx([1e-6])
    silent = {"allow_zero_weights": False, "silent": True}
    assert scheduled_weights(to_zero, [0, 5, 9], **silent) == [1.0, 1.0, 0.0]
    with pytest.raises(ZeroDivisionError, match="allow_zero_weights=False") as info:
        scheduled_weights(to_zero, [0], allow_zero_weights=False)
    assert "raised by the schedule of loss 'w'" in info.value.__notes__[0]
    with pytest.raises(TypeError, match="epsilon"):  # linear takes no keywords, as in NectarGAN
        scheduled_weights(Schedule(end_epoch=10), [1], epsilon=1.0)
    assert sorted(schedule_map) == ["exponential", "linear"]


def test_custom_curve_gets_the_schedule_epoch_and_weight_kwargs() -> None:
    seen = []

    def curve(s: Schedule, epoch: int, scale: float = 1.0) -> float:
        seen.append((s.start_epoch, epoch, scale))
        return scale * epoch

    assert scheduled_weights(Schedule(curve, 2, 5), [3, 4], scale=0.5) == [1.5, 2.0]
    assert seen == [(1, 3, 0.5), (1, 4, 0.5)]


def test_torch_scheduler_scales_the_learning_rate_like_nectargan() -> None:
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    # pix2pix: constant for `epochs`, then linear decay; +1 so the last epoch is not 0
    sched = TorchScheduler(
        opt, Schedule(start_epoch=2, end_epoch=5, initial_value=1.0, target_value=0.0)
    )
    lrs = []
    for _ in range(5):
        opt.step()
        sched.step()
        lrs.append(sched.get_lr())
    assert [round(new, 6) for _, new in lrs] == [0.2, 0.133333, 0.066667, 0.0, 0.0]
    assert lrs[1][0] == pytest.approx(0.2)  # (previous, new)


# ------------------------------------------------------------------ the trainer's loss section
def test_trainer_loss_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Trainer.init_loss_manager + Pix2pixTrainer's loss calls, epochs counted from 1."""
    config = make_config(tmp_path)
    experiment = tmp_path / "experiment_v1"
    experiment.mkdir()
    lm = LossManager(config, experiment, enable_logging=True)  # positional Config
    lm.export_base_log()  # at start, as the trainer does
    base = json.loads((experiment / "loss_log.json").read_text())["LOSSMANAGER_LOG"]
    assert base == {
        "device": "cpu",
        "dataroot": config.dataloader.dataroot,
        "dataset_length": 5,
        "experiment": "experiment_v1",
        "loss_functions": {},
    }
    lm.init_from_spec(pix2pix_spec, config, "extended")
    lm.register_loss_fn(
        "G_SCHED",
        nn.L1Loss(),
        schedule=Schedule(start_epoch=2, end_epoch=4, initial_value=10.0, target_value=0.0),
        tags=["G"],
    )
    assert list(lm.loss_fns) == ["G_GAN", "G_L1", "D_real", "D_fake", "G_L2", "G_SCHED"]
    torch.manual_seed(0)
    expected: dict[str, list[float]] = {name: [] for name in lm.loss_fns}
    weights = {"G_GAN": 1.0, "G_L1": 100.0, "D_real": 1.0, "D_fake": 1.0, "G_L2": 3.0}
    sched_weight = {1: 10.0, 2: 5.0, 3: 0.0}  # shifted: from epoch 1 to 3
    per_epoch = []
    for epoch in (1, 2, 3):
        for idx in range(4):
            d, x, y = torch.randn(2, 1, 4, 4), torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
            calls = {
                "D_real": (d, torch.ones_like(d)),
                "D_fake": (d, torch.zeros_like(d)),
                "G_GAN": (d, torch.ones_like(d)),
                "G_L1": (x, y),
                "G_L2": (x, y),
                "G_SCHED": (x, y),
            }
            for name, (a, b) in calls.items():
                out = lm.compute_loss_xy(name, a, b, epoch)
                w = sched_weight[epoch] if name == "G_SCHED" else weights[name]
                raw = lm.loss_fns[name].function(a, b)
                assert torch.allclose(out, raw * w)
                expected[name].append((raw * w).item())  # what NectarGAN records
            if idx % 2 == 0:
                lm.print_losses(epoch, idx)  # printed, as the trainer does
        per_epoch.append(lm.get_loss_values(query=["G"], precision=6))
        tensors = lm.get_loss_tensors(["G"])
        assert tensors["G_L1"].device.type == "cpu"
        assert tensors["G_L1"].item() == expected["G_L1"][-1]
        history = lm.get_registered_losses(strip=False)["G_SCHED"].history
        assert history.losses == expected["G_SCHED"][-4:]  # the same bits
        assert history.weights == [10.0] * 4  # NectarGAN logs loss_weight (initial_value)
        lm.update_loss_log(silent=False)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("(epoch: 1, iters: 0) Loss: G_GAN: ")
    assert printed[0].split(" Loss: ")[1].split(": ")[0::1][0] == "G_GAN"
    assert printed[2].startswith("LossManager: Logs updated. Time taken: ")
    assert per_epoch[-1]["G_SCHED"] == 0.0 and lm.get_loss_weights()["G_SCHED"] == 0.0
    assert per_epoch[0]["G_L1"] == round(expected["G_L1"][3], 6)

    log = json.loads((experiment / "loss_log.json").read_text())["LOSSMANAGER_LOG"]
    assert list(log) == ["device", "dataroot", "dataset_length", "experiment", "loss_functions"]
    functions = log["loss_functions"]
    assert list(functions) == list(lm.loss_fns)
    for name, series in functions.items():
        assert series["loss"] == expected[name]
        assert series["weights"] == [weights.get(name, 10.0)] * 12
    # the JSONL log stays the record, with the weight actually applied
    jsonl = read_log(experiment / LOG_FILENAME).losses["G_SCHED"]
    assert list(jsonl.weights) == [10.0] * 4 + [5.0] * 4 + [0.0] * 4
    lm.close()


def graph_data(log_path: Path, sample_frequency: int) -> tuple[str, list[Any]]:
    """Read loss_log.json the way NectarGAN's scripts/build_loss_graphs.py does."""
    log_data = json.loads(log_path.read_text())
    root = log_data["LOSSMANAGER_LOG"]
    title = (
        f"Experiment: {root['experiment']} | Device: {root['device']} | "
        f"Dataset Length: {root['dataset_length']} | Dataroot: {root['dataroot']}"
    )
    output = []
    for key, value in root["loss_functions"].items():
        if len(value["loss"]) == 0:
            continue
        loss = [v for j, v in enumerate(value["loss"]) if j % sample_frequency == 0]
        weights = [v for j, v in enumerate(value["weights"]) if j % sample_frequency == 0]
        output.append((key, loss, weights))
    return title, output


def review_panel_steps(log_path: Path) -> dict[str, list[float]]:
    """The Toolbox review panel's x axis: epochs from the value index and dataset_length."""
    root = json.loads(log_path.read_text())["LOSSMANAGER_LOG"]
    length = root["dataset_length"]
    return {
        key: [(i % length) / length + math.floor(i / length) for i in range(len(value["loss"]))]
        for key, value in root["loss_functions"].items()
    }


def test_nectargan_graphing_code_reads_the_log(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = make_config(tmp_path, images=4)
    lm = LossManager(config, tmp_path / "exp")
    lm.export_base_log()
    lm.init_from_spec(pix2pix_spec, config)
    for epoch in (1, 2):
        for _ in range(4):
            x = torch.rand(2, 3, 8, 8)
            for name in lm.loss_fns:
                lm.compute_loss_xy(name, x, torch.rand(2, 3, 8, 8), epoch)
        lm.update_loss_log()
    log_path = tmp_path / "exp" / "loss_log.json"
    title, data = graph_data(log_path, sample_frequency=3)
    assert title.startswith("Experiment: exp | Device: cpu | Dataset Length: 4 | Dataroot: ")
    assert [(name, len(loss), len(w)) for name, loss, w in data] == [
        (name, 3, 3) for name in ("G_GAN", "G_L1", "D_real", "D_fake")
    ]
    fig, axes = plt.subplots()
    for name, loss, weights in data:
        axes.plot(loss, label=f"{name} Loss")
        axes.plot(weights, label=f"{name} Weight")
    fig.suptitle(title, fontsize=8)
    fig.savefig(tmp_path / "loss_combined.png")
    plt.close(fig)
    assert (tmp_path / "loss_combined.png").stat().st_size > 0
    assert review_panel_steps(log_path)["G_L1"] == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75]


# ----------------------------------------------------------------------------- half-migrated code
@dataclass(eq=False)
class ForeignSchedule:
    """Behaves like NectarGAN's own Schedule (it shifts at construction)."""

    schedule: Any = "linear"
    start_epoch: int = 0
    end_epoch: int = 10_000_000
    initial_value: float = 1.0
    target_value: float = 1.0
    current_value: float = 1.0

    def __post_init__(self) -> None:
        if any(getattr(self, f.name) != f.default for f in fields(self)):
            self.current_value = self.initial_value
            self.start_epoch -= 1
            self.end_epoch -= 1


@dataclass
class ForeignLMLoss:
    """Behaves like NectarGAN's own LMLoss dataclass."""

    name: str
    function: nn.Module
    loss_weight: float = 1.0
    schedule: ForeignSchedule = field(default_factory=ForeignSchedule)
    last_loss_map: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    history: Any = None
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.schedule.start_epoch == 0 and self.schedule.end_epoch == 10_000_000:
            self.schedule.current_value = self.loss_weight
        else:
            self.loss_weight = self.schedule.initial_value


def test_nectargans_own_objects_are_converted_with_the_same_results(tmp_path: Path) -> None:
    def spec(cls: Any, schedule_cls: Any) -> dict[str, Any]:
        return {
            "G_L1": cls("G_L1", nn.L1Loss(), 100.0, tags=["G"]),
            "G_S": cls(
                "G_S",
                nn.L1Loss(),
                schedule=schedule_cls(
                    start_epoch=2, end_epoch=4, initial_value=8.0, target_value=0.0
                ),
                tags=["G"],
            ),
        }

    results = []
    for i, classes in enumerate([(ForeignLMLoss, ForeignSchedule), (LMLoss, Schedule)]):
        lm = LossManager(make_config(tmp_path), tmp_path / f"exp{i}")
        lm.init_from_spec(spec, *classes)
        assert all(type(e) is LMLoss for e in lm.loss_fns.values())
        assert lm.loss_fns["G_S"].schedule.start_epoch == 1  # shifted once, not twice
        x, y = torch.zeros(1, 4), torch.ones(1, 4)
        out = [lm.compute_loss_xy(n, x, y, e).item() for e in (1, 2, 3, 4) for n in lm.loss_fns]
        lm.update_loss_log()
        results.append((out, (tmp_path / f"exp{i}" / "loss_log.json").read_text()))
        lm.close()
    assert results[0][0] == results[1][0] == [100.0, 8.0, 100.0, 4.0, 100.0, 0.0, 100.0, 0.0]
    assert results[0][1].replace("exp0", "exp1") == results[1][1]
    # a foreign schedule handed to register_loss_fn is not shifted again either
    lm = LossManager(make_config(tmp_path), tmp_path / "exp2", enable_logging=False)
    lm.register_loss_fn(
        "s",
        nn.L1Loss(),
        schedule=ForeignSchedule(start_epoch=2, end_epoch=4, initial_value=8.0, target_value=0.0),
    )
    assert lm.compute_loss_xy("s", x, y, 2).item() == 4.0


# ----------------------------------------------------------------------------- API details
def test_register_loss_weight_with_default_schedule_keeps_the_weight() -> None:
    lm = LossManager(make_config_stub(), "", enable_logging=False)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=100.0, schedule=Schedule())
    lm.register_loss_fn("b", nn.L1Loss(), loss_weight=3.0)  # its own default schedule
    lm.register_loss_fn(
        "c", nn.L1Loss(), loss_weight=7.0, schedule=Schedule(initial_value=2.0, target_value=2.0)
    )
    x, y = torch.zeros(2), torch.ones(2)
    assert [lm.compute_loss_xy(n, x, y).item() for n in "abc"] == [100.0, 3.0, 2.0]
    assert lm.loss_fns["c"].loss_weight == 2.0  # NectarGAN: the schedule wins
    assert lm.get_loss_weights() == {"a": 100.0, "b": 3.0, "c": 2.0}
    with pytest.raises(ValueError, match="^Loss function name already in use: a$"):
        lm.register_loss_fn("a", nn.L1Loss())
    with pytest.raises(KeyError, match=r"Invalid loss type: 'zz'. Valid types are: \['a', 'b'"):
        lm.compute_loss_xy("zz", x, y)
    with pytest.raises(KeyError, match=r"d: schedule expected one of \['exponential', 'linear'\]"):
        lm.register_loss_fn("d", nn.L1Loss(), schedule=Schedule("cosine", 0, 5))
    assert "d" not in lm.loss_fns and "d" not in lm.native


def make_config_stub() -> Any:
    return SimpleNamespace(common=SimpleNamespace(device="cpu"))


def test_queries_printing_and_tensors_follow_nectargan(tmp_path: Path) -> None:
    lm = LossManager(make_config(tmp_path), tmp_path / "exp")
    assert lm.loss_fns == {} and lm.get_loss_values() == {}
    lm.init_from_spec(pix2pix_spec, make_config(tmp_path))
    x, y = torch.zeros(2, 3, 8, 8), torch.full((2, 3, 8, 8), 1 / 3)
    before = lm.get_loss_tensors()
    assert before["G_L1"].shape == (1, 3, 8, 8) and not before["G_L1"].any()  # placeholder
    lm.compute_loss_xy("G_L1", x, y, 1)
    lm.compute_loss_xy("D_real", x, y, 1)
    assert lm.get_loss_values(["G"], 4) == {
        "G_GAN": pytest.approx(float("nan"), nan_ok=True),
        "G_L1": 33.3333,
    }
    assert lm.get_loss_values(query=["G_L1"]) == {}  # tags only, no match: empty
    assert set(lm.get_loss_values(query=["D", "G"])) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    tensor = lm.get_loss_tensors(["G"])["G_L1"]
    assert tensor.device.type == "cpu" and tensor.item() == pytest.approx(100 / 3)  # weighted
    assert lm.print_losses(1, 0, 3, True) == (
        "(epoch: 1, iters: 0) Loss: G_GAN: nan G_L1: 33.333 D_real: 0.693 D_fake: nan"
    )
    assert lm.print_losses(epoch=2, iter=5, capture=True).startswith("(epoch: 2, iters: 5) Loss:")  # type: ignore[union-attr]
    assert lm.print_weights(capture=True) == (
        "Loss weights: G_GAN: 1.0 G_L1: 100.0 D_real: 1.0 D_fake: 1.0"
    )
    entry = lm.loss_fns["G_L1"]
    assert isinstance(entry.schedule, Schedule) and entry.schedule == Schedule()
    assert entry.history.losses == pytest.approx([100 / 3]) and entry.history.weights == [100.0]
    stripped = lm.get_registered_losses(["G"])
    assert stripped["G_L1"].history == LMHistory() and stripped["G_L1"].function is entry.function
    lm.update_loss_log()
    assert lm.loss_fns["G_L1"].history == LMHistory()  # written and cleared
    assert lm.get_loss_values(["G"])["G_L1"] == 33.33  # the latest value stays readable
    with pytest.raises(AttributeError, match="kept by its manager"):
        entry.history = LMHistory([1.0], [1.0])


def test_init_from_spec_replaces_and_none_resets(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    lm = LossManager(config, tmp_path / "exp")
    lm.init_from_spec(pix2pix_spec, config)
    x, y = torch.zeros(2, 3), torch.ones(2, 3)
    lm.compute_loss_xy("G_L1", x, y, 1)
    lm.init_from_spec(pix2pix_spec, config, "extended")  # replaces, no duplicate error
    assert list(lm.loss_fns) == ["G_GAN", "G_L1", "D_real", "D_fake", "G_L2"]
    lm.compute_loss_xy("G_L1", x, y, 1)
    lm.update_loss_log()
    assert read_log(tmp_path / "exp" / LOG_FILENAME).losses["G_L1"].steps == [0, 1]  # one series
    with pytest.raises(
        RuntimeError, match=r"init_from_spec\(<lambda>\): unable to initialize"
    ) as info:
        lm.init_from_spec(lambda: {"bad": 3})
    assert isinstance(info.value.__cause__, TypeError)
    assert list(lm.loss_fns) == ["G_GAN", "G_L1", "D_real", "D_fake", "G_L2"]  # unchanged
    with pytest.raises(OSError, match="spec's own"):  # the spec's own exception keeps its type

        def failing() -> dict[str, LMLoss]:
            raise OSError("spec's own")

        lm.init_from_spec(failing)
    assert lm.init_from_spec(None) == {} and lm.loss_fns == {} and len(lm.native) == 0
    lm.close()


def test_buffer_size_set_after_construction_is_honoured(tmp_path: Path) -> None:
    lm = LossManager(make_config(tmp_path), tmp_path / "exp")
    lm.init_from_spec(pix2pix_spec, make_config(tmp_path))
    lm.buffer_size = 3  # as NectarGAN's Toolbox trainer worker does
    x, y = torch.zeros(2), torch.ones(2)
    for _ in range(4):
        lm.compute_loss_xy("G_L1", x, y, 1)
    assert read_log(tmp_path / "exp" / LOG_FILENAME).losses["G_L1"].steps == [0, 1, 2]
    assert lm.buffer_size == 3 and len(lm.loss_fns["G_L1"].history.losses) == 1


def test_logging_off_keeps_the_latest_value_and_bypasses_the_log(tmp_path: Path) -> None:
    lm = LossManager(make_config(tmp_path), tmp_path / "exp", enable_logging=False)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    for i in range(3):
        lm.compute_loss_xy("a", torch.full((2,), float(i)), torch.zeros(2))
    assert lm.loss_fns["a"].history == LMHistory([4.0], [2.0])
    with pytest.warns(UserWarning, match=r"update_loss_log\(\) with `enable_logging=False`"):
        assert lm.update_loss_log(silent=False, capture=True) is None
    with pytest.warns(UserWarning, match="export_base_log"):
        lm.export_base_log()
    assert not (tmp_path / "exp").exists()


def test_continue_train_resumes_the_log(tmp_path: Path) -> None:
    x, y = torch.zeros(2), torch.ones(2)
    for run, continue_train in enumerate((False, True)):
        config = make_config(tmp_path, continue_train=continue_train)
        lm = LossManager(config, tmp_path / "exp")
        lm.export_base_log()
        lm.init_from_spec(pix2pix_spec, config)
        for _ in range(2):
            lm.compute_loss_xy("G_L1", x + run, y, run + 1)
        lm.update_loss_log()
        lm.close()
    log = json.loads((tmp_path / "exp" / "loss_log.json").read_text())["LOSSMANAGER_LOG"]
    assert log["loss_functions"]["G_L1"]["loss"] == [100.0, 100.0, 0.0, 0.0]
    assert read_log(tmp_path / "exp" / LOG_FILENAME).losses["G_L1"].steps == [0, 1, 2, 3]
    # without continue_train a new run replaces the old one, as NectarGAN's log does
    lm = LossManager(make_config(tmp_path), tmp_path / "exp")
    lm.export_base_log()
    assert (
        json.loads((tmp_path / "exp" / "loss_log.json").read_text())["LOSSMANAGER_LOG"][
            "loss_functions"
        ]
        == {}
    )
    lm.close()


def test_nonfinite_values_are_written_as_nectargan_does(tmp_path: Path) -> None:
    lm = LossManager(make_config(tmp_path), tmp_path / "exp")
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", torch.tensor([float("nan")]), torch.zeros(1))
    lm.compute_loss_xy("a", torch.tensor([float("inf")]), torch.zeros(1))
    lm.compute_loss_xy("a", torch.tensor([1.0]), torch.zeros(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm.update_loss_log()
    text = (tmp_path / "exp" / "loss_log.json").read_text()
    assert "NaN,Infinity,1.0" in text
    loss = json.loads(text)["LOSSMANAGER_LOG"]["loss_functions"]["a"]["loss"]
    assert math.isnan(loss[0]) and loss[1:] == [math.inf, 1.0]


def test_missing_dataset_directory_writes_zero_with_a_warning(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.dataloader.dataroot = str(tmp_path / "nowhere")
    lm = LossManager(config, tmp_path / "exp")
    with pytest.warns(UserWarning, match="dataset_length"):
        lm.export_base_log()
    assert json.loads(lm.loss_log.read_text())["LOSSMANAGER_LOG"]["dataset_length"] == 0  # type: ignore[union-attr]
    with pytest.raises(AttributeError, match="`common.device`"):
        LossManager(SimpleNamespace(), tmp_path / "exp2")


def test_per_step_path_never_syncs(tmp_path: Path) -> None:
    lm = LossManager(make_config(tmp_path), tmp_path / "exp")
    lm.init_from_spec(pix2pix_spec, make_config(tmp_path))
    lm.register_loss_fn("G_S", nn.L1Loss(), schedule=Schedule("exponential", 1, 9, 4.0, 0.0))
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    with SyncCounter() as counter:
        for epoch in range(1, 11):
            for _ in range(30):
                for name in lm.loss_fns:
                    lm.compute_loss_xy(name, x, y, epoch)
    assert counter.total == 0
    with SyncCounter() as counter:
        lm.get_loss_values()
    assert counter.host_copies == 1
    lm.close()


def test_module_exports() -> None:
    assert set(nectargan.__all__) >= {"LossManager", "LMLoss", "LMHistory", "Schedule"}


def test_losses_put_into_loss_fns_directly_are_registered_at_their_first_call(
    tmp_path: Path,
) -> None:
    lm = LossManager(make_config(tmp_path), tmp_path / "exp")
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0, tags=["G"])
    x, y = torch.zeros(2), torch.ones(2)
    lm.compute_loss_xy("a", x, y)
    lm.loss_fns["a"] = LMLoss("a", nn.L1Loss(), 5.0, tags=["G"])  # replaces it
    lm.loss_fns["b"] = LMLoss("b", nn.MSELoss(), 3.0, tags=["D"])
    assert [lm.compute_loss_xy(n, x, y).item() for n in "ab"] == [5.0, 3.0]
    lm.update_loss_log()
    functions = json.loads(lm.loss_log.read_text())["LOSSMANAGER_LOG"]["loss_functions"]  # type: ignore[union-attr]
    assert functions["a"] == {"loss": [2.0, 5.0], "weights": [2.0, 5.0]}
    assert functions["b"] == {"loss": [3.0], "weights": [3.0]}
    lm.close()


def test_a_new_manager_takes_over_the_directory_in_this_process(tmp_path: Path) -> None:
    """NectarGAN's Toolbox starts a new trainer worker while the old one is referenced."""
    x, y = torch.zeros(2), torch.ones(2)
    old = LossManager(make_config(tmp_path), tmp_path / "exp")
    old.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    old.compute_loss_xy("a", x, y)
    new = LossManager(make_config(tmp_path, continue_train=True), tmp_path / "exp")
    new.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    new.compute_loss_xy("a", x, y)
    new.update_loss_log()
    assert read_log(tmp_path / "exp" / LOG_FILENAME).losses["a"].steps == [0, 1]  # old flushed
    new.close()


def test_inputs_nectargan_accepts(tmp_path: Path) -> None:
    lm = LossManager(make_config(tmp_path), tmp_path / "exp")
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0, tags="GEN")  # type: ignore[arg-type]
    del lm.loss_fns["a"]
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=-1.0, tags="GEN")  # type: ignore[arg-type]
    assert list(lm.get_loss_values(query=["EN"])) == ["a"]  # a str of tags: substring match
    with pytest.warns(UserWarning, match="target size"):  # torch broadcasts, as in NectarGAN
        out = lm.compute_loss_xy("a", torch.zeros(4, 1), torch.tensor(1.0), -1)
    assert out.item() == -1.0  # a negative epoch and weight, as NectarGAN allows
    lm.buffer_size = 0  # NectarGAN then writes at every call
    assert lm.buffer_size == 1
    lm.register_loss_fn("s", nn.L1Loss(), schedule=Schedule(lambda s, e: float("nan"), 1, 2))
    with pytest.raises(ValueError, match=r"^s: the schedule's value at epoch 1 expected a finite"):
        lm.compute_loss_xy("s", torch.zeros(1), torch.ones(1), 1)
    assert lm.get_loss_weights()["s"] == 1.0  # unchanged by the refused call
    lm.loss_fns["z"] = ForeignLMLoss("z", nn.L1Loss(), 3.0, tags=["G"])  # NectarGAN's own type
    assert lm.get_loss_values()["z"] != lm.get_loss_values()["z"]  # nan: not computed yet
    assert lm.compute_loss_xy("z", torch.zeros(1), torch.ones(1)).item() == 3.0
    assert type(lm.loss_fns["z"]) is LMLoss
    lm.close()


def test_log_keeps_registration_order_and_earlier_weights_on_resume(tmp_path: Path) -> None:
    x, y = torch.zeros(1), torch.ones(1)
    for run, continue_train in enumerate((False, True)):
        lm = LossManager(make_config(tmp_path, continue_train=continue_train), tmp_path / "exp")
        for name in "abc":
            lm.register_loss_fn(
                name, nn.L1Loss(), schedule=Schedule(start_epoch=1, end_epoch=9, initial_value=2.0)
            )
        for epoch in (1, 2):
            lm.compute_loss_xy("c", x, y, epoch + 3 * run)
        lm.update_loss_log()
        lm.close()
    functions = json.loads((tmp_path / "exp" / "loss_log.json").read_text())["LOSSMANAGER_LOG"][
        "loss_functions"
    ]
    assert list(functions) == ["a", "b", "c"]
    assert functions["c"]["weights"] == [2.0] * 4  # loss_weight, before and after the resume


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_weighted_values_are_nectargans_in_every_dtype(tmp_path: Path, dtype: torch.dtype) -> None:
    lm = LossManager(make_config(tmp_path), tmp_path / "exp")
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=0.37)
    torch.manual_seed(0)
    expected = []
    for _ in range(20):
        x, y = torch.randn(8, dtype=dtype), torch.randn(8, dtype=dtype)
        lm.compute_loss_xy("a", x, y)
        expected.append((nn.functional.l1_loss(x, y) * 0.37).item())
    assert lm.loss_fns["a"].history.losses == expected
    assert lm.get_loss_values(precision=12)["a"] == round(expected[-1], 12)
    lm.update_loss_log()
    functions = json.loads(lm.loss_log.read_text())["LOSSMANAGER_LOG"]["loss_functions"]  # type: ignore[union-attr]
    assert functions["a"]["loss"] == expected
    lm.close()

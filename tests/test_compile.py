"""A training step with the manager inside compiles once and logs what eager logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch._dynamo.utils import counters

from nectarloss import LossManager, NonFiniteLossError, Schedule, read_log
from nectarloss.modifiers import P2, DebiasedEstimation, MinSNR, Sangoi
from nectarloss.noise import NoiseSchedule

Step = Callable[[Tensor, Tensor, int], Tensor]


def manager(directory: Path, **kw: Any) -> LossManager:
    lm = LossManager(directory, history_buffer_size=1000, overwrite=True, **kw)
    lm.register_loss_fn(
        "by_epoch",
        nn.L1Loss(),
        schedule=Schedule(start_epoch=0, end_epoch=2, initial_value=10.0, target_value=1.0),
        tags=["G"],
    )
    lm.register_loss_fn(
        "by_step",
        nn.MSELoss(),
        schedule=Schedule(
            schedule="cosine", end_epoch=50, initial_value=1.0, target_value=0.1, unit="step"
        ),
    )
    lm.register_loss_fn("constant", nn.SmoothL1Loss(), loss_weight=3.0, tags=["G"])
    lm.register_loss_fn(
        "exp",
        nn.L1Loss(),
        schedule=Schedule(schedule="exponential", end_epoch=3, initial_value=2.0, target_value=0.5),
    )
    return lm


def step_of(lm: LossManager) -> Step:
    def step(x: Tensor, y: Tensor, epoch: int) -> Tensor:
        return sum(  # type: ignore[return-value]
            lm.compute_loss_xy(name, x, y, epoch=epoch)
            for name in ("by_epoch", "by_step", "constant", "exp")
        )

    return step


def run(
    lm: LossManager, step: Step, data: list[tuple[Tensor, Tensor]], epochs: int = 3
) -> list[Tensor]:
    outs = []
    for epoch in range(epochs):
        for x, y in data:
            outs.append(step(x, y, epoch))
        lm.update_loss_log()
    return outs


@pytest.fixture()
def data() -> list[tuple[Tensor, Tensor]]:
    torch.manual_seed(0)
    return [(torch.randn(4, 3), torch.randn(4, 3)) for _ in range(40)]


@pytest.fixture(autouse=True)
def fresh_dynamo() -> None:
    torch._dynamo.reset()
    counters.clear()


def assert_same_log(a: Path, b: Path, exact: bool = True) -> None:
    """Same steps and weights, bit for bit; same values (bitwise unless ``exact=False``)."""
    log_a, log_b = read_log(a / "loss_log.jsonl"), read_log(b / "loss_log.jsonl")
    assert list(log_a.losses) == list(log_b.losses)
    for name, series in log_a.losses.items():
        other = log_b.losses[name]
        assert series.steps == other.steps and series.weights == other.weights, name
        if exact:
            assert series.values == other.values, name
        else:  # inductor reduces in another order: the loss itself differs in the last bits
            assert list(series.values) == pytest.approx(list(other.values), rel=1e-6), name


def test_compiles_once_over_epochs_and_steps_and_logs_like_eager(
    tmp_path: Path, data: list[tuple[Tensor, Tensor]]
) -> None:
    eager_lm = manager(tmp_path / "eager")
    eager = run(eager_lm, step_of(eager_lm), data)
    lm = manager(tmp_path / "compiled")
    compiled = run(lm, torch.compile(step_of(lm), fullgraph=True, backend="eager"), data)
    # one graph, and one more when the epoch int turns dynamic (as Dynamo does)
    assert counters["stats"]["unique_graphs"] <= 2
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
    assert_same_log(tmp_path / "eager", tmp_path / "compiled")
    assert lm.get_loss_values() == eager_lm.get_loss_values()
    assert lm.get_loss_weights() == eager_lm.get_loss_weights()


def test_inductor_compiles_once_too(tmp_path: Path, data: list[tuple[Tensor, Tensor]]) -> None:
    eager_lm = manager(tmp_path / "eager")
    run(eager_lm, step_of(eager_lm), data[:5], epochs=2)
    lm = manager(tmp_path / "compiled")
    run(lm, torch.compile(step_of(lm), fullgraph=True), data[:5], epochs=2)
    assert counters["stats"]["unique_graphs"] <= 2
    assert_same_log(tmp_path / "eager", tmp_path / "compiled", exact=False)


def test_eager_and_compiled_calls_mix_in_order(
    tmp_path: Path, data: list[tuple[Tensor, Tensor]]
) -> None:
    eager_lm = manager(tmp_path / "eager")
    lm = manager(tmp_path / "mixed")
    compiled = torch.compile(step_of(lm), fullgraph=True, backend="eager")
    plain, mixed = step_of(eager_lm), step_of(lm)
    for i, (x, y) in enumerate(data):
        epoch = i // 15
        plain(x, y, epoch)
        (compiled if (i // 4) % 2 else mixed)(x, y, epoch)  # runs of 4 of each
        if i == 25:
            eager_lm.update_loss_log()
            lm.update_loss_log()
    # queries in between see every value, in order
    assert lm.get_loss_values(precision=8) == eager_lm.get_loss_values(precision=8)
    eager_lm.update_loss_log()
    lm.update_loss_log()
    assert_same_log(tmp_path / "eager", tmp_path / "mixed")


def test_checkpoint_after_compiled_steps(tmp_path: Path, data: list[tuple[Tensor, Tensor]]) -> None:
    lm = manager(tmp_path / "a")
    compiled = torch.compile(step_of(lm), fullgraph=True, backend="eager")
    for x, y in data[:7]:
        compiled(x, y, 1)
    state = lm.state_dict()
    assert state["losses"]["by_step"]["num_steps"] == 7
    assert state["losses"]["by_step"]["history"]["values"].numel() == 7
    other = manager(tmp_path / "b")
    other.load_state_dict(state)
    assert other.get_loss_values(precision=8) == lm.get_loss_values(precision=8)


def test_values_past_the_buffer_between_flushes_are_reported(
    tmp_path: Path, data: list[tuple[Tensor, Tensor]]
) -> None:
    lm = LossManager(tmp_path, history_buffer_size=5)
    lm.register_loss_fn("a", nn.L1Loss())
    compiled = torch.compile(
        lambda x, y: lm.compute_loss_xy("a", x, y, epoch=0), fullgraph=True, backend="eager"
    )
    for x, y in data[:7]:
        compiled(x, y)
    with pytest.warns(RuntimeWarning, match="a: 2 values recorded in compiled or captured steps"):
        lm.update_loss_log()
    assert read_log(tmp_path / "loss_log.jsonl").losses["a"].steps == [0, 1, 2, 3, 4]


def diffusion_manager(directory: Path) -> LossManager:
    noise = NoiseSchedule.linear(100)
    lm = LossManager(directory, history_buffer_size=1000, overwrite=True)
    lm.register_loss_fn("sangoi", nn.MSELoss(reduction="none"), modifiers=[Sangoi(noise)])
    lm.register_loss_fn("minsnr", nn.MSELoss(reduction="none"), modifiers=[MinSNR(noise)])
    lm.register_loss_fn(
        "debiased", nn.MSELoss(reduction="none"), modifiers=[DebiasedEstimation(noise)]
    )
    lm.register_loss_fn("p2", nn.MSELoss(reduction="none"), modifiers=[P2(noise)])
    return lm


def test_snr_modifiers_compile_once(tmp_path: Path) -> None:
    torch.manual_seed(0)
    batches = [
        (torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3), torch.randint(0, 100, (4,)))
        for _ in range(12)
    ]
    logs = []
    for mode in ("eager", "compiled"):
        lm = diffusion_manager(tmp_path / mode)

        def step(x: Tensor, y: Tensor, t: Tensor, epoch: int, lm: LossManager = lm) -> Tensor:
            return sum(  # type: ignore[return-value]
                lm.compute_loss(n, x, y, epoch=epoch, timesteps=t)
                for n in ("sangoi", "minsnr", "debiased", "p2")
            )

        fn = torch.compile(step, fullgraph=True, backend="eager") if mode == "compiled" else step
        for i, (x, y, t) in enumerate(batches):
            fn(x, y, t, i // 4)
        lm.update_loss_log()
        logs.append(tmp_path / mode)
    assert counters["stats"]["unique_graphs"] <= 2
    assert_same_log(*logs, exact=False)


def compiled_call(lm: LossManager, name: str, **kw: Any) -> Callable[..., Tensor]:
    def call(x: Tensor, y: Tensor, epoch: Any = None) -> Tensor:
        return lm.compute_loss_xy(name, x, y, epoch=epoch, **kw)

    return torch.compile(call, fullgraph=True, backend="eager")


def test_eager_calls_after_compiled_ones_flush_and_check_as_eager(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, history_buffer_size=10, nonfinite_check="step")
    lm.register_loss_fn("a", nn.L1Loss())
    x, y = torch.zeros(3), torch.ones(3)
    compiled_call(lm, "a")(x, y, 0)
    for _ in range(30):  # the automatic flush of a full buffer still runs
        lm.compute_loss_xy("a", x, y, epoch=0)
    lm.close()
    assert read_log(tmp_path / "loss_log.jsonl").losses["a"].steps == list(range(31))
    with pytest.raises(NonFiniteLossError):  # and the per-step check too
        lm.compute_loss_xy("a", torch.full((3,), float("nan")), y, epoch=0)


def test_epoch_in_a_compiled_step_is_checked_and_required_by_epoch_schedules(
    tmp_path: Path,
) -> None:
    lm = manager(tmp_path)
    x, y = torch.zeros(3), torch.ones(3)
    with pytest.raises(Exception, match="by_epoch: `epoch` expected a number in a compiled"):
        compiled_call(lm, "by_epoch")(x, y)
    torch._dynamo.reset()
    with pytest.raises(
        Exception, match=r"by_epoch: `epoch` expected a finite number >= 0, got nan"
    ):
        compiled_call(lm, "by_epoch")(x, y, float("nan"))
    torch._dynamo.reset()
    compiled_call(lm, "constant")(x, y)  # no epoch schedule: no epoch needed
    step = compiled_call(lm, "by_epoch")
    for epoch in range(12):  # the epoch store does not guard: no recompile limit
        step(x, y, epoch)
    assert lm.state_dict()["epoch"] == 11
    assert counters["stats"]["unique_graphs"] <= 4


def test_compiled_steps_without_a_log_keep_the_latest_value(tmp_path: Path) -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn(
        "s", nn.L1Loss(), schedule=Schedule(schedule="linear", end_epoch=40, unit="step")
    )
    eager = LossManager(enable_logging=False)
    eager.register_loss_fn(
        "s", nn.L1Loss(), schedule=Schedule(schedule="linear", end_epoch=40, unit="step")
    )
    step = compiled_call(lm, "s")
    for i in range(30):
        x, y = torch.full((3,), float(i)), torch.zeros(3)
        torch.testing.assert_close(step(x, y), eager.compute_loss_xy("s", x, y))
        if i % 7 == 0:
            assert lm.get_loss_values(precision=8) == eager.get_loss_values(precision=8)
    entry = lm.get_registered_losses(strip=False)["s"]
    assert entry.num_steps == 30 and len(entry.history) == 1
    assert lm.get_loss_weights() == eager.get_loss_weights()


def test_float64_losses_stay_float64(tmp_path: Path) -> None:
    logs = []
    for mode in ("eager", "compiled"):
        lm = LossManager(tmp_path / mode)
        lm.register_loss_fn("a", nn.L1Loss())
        x = torch.tensor([8.506e199, 0.7462594186958711], dtype=torch.float64)
        lm.compute_loss_xy("a", x, torch.zeros(2, dtype=torch.float64), epoch=0)  # eager first
        call = compiled_call(lm, "a")
        for v in x:
            args = (v.reshape(1), torch.zeros(1, dtype=torch.float64), 0)
            call(*args) if mode == "compiled" else lm.compute_loss_xy("a", *args)
        lm.close()
        logs.append(tmp_path / mode)
    assert_same_log(*logs)
    assert read_log(logs[1] / "loss_log.jsonl").losses["a"].values[1] == 8.506e199


@pytest.mark.parametrize("threshold", ["exp", "global", 0.5])
def test_epoch_step_and_superloss_step_compiles_once(
    tmp_path: Path, data: list[tuple[Tensor, Tensor]], threshold: str | float
) -> None:
    """The issue's check: 3 epochs x 40 steps, at most 3 graphs, the eager run's log."""
    from nectarloss.modifiers import SuperLoss

    logs = []
    for mode in ("eager", "compiled"):
        lm = manager(tmp_path / mode)
        lm.register_loss_fn(
            "superloss", nn.MSELoss(reduction="none"), modifiers=[SuperLoss(threshold=threshold)]
        )

        def step(x: Tensor, y: Tensor, epoch: int, lm: LossManager = lm) -> Tensor:
            names = ("by_epoch", "by_step", "superloss")
            return sum(lm.compute_loss_xy(n, x, y, epoch=epoch) for n in names)  # type: ignore[return-value]

        fn = torch.compile(step, fullgraph=True, backend="eager") if mode == "compiled" else step
        run(lm, fn, data)
        logs.append(tmp_path / mode)
    assert counters["stats"]["unique_graphs"] <= 2
    assert_same_log(*logs)


def test_a_history_read_between_compiled_and_eager_calls_keeps_steps_in_order(
    tmp_path: Path,
) -> None:
    lm = LossManager(tmp_path)
    entry = lm.register_loss_fn("a", nn.L1Loss())
    x, y = torch.zeros(3), torch.ones(3)
    step = compiled_call(lm, "a")
    for _ in range(3):
        step(x, y, 0)
    assert len(entry.history.losses) == 3  # a read of the history takes the values in
    lm.get_loss_values()  # a query brings the entry up to date
    assert entry.num_steps == 3 and entry.last_value is not None
    lm.compute_loss_xy("a", x, y, epoch=0)
    step(x, y, 0)
    assert len(entry.history.weights) == 5
    lm.compute_loss_xy("a", x, y, epoch=0)  # and so does the next eager call
    lm.close()
    assert read_log(tmp_path / "loss_log.jsonl").losses["a"].steps == list(range(6))


@pytest.mark.parametrize(
    "device",
    [
        "cpu:0",  # tensors say "cpu": the manager's device must compare equal to theirs
        pytest.param(
            "cuda",  # tensors say "cuda:0"
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
            ],
        ),
    ],
)
def test_a_device_named_with_or_without_index_compiles(tmp_path: Path, device: str) -> None:
    torch.manual_seed(0)
    data = [(torch.randn(4, 3, device=device), torch.randn(4, 3, device=device))] * 5
    eager_lm = manager(tmp_path / "eager", device=device)
    run(eager_lm, step_of(eager_lm), data, epochs=2)
    lm = manager(tmp_path / "compiled", device=device)
    run(lm, torch.compile(step_of(lm), fullgraph=True, backend="eager"), data, epochs=2)
    assert counters["stats"]["unique_graphs"] <= 2
    assert_same_log(tmp_path / "eager", tmp_path / "compiled", exact=False)

"""Compiled steps used the way users write them: what broke, and what must keep holding."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch._dynamo.utils import counters

from nectarloss import AdaptiveWeight, LossManager, Schedule, read_log
from nectarloss.modifiers import P2, DebiasedEstimation, MinSNR, Sangoi, SuperLoss
from nectarloss.noise import NoiseSchedule

NAMES = ("by_epoch", "by_step", "constant")


@pytest.fixture(autouse=True)
def fresh_dynamo() -> None:
    torch._dynamo.reset()
    counters.clear()


def manager(directory: Path) -> LossManager:
    lm = LossManager(directory, history_buffer_size=1000, overwrite=True)
    lm.register_loss_fn(
        "by_epoch",
        nn.L1Loss(),
        schedule=Schedule(start_epoch=0, end_epoch=2, initial_value=10.0, target_value=1.0),
    )
    lm.register_loss_fn(
        "by_step",
        nn.MSELoss(),
        schedule=Schedule(schedule="cosine", end_epoch=50, target_value=0.1, unit="step"),
    )
    lm.register_loss_fn("constant", nn.SmoothL1Loss(), loss_weight=3.0)
    return lm


def same_log(a: Path, b: Path) -> None:
    """Same steps and weights exactly, values to float tolerance."""
    log_a, log_b = read_log(a / "loss_log.jsonl"), read_log(b / "loss_log.jsonl")
    assert list(log_a.losses) == list(log_b.losses)
    for name, series in log_a.losses.items():
        other = log_b.losses[name]
        assert list(series.steps) == list(other.steps), name
        assert list(series.weights) == list(other.weights), name
        assert list(series.values) == pytest.approx(list(other.values), rel=1e-5), name


class Trainer(nn.Module):
    """A model whose forward computes its losses through the manager it holds."""

    def __init__(self, lm: LossManager) -> None:
        super().__init__()
        self.lm = lm
        self.lin = nn.Linear(3, 3)

    def forward(self, x: Tensor, y: Tensor, epoch: int) -> Tensor:
        out = self.lin(x)
        return sum(self.lm.compute_loss_xy(n, out, y, epoch=epoch) for n in NAMES)  # type: ignore[return-value]


@pytest.mark.parametrize("how", ["module", "method", "dynamic"])
def test_a_module_holding_the_manager_compiles_and_logs_like_eager(
    tmp_path: Path, how: str
) -> None:
    torch.manual_seed(0)
    data = [(torch.randn(4, 3), torch.randn(4, 3)) for _ in range(6)]
    torch.manual_seed(1)
    eager = Trainer(manager(tmp_path / "eager"))
    torch.manual_seed(1)
    model = Trainer(manager(tmp_path / "compiled"))
    step = (
        torch.compile(model, fullgraph=True, backend="eager")
        if how == "module"
        else torch.compile(
            model.forward,
            fullgraph=True,
            backend="eager",
            dynamic=True if how == "dynamic" else None,
        )
    )
    for epoch in range(3):
        for i, (x, y) in enumerate(data):
            eager(x, y, epoch)
            step(x, y, epoch)
            if i == 2:  # a mid-epoch flush and query
                assert model.lm.get_loss_weights() == eager.lm.get_loss_weights()
                model.lm.update_loss_log()
        eager.lm.update_loss_log()
    model.lm.close()
    eager.lm.close()
    assert counters["stats"]["unique_graphs"] <= 2
    same_log(tmp_path / "eager", tmp_path / "compiled")


@pytest.mark.parametrize("name", ["constant", "by_step"])
@pytest.mark.parametrize(
    ("epoch", "match"),
    [
        (-1, "expected a finite number >= 0, got -1"),
        (float("nan"), "expected a finite number >= 0, got nan"),
        (torch.tensor(1), "expected an int or a float, got Tensor"),
        (True, "expected an int or a float, got bool"),
    ],
    ids=["negative", "nan", "tensor", "bool"],
)
def test_a_bad_epoch_raises_in_a_compiled_step_whatever_the_loss(
    tmp_path: Path, name: str, epoch: Any, match: str
) -> None:
    """Eager refuses these for every loss; compiled, they were stored as the run's epoch."""
    lm = manager(tmp_path)
    x, y = torch.zeros(3), torch.ones(3)
    with pytest.raises(Exception, match=f"{name}: `epoch` {match}"):
        torch.compile(
            lambda x, y: lm.compute_loss_xy(name, x, y, epoch=epoch),
            fullgraph=True,
            backend="eager",
        )(x, y)
    assert lm.state_dict()["epoch"] == 0  # the manager's epoch (used without epoch=) is kept
    lm.compute_loss_xy("by_epoch", x, y)  # and an eager call after it still works
    lm.close()


@pytest.mark.parametrize("name", ["constant", "by_epoch"])
def test_a_numpy_epoch_in_a_compiled_step_is_refused_clearly(tmp_path: Path, name: str) -> None:
    """Dynamo traces it as an array: it was stored as the manager's epoch (a NumPy
    scalar in state_dict, which torch.load(weights_only=True) refuses), or refused as
    "got ndarray"."""
    np = pytest.importorskip("numpy")
    lm = manager(tmp_path)
    x, y = torch.zeros(3), torch.ones(3)
    step = torch.compile(
        lambda x, y, e: lm.compute_loss_xy(name, x, y, epoch=e), fullgraph=True, backend="eager"
    )
    with pytest.raises(Exception, match=f"{name}: `epoch` .* got a NumPy number; pass int"):
        step(x, y, np.int64(1))
    assert lm.state_dict()["epoch"] == 0
    lm.close()


def test_nectargan_scheduled_loss_in_a_compiled_step_is_refused_clearly(tmp_path: Path) -> None:
    """It compiled at the first epoch, then failed with Dynamo's BUILD_STRING error."""
    from nectarloss.compat.nectargan import LossManager as NectarGANManager
    from nectarloss.compat.nectargan import Schedule as NectarGANSchedule

    lm = NectarGANManager(SimpleNamespace(common=SimpleNamespace(device="cpu")), tmp_path)
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=100.0)
    lm.register_loss_fn(
        "G_SCHED",
        nn.L1Loss(),
        schedule=NectarGANSchedule(start_epoch=2, end_epoch=4, initial_value=10.0),
    )
    x, y = torch.zeros(3), torch.ones(3)
    constant = torch.compile(
        lambda x, y, e: lm.compute_loss_xy("G_L1", x, y, e), fullgraph=True, backend="eager"
    )
    for epoch in (1, 2, 3):  # a constant weight still runs compiled
        constant(x, y, epoch)
    scheduled = torch.compile(
        lambda x, y, e: lm.compute_loss_xy("G_SCHED", x, y, e), fullgraph=True, backend="eager"
    )
    with pytest.raises(Exception, match="G_SCHED: NectarGAN's schedules compute the weight"):
        scheduled(x, y, 1)
    lm.native.close()
    assert read_log(tmp_path / "loss_log.jsonl").losses["G_L1"].weights == [100.0] * 3


NOISE = NoiseSchedule.linear(100)


@pytest.mark.parametrize(
    "modifier",
    [
        pytest.param(lambda: MinSNR(NOISE), id="MinSNR"),
        pytest.param(lambda: DebiasedEstimation(NOISE), id="DebiasedEstimation"),
        pytest.param(lambda: P2(NOISE), id="P2"),
        # dynamic=True makes module float attributes SymFloats: Sangoi.forward re-checked
        # `eps` with math.isfinite, which Dynamo cannot trace
        pytest.param(lambda: Sangoi(NOISE), id="Sangoi"),
        # `regularization` a SymFloat: _split's struct.pack on it recursed in Dynamo
        pytest.param(lambda: SuperLoss("exp"), id="SuperLoss-exp"),
        pytest.param(lambda: SuperLoss("global"), id="SuperLoss-global"),
        pytest.param(lambda: SuperLoss(0.5), id="SuperLoss-0.5"),
    ],
)
def test_modifiers_compile_with_dynamic_true(tmp_path: Path, modifier: Any) -> None:
    torch.manual_seed(0)
    logs = []
    for mode in ("eager", "compiled"):
        lm = LossManager(tmp_path / mode)
        lm.register_loss_fn("m", nn.MSELoss(reduction="none"), modifiers=[modifier()])
        torch.manual_seed(0)

        def step(x: Tensor, y: Tensor, t: Tensor, lm: LossManager = lm) -> Tensor:
            return lm.compute_loss_xy("m", x, y, epoch=0, timesteps=t)

        fn = torch.compile(step, fullgraph=True, backend="eager", dynamic=True)
        for batch in (4, 4, 3):  # a smaller last batch
            x, y, t = (
                torch.randn(batch, 2, 3),
                torch.randn(batch, 2, 3),
                torch.randint(0, 100, (batch,)),
            )
            (fn if mode == "compiled" else step)(x, y, t)
        lm.close()
        logs.append(tmp_path / mode)
    same_log(*logs)


def test_sangoi_in_a_compiled_step_still_refuses_a_mask_with_reference_exact(
    tmp_path: Path,
) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn(
        "s", nn.MSELoss(reduction="none"), modifiers=[Sangoi(NOISE, reference_exact=True)]
    )
    x, t = torch.randn(2, 3), torch.tensor([1, 2])
    step = torch.compile(
        lambda x, y, t, m: lm.compute_loss_xy("s", x, y, epoch=0, timesteps=t, mask=m),
        fullgraph=True,
        backend="eager",
        dynamic=True,
    )
    with pytest.raises(Exception, match="`mask` expected None with reference_exact=True"):
        step(x, x, t, torch.ones(2, 3))
    lm.close()


def test_a_reference_computed_in_a_compiled_step_feeds_a_balanced_loss_outside(
    tmp_path: Path,
) -> None:
    """The error says to compute a balanced loss outside; its AdaptiveWeight then said the
    reference, computed inside, "was not computed in this step"."""
    torch.manual_seed(0)
    data = [(torch.randn(4, 3), torch.randn(4, 3)) for _ in range(5)]
    for mode in ("eager", "compiled"):
        torch.manual_seed(0)
        gen = nn.Linear(3, 3)
        lm = LossManager(tmp_path / mode)
        lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=10.0)
        lm.register_loss_fn(
            "G_GAN", nn.MSELoss(), balancer=AdaptiveWeight(reference="G_L1", last_layer=gen.weight)
        )

        def generate(
            x: Tensor, y: Tensor, lm: LossManager = lm, gen: nn.Linear = gen
        ) -> tuple[Tensor, Tensor]:
            out = gen(x)
            return out, lm.compute_loss_xy("G_L1", out, y, epoch=0)

        fn = (
            torch.compile(generate, fullgraph=True, backend="eager")
            if mode == "compiled"
            else generate
        )
        for x, y in data:
            out, l1 = fn(x, y)
            (l1 + lm.compute_loss_xy("G_GAN", out, torch.zeros_like(out), epoch=0)).backward()
            gen.zero_grad()
        lm.close()
    assert counters["stats"]["unique_graphs"] <= 2  # one more once the reference is seen
    same_log(tmp_path / "eager", tmp_path / "compiled")


@pytest.mark.parametrize("call", ["get_loss_values", "state_dict", "update_loss_log", "close"])
def test_a_query_or_flush_inside_a_compiled_step_says_so(tmp_path: Path, call: str) -> None:
    """fullgraph=True said "Could not guard on data-dependent expression u0 > Min(1000,
    u0)", "Attempted to call function marked as skipped" (time.perf_counter) or
    "Unsupported context manager" (the manager's lock)."""
    lm = manager(tmp_path)
    x, y = torch.zeros(3), torch.ones(3)

    def step(x: Tensor, y: Tensor) -> Tensor:
        loss = lm.compute_loss_xy("constant", x, y, epoch=0)
        getattr(lm, call)()
        return loss

    with pytest.raises(
        Exception, match="cannot run inside a compiled step; call (it|them) outside"
    ):
        torch.compile(step, fullgraph=True, backend="eager")(x, y)
    torch._dynamo.reset()
    compiled = torch.compile(step, backend="eager")  # a graph break: it runs outside
    for _ in range(3):
        compiled(x, y)
    lm.close()
    assert read_log(tmp_path / "loss_log.jsonl").losses["constant"].steps == [0, 1, 2]

"""load_state_dict checks everything before it changes anything; clear errors for bad input."""

import copy
import io
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from nectarloss import LMHistory, LossManager, Schedule, read_log
from nectarloss.log import LOG_FILENAME


class Scaled(nn.Module):
    """A loss with state of its own, so a module load can fail part-way."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((x - y).abs() * self.scale).mean()


def build(path: Path, resume: bool = False) -> LossManager:
    lm = LossManager(path, history_buffer_size=8, resume=resume)
    lm.register_loss_fn("a", nn.L1Loss(), schedule=Schedule(end_epoch=4, initial_value=2.0))
    lm.register_loss_fn("s", Scaled())
    return lm


def run(lm: LossManager, steps: range) -> None:
    for i in steps:
        x = torch.full((3,), float(i))
        lm.compute_loss_xy("a", x, torch.zeros(3), epoch=i // 4)
        lm.compute_loss_xy("s", x, torch.zeros(3))


def saved(lm: LossManager) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(lm.state_dict(), buf)
    buf.seek(0)
    state: dict[str, Any] = torch.load(buf, weights_only=True)
    return state


def flat(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def corrupt(state: dict[str, Any], loss: str, *path_and_value: Any) -> dict[str, Any]:
    out = copy.deepcopy(state)
    *path, value = path_and_value
    node = out["losses"][loss]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.fixture
def manager_and_state(tmp_path: Path) -> tuple[LossManager, dict[str, Any]]:
    lm = build(tmp_path)
    run(lm, range(11))  # one automatic flush of each loss, three values pending
    return lm, saved(lm)


@pytest.mark.parametrize(
    ("loss", "path", "value", "message"),
    [
        ("a", ("last_weight",), math.nan, "a: `last_weight` expected a finite float >= 0"),
        ("a", ("loss_weight",), -1.0, "a: `loss_weight` expected a finite float >= 0"),
        ("a", ("num_steps",), -3, "a: state `num_steps` expected an int >= 0"),
        ("s", ("history", "first_step"), -1, "s: history `first_step` expected an int >= 0"),
        ("s", ("history", "weight_runs"), [[0, 1.0], [7, 2.0]], "s: history `weight_runs`"),
        ("s", ("history", "weight_runs"), [[0, math.inf]], "s: `history weight` expected"),
        ("s", ("history", "values"), torch.zeros(2, 2), "s: history `values` expected a 1-D"),
        ("s", ("modifiers",), [{}], "s: state has 1 modifier state"),
        ("a", ("num_steps",), 5, "a: state history ends at step 10, past `num_steps` 5"),
    ],
)
def test_bad_state_is_refused_and_changes_nothing(
    manager_and_state: tuple[LossManager, dict[str, Any]],
    loss: str,
    path: tuple[str, ...],
    value: Any,
    message: str,
) -> None:
    lm, state = manager_and_state
    run(lm, range(11, 13))
    before = flat(lm.state_dict())
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        lm.load_state_dict(corrupt(state, loss, *path, value))
    assert flat(lm.state_dict()) == before


def test_module_that_rejects_its_state_rolls_everything_back(
    manager_and_state: tuple[LossManager, dict[str, Any]],
) -> None:
    lm, state = manager_and_state
    run(lm, range(11, 13))
    before = flat(lm.state_dict())
    bad = corrupt(state, "s", "function", {"scale": torch.ones(5)})  # wrong shape
    with pytest.raises(RuntimeError, match="size mismatch"):
        lm.load_state_dict(bad)
    assert flat(lm.state_dict()) == before


def test_log_offset_must_end_a_line_of_the_same_log(tmp_path: Path) -> None:
    lm = build(tmp_path)
    run(lm, range(11))
    state = saved(lm)
    lm.update_loss_log()
    size = (tmp_path / LOG_FILENAME).stat().st_size
    del lm
    resumed = build(tmp_path, resume=True)
    bad = copy.deepcopy(state)
    bad["log"]["bytes"] -= 5
    with pytest.raises(ValueError, match="does not end a line"):
        resumed.load_state_dict(bad)
    bad["log"]["bytes"] = "10"
    with pytest.raises(ValueError, match=r"`bytes` expected an int >= 0"):
        resumed.load_state_dict(bad)
    assert (tmp_path / LOG_FILENAME).stat().st_size == size  # nothing cut
    resumed.load_state_dict(state)
    run(resumed, range(11, 16))
    resumed.close()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["a"].steps) == list(range(16))


def test_history_state_validation_names_the_field() -> None:
    h = LMHistory(capacity=4)
    good = {"first_step": 0, "values": torch.zeros(2), "weight_runs": [[0, 1.0]]}
    h.load_state_dict(good)
    with pytest.raises(ValueError, match="expected a weight for its 2 values"):
        h.load_state_dict({**good, "weight_runs": []})
    assert h.losses == [0.0, 0.0]


@pytest.mark.parametrize(
    ("epoch", "error", "message"),
    [
        ("3", TypeError, "a: `epoch` expected an int, got str"),
        (math.nan, ValueError, "a: `epoch` expected a finite number >= 0, got nan"),
        (-1, ValueError, "a: `epoch` expected a finite number >= 0, got -1"),
        (True, TypeError, "a: `epoch` expected an int, got bool"),
    ],
)
def test_bad_epoch_is_refused_and_not_stored(
    tmp_path: Path, epoch: object, error: type[Exception], message: str
) -> None:
    lm = build(tmp_path)
    lm.compute_loss_xy("a", torch.ones(3), torch.zeros(3), epoch=2)
    with pytest.raises(error, match=message):
        lm.compute_loss_xy("a", torch.ones(3), torch.zeros(3), epoch=epoch)  # type: ignore[arg-type]
    lm.compute_loss_xy("a", torch.ones(3), torch.zeros(3))  # the last good epoch still holds
    lm.close()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["a"].steps) == [0, 1]


def test_schedule_that_fails_or_returns_a_non_number_names_the_loss(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)

    def broken(schedule: Schedule, t: float) -> float:
        raise ZeroDivisionError("user bug")

    lm.register_loss_fn("odd", nn.L1Loss(), schedule=Schedule(schedule=lambda s, t: "1.0"))
    lm.register_loss_fn("boom", nn.L1Loss(), schedule=Schedule(schedule=broken))
    with pytest.raises(TypeError, match="odd: Schedule: the custom curve .* float, got str"):
        lm.compute_loss_xy("odd", torch.ones(3), torch.zeros(3))
    with pytest.raises(ZeroDivisionError, match="user bug") as info:
        lm.compute_loss_xy("boom", torch.ones(3), torch.zeros(3))
    if hasattr(info.value, "__notes__"):
        assert "schedule of loss 'boom'" in info.value.__notes__[0]
    assert lm.get_registered_losses(strip=False)["odd"].history.count == 0


def test_huge_history_buffer_size_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="history_buffer_size"):
        LossManager(tmp_path, history_buffer_size=10**11)


def test_finite_float64_loss_beyond_float32_is_logged_as_is(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("big", lambda x, y: (x * y).sum())
    x = torch.tensor([1e39], dtype=torch.float64)
    lm.compute_loss_xy("big", x, torch.ones(1, dtype=torch.float64))
    lm.compute_loss_xy("big", x, torch.full((1,), 2.0, dtype=torch.float64))
    lm.close()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["big"].values) == [1e39, 2e39]
    assert lm.get_nonfinite_counts() == {"big": 0}


class OOMLoss(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_inside_a_loss_stays_an_oom(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("G", OOMLoss())
    lm.register_loss_fn("ok", nn.L1Loss())
    with pytest.raises(torch.OutOfMemoryError, match="Tried to allocate") as info:
        lm.compute_loss_xy("G", torch.ones(3), torch.zeros(3))
    if hasattr(info.value, "__notes__"):
        note = "nectarloss: raised by loss 'G' on inputs of shape (3,), (3,)"
        assert info.value.__notes__ == [note]
    lm.compute_loss_xy("ok", torch.ones(3), torch.zeros(3))  # retry logic goes on
    lm.close()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["ok"].steps) == [0]


def test_numpy_epochs_are_accepted_and_huge_ints_refused_clearly(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    lm = build(tmp_path)
    lm.compute_loss_xy("a", torch.ones(3), torch.zeros(3), epoch=np.int64(3))
    lm.compute_loss_xy("a", torch.ones(3), torch.zeros(3), epoch=np.float32(3.5))
    with pytest.raises(ValueError, match="`epoch` expected a finite number >= 0"):
        lm.compute_loss_xy("a", torch.ones(3), torch.zeros(3), epoch=10**400)
    curve = Schedule(end_epoch=4, initial_value=2.0)
    weights = lm.get_registered_losses(strip=False)["a"].history.weights
    assert weights == [curve.value(3), curve.value(3.5)]


def test_custom_step_curve_logs_the_weights_it_applied(tmp_path: Path) -> None:
    state = {"w": 1.0}

    def curve(schedule: Schedule, t: float) -> float:
        state["w"] += 1.0  # a curve with state of its own
        return state["w"]

    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.L1Loss(), schedule=Schedule(schedule=curve, unit="step"))
    applied = []
    for _ in range(4):
        out = lm.compute_loss_xy("a", torch.ones(3), torch.zeros(3))
        applied.append(float(out))
    lm.close()
    assert list(read_log(tmp_path / LOG_FILENAME).losses["a"].weights) == applied

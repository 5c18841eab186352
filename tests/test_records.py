import pytest
import torch
from torch import nn

from nectarloss import LMHistory, LMLoss, Schedule


def test_history_records_values_weights_and_steps() -> None:
    h = LMHistory(capacity=300)
    for i in range(300):  # more than one stage, so the batched commit is exercised
        h.record(torch.tensor(float(i)), weight=1.0 if i < 150 else 2.0, step=10 + i)
    assert h.is_full
    assert h.losses == [float(i) for i in range(300)]
    assert h.weights == [1.0] * 150 + [2.0] * 150
    assert list(h.steps) == list(range(10, 310))
    assert h.weighted_losses[-1] == 598.0


def test_history_is_preallocated_float32_on_value_device() -> None:
    h = LMHistory(capacity=16)
    h.record(torch.tensor(1.5, dtype=torch.float16), 1.0, 0)
    t = h.values_tensor()
    assert t.dtype == torch.float32 and t.device.type == "cpu"
    assert h.nbytes == 16 * 4


def test_history_counts_staged_values_until_a_stage_commits() -> None:
    h = LMHistory(capacity=300)
    for i in range(LMHistory.STAGE_SIZE - 1):
        h.record(torch.tensor(float(i)), 1.0, i)
    assert h.num_staged == LMHistory.STAGE_SIZE - 1
    h.record(torch.tensor(0.0), 1.0, LMHistory.STAGE_SIZE)
    assert h.num_staged == 0 and len(h) == LMHistory.STAGE_SIZE


def test_history_keeps_float64_values_in_float64() -> None:
    h = LMHistory(capacity=300)
    h.record(torch.tensor(0.5), 1.0, 0)
    h.record(torch.tensor(1e39, dtype=torch.float64), 1.0, 1)  # beyond float32's range
    h.record(torch.tensor(1 / 3, dtype=torch.float64), 1.0, 2)
    assert h.values_tensor().dtype == torch.float64
    assert h.losses == [0.5, 1e39, 1 / 3]


def test_history_grows_past_capacity_and_clear_continues_steps() -> None:
    h = LMHistory(capacity=2)
    h.record(torch.tensor(1.0), 1.0, 0)
    assert not h.flush_due
    h.record(torch.tensor(2.0), 1.0, 1)
    assert h.flush_due and h.is_full
    h.postpone_flush()  # a failed flush: keep recording, try again 2 values later
    for i in range(3, 300):
        h.record(torch.tensor(float(i)), 1.0, i - 1)
        assert h.flush_due == (i >= 4)
    assert h.losses == [1.0, 2.0] + [float(i) for i in range(3, 300)]
    h.clear()
    assert len(h) == 0 and h.losses == [] and h.weights == [] and not h.flush_due
    h.record(torch.tensor(3.0), 1.0, 299)
    assert list(h.steps) == [299]


def test_history_to_keeps_unflushed_values() -> None:
    h = LMHistory(capacity=400)
    for i in range(200):
        h.record(torch.tensor(float(i)), 1.0, i)
    h.to("cpu")
    assert h.losses == [float(i) for i in range(200)]


@pytest.mark.parametrize("capacity", [-1, 1.5, True])
def test_history_rejects_bad_capacity(capacity: object) -> None:
    with pytest.raises(ValueError, match="capacity"):
        LMHistory(capacity=capacity)  # type: ignore[arg-type]


def test_lmloss_weight_from_schedule_by_unit() -> None:
    by_step = LMLoss(
        "a",
        nn.L1Loss(),
        schedule=Schedule(
            schedule="linear", end_epoch=10, initial_value=0.0, target_value=10.0, unit="step"
        ),
    )
    assert by_step.weight_at(epoch=0, step=5) == 5.0
    by_epoch = LMLoss(
        "b",
        nn.L1Loss(),
        schedule=Schedule(schedule="linear", end_epoch=10, initial_value=0.0, target_value=10.0),
    )
    assert by_epoch.weight_at(epoch=3, step=5) == 3.0


def test_lmloss_rejects_negative_custom_schedule_value() -> None:
    loss = LMLoss("G_L1", nn.L1Loss(), schedule=Schedule(schedule=lambda s, e: -1.0))
    with pytest.raises(
        ValueError,
        match=r"G_L1: `schedule value at epoch 4` expected a finite float >= 0, got -1.0",
    ):
        loss.weight_at(4, 0)


def test_stripped_copy_leaves_original_history() -> None:
    loss = LMLoss("a", nn.L1Loss(), tags=["G"], history=LMHistory(8))
    loss.history.record(torch.tensor(1.0), 1.0, 0)
    copy = loss.stripped()
    assert copy.history.losses == [] and loss.history.losses == [1.0]
    assert copy.function is loss.function and copy.tags == ["G"]


def test_step_schedule_weights_are_not_stored_per_step() -> None:
    """A weight that is a pure function of the step is re-evaluated, not stored."""
    h = LMHistory(capacity=1000, weight_of_step=lambda step: 0.5 * step)
    for i in range(1000):
        h.record(torch.tensor(1.0), 0.5 * (10 + i), step=10 + i)
    assert h.weights == [0.5 * s for s in range(10, 1010)]
    assert h.weight_nbytes == 0  # nothing stored: 4 bytes per step, on the device
    restored = LMHistory(capacity=1000, weight_of_step=lambda step: 0.5 * step)
    restored.load_state_dict(h.state_dict())
    assert list(restored.steps) == list(range(10, 1010))
    assert restored.weights == h.weights and restored.losses == [1.0] * 1000

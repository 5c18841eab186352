"""DWA against the paper's formula from given epoch means."""

import math

import pytest
import torch
from torch import nn

from nectarloss import DWA, LossManager, read_log

TEMPERATURE = 2.0
#: Per epoch, the values each task gets at every step (so each epoch's mean is known).
EPOCHS = [
    {"a": [1.0, 3.0], "b": [4.0, 4.0], "c": [0.5, 1.5]},  # means 2, 4, 1
    {"a": [1.0, 1.0], "b": [3.0, 5.0], "c": [2.0, 2.0]},  # means 1, 4, 2
    {"a": [0.5, 0.5], "b": [2.0, 2.0], "c": [1.0, 3.0]},  # means 0.5, 2, 2
    {"a": [1.0, 1.0], "b": [1.0, 1.0], "c": [1.0, 1.0]},
]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def paper_weights(previous: dict[str, float], older: dict[str, float]) -> dict[str, float]:
    """``w_k = K exp(r_k / T) / sum_i exp(r_i / T)``, ``r_k = L_k(t-1) / L_k(t-2)``."""
    ratios = {k: previous[k] / older[k] for k in previous}
    total = sum(math.exp(r / TEMPERATURE) for r in ratios.values())
    return {k: len(ratios) * math.exp(r / TEMPERATURE) / total for k, r in ratios.items()}


def run(lm: LossManager, epochs: range) -> dict[int, dict[str, torch.Tensor]]:
    returned: dict[int, dict[str, torch.Tensor]] = {}
    for epoch in epochs:
        for i in range(2):
            for name, values in EPOCHS[epoch].items():
                x = torch.full((3,), values[i], requires_grad=True)  # training calls
                out = lm.compute_loss_xy(name, x, torch.zeros(3), epoch=epoch)
                returned.setdefault(epoch, {})[name] = out.detach() / values[i]  # its weight
    return returned


def build(path, resume=False) -> tuple[LossManager, DWA]:
    dwa = DWA(temperature=TEMPERATURE)
    lm = LossManager(path, resume=resume)
    for name in ("a", "b", "c"):
        lm.register_loss_fn(name, nn.L1Loss(), balancer=dwa)
    return lm, dwa


def test_weights_follow_the_formula_and_are_logged(tmp_path) -> None:
    lm, dwa = build(tmp_path)
    applied = run(lm, range(4))
    means = [{k: mean(v) for k, v in epoch.items()} for epoch in EPOCHS]
    for epoch in (0, 1):
        assert {k: float(v) for k, v in applied[epoch].items()} == {"a": 1.0, "b": 1.0, "c": 1.0}
    for epoch in (2, 3):
        expected = paper_weights(means[epoch - 1], means[epoch - 2])
        got = {k: float(v) for k, v in applied[epoch].items()}
        assert got == pytest.approx(expected, rel=1e-6)
        assert sum(got.values()) == pytest.approx(3.0, rel=1e-6)
    lm.close()
    log = read_log(lm.log_path)
    expected_2 = paper_weights(means[1], means[0])
    assert list(log.losses["b"].weights[4:6]) == pytest.approx([expected_2["b"]] * 2, rel=1e-6)
    assert list(log.losses["b"].weights[:4]) == [1.0] * 4


def test_resume_mid_epoch_is_bit_exact(tmp_path) -> None:
    whole, _ = build(tmp_path / "whole")
    run(whole, range(4))
    whole.close()
    first, _ = build(tmp_path / "cut")
    run(first, range(2))
    state = first.state_dict()
    first.close()
    second, dwa = build(tmp_path / "cut", resume=True)
    second.load_state_dict(state)
    assert dwa.num_completed == 1 and dwa.epoch == 1
    run(second, range(2, 4))
    second.close()
    a, b = read_log(whole.log_path), read_log(second.log_path)
    for name in ("a", "b", "c"):
        assert list(a.losses[name].weights) == list(b.losses[name].weights)
        assert list(a.losses[name].values) == list(b.losses[name].values)


def test_epoch_going_back_raises_and_records_nothing(tmp_path) -> None:
    lm, _ = build(tmp_path)
    lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2), epoch=3)
    with pytest.raises(ValueError, match=r"DWA \(a\): `epoch` expected >= 3"):
        lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2), epoch=2)
    assert lm.get_registered_losses()["a"].num_steps == 1
    lm.close()


def test_bad_temperature_and_extra_state() -> None:
    with pytest.raises(ValueError, match="`temperature` expected a finite float > 0"):
        DWA(temperature=0.0)
    dwa = DWA()
    with pytest.raises(ValueError, match="_extra_state"):
        dwa.set_extra_state({"epoch": -1, "num_completed": 0})

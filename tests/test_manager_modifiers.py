"""The manager's per-sample pipeline: reduce to [B], modify, average, weight."""

import io
from pathlib import Path

import pytest
import torch
from torch import nn

from nectarloss import LossManager, read_log
from nectarloss.functional import min_snr_weight
from nectarloss.log import LOG_FILENAME
from nectarloss.modifiers import MinSNR, NoiseSchedule, Sangoi, SuperLoss
from nectarloss.testing import SyncCounter


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.scaled_linear(num_steps=1000)


@pytest.mark.parametrize("shape", [(4, 7), (4, 5, 6), (4, 3, 8, 8), (4, 2, 3, 4, 4)])
def test_min_snr_pipeline_any_rank(schedule: NoiseSchedule, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn(
        "denoise",
        nn.MSELoss(reduction="none"),
        loss_weight=2.0,
        modifiers=[MinSNR(schedule, gamma=5.0)],
    )
    pred = torch.randn(*shape, requires_grad=True)
    target = torch.randn(*shape)
    t = torch.tensor([0, 10, 500, 999])
    out = lm.compute_loss("denoise", pred, target, timesteps=t)
    per_sample = ((pred - target) ** 2).reshape(4, -1).mean(dim=1)
    snr = schedule.snr(t)
    expected = (per_sample * min_snr_weight(snr, gamma=5.0)).mean() * 2.0
    assert torch.allclose(out, expected)
    out.backward()
    assert pred.grad is not None
    raw = lm.get_loss_values(weighted=False, precision=8)["denoise"]
    assert raw == pytest.approx(expected.item() / 2.0, rel=1e-5)


def test_modifiers_apply_in_order(schedule: NoiseSchedule) -> None:
    lm = LossManager(enable_logging=False)
    sangoi, min_snr = Sangoi(schedule), MinSNR(schedule)
    lm.register_loss_fn("both", nn.MSELoss(reduction="none"), modifiers=[sangoi, min_snr])
    x, y, t = torch.rand(3, 2, 4, 4) + 0.5, torch.rand(3, 2, 4, 4) + 0.5, torch.tensor([1, 50, 900])
    out = lm.compute_loss("both", x, y, timesteps=t)
    from nectarloss.modifiers import LossContext

    ctx = LossContext("both", (x, y), t)
    per = ((x - y) ** 2).reshape(3, -1).mean(1)
    assert torch.allclose(out, min_snr(sangoi(per, ctx), ctx).mean())


def test_compute_loss_xy_passes_timesteps_and_mask(schedule: NoiseSchedule) -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("s", nn.L1Loss(reduction="none"), modifiers=[Sangoi(schedule)])
    x, y = torch.rand(2, 1, 4, 4) + 1, torch.rand(2, 1, 4, 4) + 1
    mask = torch.ones(2, 1, 4, 4)
    a = lm.compute_loss_xy("s", x, y, timesteps=torch.tensor([3, 4]), mask=mask)
    b = lm.compute_loss("s", x, y, timesteps=torch.tensor([3, 4]))
    assert torch.allclose(a, b)


def test_modifier_errors_name_the_loss(schedule: NoiseSchedule) -> None:
    lm = LossManager(enable_logging=False)
    with pytest.raises(ValueError, match="G: modifiers need a per-sample loss.*reduction='none'"):
        lm.register_loss_fn("G", nn.MSELoss(), modifiers=[MinSNR(schedule)])
    lm.register_loss_fn("G", nn.MSELoss(reduction="none"), modifiers=[MinSNR(schedule)])
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="G: modifier MinSNR expected `timesteps`"):
        lm.compute_loss_xy("G", x, x)
    lm.register_loss_fn("scalar", lambda a, b: (a - b).abs().mean(), modifiers=[SuperLoss()])
    with pytest.raises(ValueError, match="scalar: modifiers need a per-sample loss"):
        lm.compute_loss_xy("scalar", x, x)
    out = lm.compute_loss_xy("G", x, x * 0, timesteps=torch.tensor([1, 2]))  # still usable
    assert out.ndim == 0


def test_superloss_confidences_from_manager() -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn(
        "ce", nn.CrossEntropyLoss(reduction="none"), modifiers=[SuperLoss(threshold=1.0)]
    )
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    labels = torch.tensor([0, 1, 1])  # the last sample is "mislabeled"
    lm.compute_loss_xy("ce", logits, labels)
    conf = lm.get_confidences("ce")
    assert conf.shape == (3,) and conf[2] < conf[0] and conf[2] < conf[1]


def test_modifier_path_is_sync_free(tmp_path: Path, schedule: NoiseSchedule) -> None:
    lm = LossManager(tmp_path, history_buffer_size=1000)
    lm.register_loss_fn("sangoi", nn.MSELoss(reduction="none"), modifiers=[Sangoi(schedule)])
    lm.register_loss_fn("minsnr", nn.MSELoss(reduction="none"), modifiers=[MinSNR(schedule)])
    lm.register_loss_fn(
        "super", nn.MSELoss(reduction="none"), modifiers=[SuperLoss(threshold="exp")]
    )
    x, y = torch.randn(4, 2, 8, 8), torch.randn(4, 2, 8, 8)
    t = torch.randint(0, 1000, (4,))
    with SyncCounter() as c:
        for _ in range(200):
            for name in ("sangoi", "minsnr", "super"):
                lm.compute_loss_xy(name, x, y, timesteps=t)
    assert c.total == 0


def test_superloss_tau_survives_checkpoint(tmp_path: Path) -> None:
    def build(path: Path, resume: bool = False) -> LossManager:
        lm = LossManager(path, resume=resume)
        lm.register_loss_fn(
            "ce", nn.CrossEntropyLoss(reduction="none"), modifiers=[SuperLoss(threshold="exp")]
        )
        return lm

    def step(lm: LossManager, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(i)
        return lm.compute_loss_xy(
            "ce", torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g)
        )

    a = build(tmp_path / "a")
    outs = [step(a, i) for i in range(10)]
    b = build(tmp_path / "b")
    for i in range(4):
        step(b, i)
    buf = io.BytesIO()
    torch.save(b.state_dict(), buf)
    buf.seek(0)
    del b  # a crash: the lock goes with the process's manager
    c = build(tmp_path / "b", resume=True)
    c.load_state_dict(torch.load(buf, weights_only=True))
    resumed = [step(c, i) for i in range(4, 10)]
    assert all(torch.equal(x, y) for x, y in zip(outs[4:], resumed, strict=True))
    a.update_loss_log()
    c.update_loss_log()
    assert (
        read_log(tmp_path / "a" / LOG_FILENAME).losses
        == read_log(tmp_path / "b" / LOG_FILENAME).losses
    )


def test_out_of_range_timesteps(schedule: NoiseSchedule) -> None:
    strict = LossManager(enable_logging=False, check_timesteps=True)
    strict.register_loss_fn("denoise", nn.MSELoss(reduction="none"), modifiers=[MinSNR(schedule)])
    x = torch.randn(2, 4)
    with pytest.raises(
        ValueError,
        match=r"denoise: modifier MinSNR: `timesteps` expected values in \[0, 999\], got 1000",
    ):
        strict.compute_loss_xy("denoise", x, x * 0, timesteps=torch.tensor([5, 1000]))
    strict.compute_loss_xy("denoise", x, x * 0, timesteps=torch.tensor([5, 999]))  # still usable
    lenient = LossManager(enable_logging=False)
    lenient.register_loss_fn("denoise", nn.MSELoss(reduction="none"), modifiers=[MinSNR(schedule)])
    clamped = lenient.compute_loss_xy("denoise", x, x * 0, timesteps=torch.tensor([5, 1000]))
    at_end = lenient.compute_loss_xy("denoise", x, x * 0, timesteps=torch.tensor([5, 999]))
    assert torch.equal(clamped, at_end)


def test_single_modifier_is_accepted() -> None:
    lm = LossManager(enable_logging=False)
    entry = lm.register_loss_fn("ce", nn.CrossEntropyLoss(reduction="none"), modifiers=SuperLoss())  # type: ignore[arg-type]
    assert len(entry.modifiers) == 1

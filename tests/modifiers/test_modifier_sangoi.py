"""Tests for the Sangoi modifier."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import Tensor
from torch._dynamo.testing import CompileCounter

from benchmarks.baselines.seed_modifiers import seed_sangoi_weight
from nectarloss.functional import sangoi
from nectarloss.modifiers import LossContext, NoiseSchedule, Sangoi

SCHEDULE = NoiseSchedule.scaled_linear()


def _batch(shape: tuple[int, ...], seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(shape, generator=gen)
    prediction = target + 0.3 * torch.randn(shape, generator=gen)
    timesteps = torch.randint(0, 1000, (shape[0],), generator=gen)
    loss = (prediction - target).square().flatten(1).mean(1)
    return loss, prediction, target, timesteps


@pytest.mark.parametrize("shape", [(4, 8), (4, 16, 8), (4, 3, 8, 8), (4, 2, 3, 8, 8)])
def test_module_equals_functional_any_rank(shape: tuple[int, ...]) -> None:
    loss, prediction, target, timesteps = _batch(shape)
    ctx = LossContext("mse", (prediction, target), timesteps=timesteps)
    out = Sangoi(SCHEDULE)(loss, ctx)
    assert out.shape == (shape[0],)
    torch.testing.assert_close(out, sangoi(loss, SCHEDULE.snr(timesteps), prediction, target))


def test_reference_exact_bit_for_bit() -> None:
    loss, prediction, target, timesteps = _batch((6, 4, 16, 16))
    ctx = LossContext("mse", (prediction, target), timesteps=timesteps)
    out = Sangoi(SCHEDULE, reference_exact=True)(loss, ctx)
    expected = loss * seed_sangoi_weight(SCHEDULE.snr(timesteps), prediction, target)
    assert torch.equal(out, expected)


def test_mask_from_context_extra() -> None:
    loss, prediction, target, timesteps = _batch((3, 2, 6, 6))
    mask = torch.zeros(3, 1, 6, 6, dtype=torch.bool)
    mask[..., :2] = True
    ctx = LossContext("mse", (prediction, target), timesteps=timesteps, extra={"mask": mask})
    snr = SCHEDULE.snr(timesteps)
    torch.testing.assert_close(
        Sangoi(SCHEDULE)(loss, ctx), sangoi(loss, snr, prediction, target, mask=mask)
    )
    ignored = Sangoi(SCHEDULE, mask_key=None)(loss, ctx)
    torch.testing.assert_close(ignored, sangoi(loss, snr, prediction, target))
    custom = LossContext("mse", (prediction, target), timesteps=timesteps, extra={"valid": mask})
    torch.testing.assert_close(
        Sangoi(SCHEDULE, mask_key="valid")(loss, custom),
        sangoi(loss, snr, prediction, target, mask=mask),
    )
    with pytest.raises(
        ValueError, match=r"mse: modifier Sangoi: `mask` expected None with reference_exact=True"
    ):
        Sangoi(SCHEDULE, reference_exact=True)(loss, ctx)


def test_detach_option() -> None:
    _, prediction, target, timesteps = _batch((2, 3, 4, 4))
    prediction.requires_grad_(True)
    loss = torch.ones(2, requires_grad=True)  # the weight is the only path to prediction
    ctx = LossContext("mse", (prediction, target), timesteps=timesteps)
    (grad_detached,) = torch.autograd.grad(
        Sangoi(SCHEDULE)(loss, ctx).sum(), prediction, allow_unused=True
    )
    assert grad_detached is None
    (grad,) = torch.autograd.grad(Sangoi(SCHEDULE, detach=False)(loss, ctx).sum(), prediction)
    assert grad.abs().sum() > 0


def test_requires_timesteps_and_target() -> None:
    loss, prediction, target, _ = _batch((2, 4))
    assert Sangoi.requires_timesteps
    with pytest.raises(ValueError, match=r"G_L2: modifier Sangoi expected `timesteps`"):
        Sangoi(SCHEDULE)(loss, LossContext("G_L2", (prediction, target)))
    with pytest.raises(ValueError, match=r"G_L2: a modifier expected a target as the second input"):
        Sangoi(SCHEDULE)(loss, LossContext("G_L2", (prediction,), timesteps=torch.tensor([1, 2])))


def test_shape_errors() -> None:
    loss, prediction, target, timesteps = _batch((2, 4))
    with pytest.raises(
        ValueError,
        match=(
            r"modifier Sangoi: `prediction` expected shape \[B, \.\.\.\] with B matching "
            r"the per-sample loss shape \(3,\), got \(2, 4\)"
        ),
    ):
        Sangoi(SCHEDULE)(
            torch.ones(3), LossContext("mse", (prediction, target), timesteps=timesteps)
        )
    with pytest.raises(
        ValueError,
        match=(
            r"modifier Sangoi: `timesteps` expected a shape broadcastable to the loss "
            r"shape \(2,\), got \(3,\)"
        ),
    ):
        Sangoi(SCHEDULE)(
            loss, LossContext("mse", (prediction, target), timesteps=torch.tensor([1, 2, 3]))
        )
    with pytest.raises(
        ValueError, match=r"`target` expected the prediction's shape \(2, 4\), got \(2, 5\)"
    ):
        Sangoi(SCHEDULE)(
            loss, LossContext("mse", (prediction, torch.ones(2, 5)), timesteps=timesteps)
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": -1.0}, ValueError, r"Sangoi: `eps` expected a finite float > 0, got -1.0"),
        ({"snr_range": (5.0, 1.0)}, ValueError, r"Sangoi: `snr_range` expected 0 <= low < high"),
        ({"detach": 1}, TypeError, r"Sangoi: `detach` expected a bool, got int 1"),
        ({"mask_key": 3}, TypeError, r"Sangoi: `mask_key` expected a str or None, got int"),
    ],
)
def test_option_validation(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Sangoi(SCHEDULE, **kwargs)  # type: ignore[arg-type]


def test_state_dict_and_scheduler_object() -> None:
    modifier = Sangoi(
        SimpleNamespace(alphas_cumprod=torch.tensor([0.9, 0.5, 0.1], dtype=torch.float64))
    )
    assert list(modifier.state_dict()) == ["noise_schedule.snr_table"]
    torch.testing.assert_close(modifier.noise_schedule.snr_table, torch.tensor([9.0, 1.0, 1 / 9]))
    assert "reference_exact=False" in repr(modifier)


def test_half_precision_inputs_give_float32() -> None:
    loss, prediction, target, timesteps = _batch((2, 3, 4, 4))
    ctx = LossContext("mse", (prediction.half(), target.half()), timesteps=timesteps)
    out = Sangoi(SCHEDULE)(loss.half(), ctx)
    assert out.dtype == torch.float32
    assert Sangoi(SCHEDULE, upcast=False)(loss.half(), ctx).dtype == torch.float16


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_without_sync() -> None:
    loss, prediction, target, timesteps = _batch((4, 3, 8, 8))
    mask = torch.rand(4, 1, 8, 8) > 0.5
    cpu_ctx = LossContext("mse", (prediction, target), timesteps=timesteps, extra={"mask": mask})
    cuda_ctx = LossContext(
        "mse",
        (prediction.cuda(), target.cuda()),
        timesteps=timesteps.cuda(),
        extra={"mask": mask.cuda()},
    )
    modifier = Sangoi(NoiseSchedule.scaled_linear()).cuda()
    cuda_loss = loss.cuda()  # a copy from the host is a sync: before the check
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = modifier(cuda_loss, cuda_ctx)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(out.cpu(), Sangoi(SCHEDULE)(loss, cpu_ctx))


def test_compiled_weight_matches_eager() -> None:
    schedule = NoiseSchedule.scaled_linear()
    torch.manual_seed(0)
    prediction, target = torch.randn(4, 2, 8, 8), torch.randn(4, 2, 8, 8)
    context = LossContext("mse", (prediction, target), timesteps=torch.tensor([0, 10, 500, 999]))
    loss = torch.rand(4)
    eager, fused = Sangoi(schedule), Sangoi(schedule, use_compile=True)
    torch.testing.assert_close(fused(loss, context), eager(loss, context), rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="Sangoi: `use_compile` expected a bool, got int"):
        Sangoi(schedule, use_compile=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{}, {"reference_exact": True, "mask_key": None}, {"detach": False}, {"upcast": False}],
    ids=["default", "reference_exact", "no_detach", "no_upcast"],
)
@pytest.mark.parametrize("use_mask", [False, True], ids=["no_mask", "mask"])
def test_forward_compiles_as_one_graph_without_recompiling(
    options: dict[str, object], use_mask: bool
) -> None:
    """fullgraph=True traces the forward, checks included, once for repeated shapes."""
    if use_mask and options.get("reference_exact"):
        pytest.skip("reference_exact takes no mask")
    torch._dynamo.reset()
    counter = CompileCounter()
    module = Sangoi(SCHEDULE, **options)  # type: ignore[arg-type]
    compiled = torch.compile(module, fullgraph=True, backend=counter)
    for seed in range(3):
        loss, prediction, target, timesteps = _batch((4, 2, 8, 8), seed=seed)
        extra = {"mask": torch.rand(4, 1, 8, 8) > 0.3} if use_mask else {}
        context = LossContext("mse", (prediction, target), timesteps=timesteps, extra=extra)
        torch.testing.assert_close(compiled(loss, context), module(loss, context))
    assert counter.frame_count == 1

"""Tests for the SuperLoss modifier (running threshold, state, confidences)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy.special import lambertw as scipy_lambertw
from torch._dynamo.testing import CompileCounter
from torch.utils._python_dispatch import TorchDispatchMode

from nectarloss.functional import super_loss, super_loss_confidence
from nectarloss.modifiers import LossContext, SuperLoss

CONTEXT = LossContext("ce", (torch.zeros(3),))
BATCH_1 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)  # mean 2.0
BATCH_2 = torch.tensor([4.0, 6.0, 8.0], dtype=torch.float64)  # mean 6.0
# FastEstimator 'exp': first batch tau = 2.0, then tau = 2.0 - 0.1 * (2.0 - 6.0) = 2.4.
EXP_TAU_AFTER_2 = 2.4
# 'global': mean of batch means (2.0 + 6.0) / 2.
GLOBAL_TAU_AFTER_2 = 4.0


def _fastestimator_reference(losses: list[np.ndarray], lam: float) -> list[np.ndarray]:
    """Inline re-implementation of FastEstimator's SuperLoss (threshold='exp') with scipy.

    Uses the paper's max(-2/e, beta) cap (Castells et al. 2020; FastEstimator caps at
    -1.9999998/e), with W0(-1/e) = -1 exactly.
    """
    outputs, tau, initialized = [], 0.0, False
    for loss in losses:
        tau = tau - 0.1 * (tau - loss.mean()) if initialized else loss.mean()
        initialized = True
        beta = (loss - tau) / lam
        capped = beta <= -2.0 / math.e
        w = np.where(capped, -1.0, scipy_lambertw(0.5 * np.where(capped, 0.0, beta)).real)
        outputs.append((loss - tau) * np.exp(-w) + lam * w**2)
    return outputs


def test_constant_threshold_equals_functional() -> None:
    modifier = SuperLoss(threshold=math.log(10), regularization=0.5)
    loss = torch.rand(8) * 4
    torch.testing.assert_close(modifier(loss, CONTEXT), super_loss(loss, math.log(10), 0.5))
    torch.testing.assert_close(
        modifier.last_confidence, super_loss_confidence(loss, math.log(10), 0.5)
    )
    assert modifier.tau.item() == pytest.approx(math.log(10))


def test_exp_threshold_updates() -> None:
    modifier = SuperLoss("exp")
    modifier(BATCH_1, CONTEXT)
    assert modifier.tau_train.item() == pytest.approx(2.0)
    out = modifier(BATCH_2, CONTEXT)
    assert modifier.tau_train.item() == pytest.approx(EXP_TAU_AFTER_2)
    torch.testing.assert_close(out, super_loss(BATCH_2, EXP_TAU_AFTER_2, 1.0))
    assert bool(modifier.is_initialized_train) and int(modifier.count_train) == 2


def test_exp_matches_fastestimator_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.rand(16, generator=gen, dtype=torch.float64) * 5 for _ in range(5)]
    modifier = SuperLoss("exp", regularization=0.7)
    ours = [modifier(b, CONTEXT).numpy() for b in batches]
    reference = _fastestimator_reference([b.numpy() for b in batches], lam=0.7)
    for got, want in zip(ours, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_global_threshold_is_mean_of_batch_means() -> None:
    modifier = SuperLoss("global")
    modifier(BATCH_1, CONTEXT)
    modifier(BATCH_2, CONTEXT)
    assert modifier.tau_train.item() == pytest.approx(GLOBAL_TAU_AFTER_2)
    means = [float(x) for x in range(1, 101)]
    for m in means:
        modifier(torch.full((4,), m), CONTEXT)
    expected = (2.0 + 6.0 + sum(means)) / 102
    assert modifier.tau_train.item() == pytest.approx(expected, rel=1e-6)


def test_train_and_eval_thresholds_are_separate() -> None:
    modifier = SuperLoss("exp")
    modifier(BATCH_1, CONTEXT)
    modifier.eval()
    modifier(BATCH_2, CONTEXT)
    assert modifier.tau_train.item() == pytest.approx(2.0)
    assert modifier.tau_eval.item() == pytest.approx(6.0)
    assert modifier.tau is modifier.tau_eval
    modifier.train()
    assert modifier.tau is modifier.tau_train


def test_state_dict_round_trip() -> None:
    modifier = SuperLoss("exp", regularization=2.0)
    modifier(BATCH_1, CONTEXT)
    modifier(BATCH_2, CONTEXT)
    state = modifier.state_dict()
    assert set(state) == {
        "tau_train",
        "tau_eval",
        "is_initialized_train",
        "is_initialized_eval",
        "count_train",
        "count_eval",
    }
    restored = SuperLoss("exp", regularization=2.0)
    restored.load_state_dict(state)
    for key, value in state.items():
        assert torch.equal(restored.state_dict()[key], value)
    next_batch = torch.tensor([0.5, 1.5, 9.0], dtype=torch.float64)
    torch.testing.assert_close(restored(next_batch, CONTEXT), modifier(next_batch, CONTEXT))


def test_reset() -> None:
    modifier = SuperLoss("global")
    modifier(BATCH_2, CONTEXT)
    modifier.reset()
    assert modifier.tau_train.item() == 0.0
    assert not bool(modifier.is_initialized_train)
    assert int(modifier.count_train) == 0
    assert modifier.last_confidence.numel() == 0
    modifier(BATCH_1, CONTEXT)
    assert modifier.tau_train.item() == pytest.approx(2.0)
    constant = SuperLoss(1.5)
    constant.reset()
    assert constant.tau_train.item() == 1.5


def test_gradient_wrt_loss_is_confidence() -> None:
    modifier = SuperLoss("exp")
    loss = (torch.rand(32) * 3).requires_grad_(True)
    out = modifier(loss, CONTEXT)
    (grad,) = torch.autograd.grad(out.sum(), loss)
    assert torch.equal(grad, modifier.last_confidence)
    assert not modifier.last_confidence.requires_grad
    assert "last_confidence" not in modifier.state_dict()


def test_empty_batch_keeps_threshold_and_context_is_optional() -> None:
    modifier = SuperLoss("exp")
    modifier(BATCH_1)
    out = modifier(torch.empty(0, dtype=torch.float64))
    assert out.shape == (0,)
    assert modifier.tau_train.item() == pytest.approx(2.0)
    assert not SuperLoss.requires_timesteps


def test_half_loss_and_dtype_move() -> None:
    modifier = SuperLoss("exp")
    out = modifier(torch.tensor([1.0, 2.0], dtype=torch.float16))
    assert out.dtype == torch.float32
    assert modifier.to(torch.float64).tau_train.dtype == torch.float64
    assert modifier.is_initialized_train.dtype == torch.bool


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"threshold": "mean"},
            ValueError,
            r"SuperLoss: `threshold` expected a float or one of \('exp', 'global'\), got 'mean'",
        ),
        (
            {"threshold": True},
            TypeError,
            r"SuperLoss: `threshold` expected a float or one of \('exp', 'global'\), got bool True",
        ),
        (
            {"threshold": None},
            TypeError,
            r"`threshold` expected a float or one of .*, got NoneType",
        ),
        (
            {"threshold": math.nan},
            ValueError,
            r"SuperLoss: `threshold` expected a finite float, got nan",
        ),
        (
            {"regularization": 0.0},
            ValueError,
            r"SuperLoss: `regularization` expected a finite float > 0, got 0.0",
        ),
        (
            {"regularization": "1"},
            TypeError,
            r"SuperLoss: `regularization` expected a float > 0, got str",
        ),
        (
            {"momentum": 0.0},
            ValueError,
            r"SuperLoss: `momentum` expected a float in \(0, 1\], got 0.0",
        ),
    ],
)
def test_validation(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        SuperLoss(**kwargs)  # type: ignore[arg-type]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_state_and_no_sync() -> None:
    modifier = SuperLoss("exp").cuda()
    batches = [b.float().cuda() for b in (BATCH_1, BATCH_2)]  # copies from the host sync
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches:
            modifier(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert modifier.tau_train.device.type == "cuda"
    assert modifier.tau_train.item() == pytest.approx(EXP_TAU_AFTER_2)


def test_compiled_path_matches_eager() -> None:
    """`use_compile=True` fuses the math; results, tau and d out/d loss = sigma* agree."""
    torch.manual_seed(0)
    eager, fused = SuperLoss("exp"), SuperLoss("exp", use_compile=True)
    for _ in range(3):
        loss = (torch.rand(64) * 3).requires_grad_()
        a, b = eager(loss), fused(loss)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(eager.tau, fused.tau)
    loss = (torch.rand(64) * 3).requires_grad_()
    fused(loss).sum().backward()
    assert loss.grad is not None
    torch.testing.assert_close(loss.grad, fused.last_confidence, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="`use_compile` expected a bool, got str"):
        SuperLoss(use_compile="yes")  # type: ignore[arg-type]


# --------------------------------------------------- running state survives a bad batch
RUNNING_BUFFERS = ("tau", "is_initialized", "count")
BAD_BATCHES = {
    "nan": torch.tensor([1.0, math.nan, 3.0]),
    "posinf": torch.tensor([1.0, math.inf, 3.0]),
    "neginf": torch.tensor([-math.inf, 2.0, 3.0]),
    "all_nan": torch.full((3,), math.nan),
    "empty": torch.empty(0),
}


def _good_batches(seed: int, num: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(8, generator=gen) * 4 for _ in range(num)]


def _running_state(modifier: SuperLoss, mode: str) -> dict[str, torch.Tensor]:
    return {name: getattr(modifier, f"{name}_{mode}").clone() for name in RUNNING_BUFFERS}


def _assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    for name, value in want.items():
        assert torch.equal(got[name], value), f"{name}: {got[name]} != {value}"


@pytest.mark.parametrize("bad", list(BAD_BATCHES), ids=list(BAD_BATCHES))
@pytest.mark.parametrize("threshold", ["exp", "global"])
@pytest.mark.parametrize("sync_ranks", [False, True], ids=["fused", "sync_ranks"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_bad_batch_leaves_running_threshold_as_if_skipped(
    bad: str, threshold: str, sync_ranks: bool, mode: str
) -> None:
    """5 good batches, one bad, 3 good: tau equals (exactly) the run without the bad one."""
    before, after = _good_batches(0, 5), _good_batches(1, 3)
    hit = SuperLoss(threshold, sync_ranks=sync_ranks).train(mode == "train")
    skip = SuperLoss(threshold, sync_ranks=sync_ranks).train(mode == "train")
    for batch in before:
        hit(batch)
        skip(batch)
    out = hit(BAD_BATCHES[bad])
    assert out.shape == BAD_BATCHES[bad].shape
    _assert_same_state(_running_state(hit, mode), _running_state(skip, mode))
    for batch in after:
        torch.testing.assert_close(hit(batch), skip(batch), rtol=0.0, atol=0.0)
        _assert_same_state(_running_state(hit, mode), _running_state(skip, mode))
    assert bool(torch.isfinite(hit.tau))
    assert int(getattr(hit, f"count_{mode}")) == len(before) + len(after)


@pytest.mark.parametrize("threshold", ["exp", "global"])
def test_bad_batch_output_uses_the_previous_threshold(threshold: str) -> None:
    """The bad batch's output is still returned: NaN where the loss is, finite elsewhere."""
    modifier = SuperLoss(threshold)
    modifier(BATCH_1)
    tau_before = modifier.tau.clone()
    batch = torch.tensor([1.0, math.nan, 3.0], dtype=torch.float64)
    out = modifier(batch)
    torch.testing.assert_close(out, super_loss(batch, tau_before), equal_nan=True)
    assert torch.equal(torch.isnan(out), torch.tensor([False, True, False]))
    assert torch.equal(modifier.tau, tau_before)


@pytest.mark.parametrize("threshold", ["exp", "global"])
def test_bad_first_batch_does_not_initialize(threshold: str) -> None:
    modifier = SuperLoss(threshold)
    modifier(torch.tensor([math.nan, 1.0]))
    assert modifier.tau_train.item() == 0.0
    assert not bool(modifier.is_initialized_train)
    assert int(modifier.count_train) == 0
    modifier(BATCH_2)  # the first good batch sets tau to its mean
    assert modifier.tau_train.item() == pytest.approx(6.0)
    assert int(modifier.count_train) == 1


@pytest.mark.parametrize("threshold", ["exp", "global", 1.5])
@pytest.mark.parametrize("use_compile", [False, True], ids=["eager", "compiled"])
def test_empty_batch_returns_empty_and_keeps_state(
    threshold: float | str, use_compile: bool
) -> None:
    modifier = SuperLoss(threshold, use_compile=use_compile)
    fresh = {k: v.clone() for k, v in modifier.state_dict().items()}
    out = modifier(torch.empty(0))  # before any batch
    assert out.shape == (0,)
    assert modifier.last_confidence.shape == (0,)
    for key, value in modifier.state_dict().items():
        assert torch.equal(value, fresh[key]), key
    modifier(BATCH_1)
    state = {k: v.clone() for k, v in modifier.state_dict().items()}
    loss = torch.empty(0, dtype=torch.float64, requires_grad=True)
    out = modifier(loss)
    assert out.shape == (0,)
    out.sum().backward()
    assert loss.grad is not None and loss.grad.shape == (0,)
    for key, value in modifier.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_compiled_bad_batch_is_skipped() -> None:
    """Compiled: the NaN batch is skipped exactly; eager agrees up to fusion rounding."""
    hit, skip = SuperLoss("global", use_compile=True), SuperLoss("global", use_compile=True)
    eager = SuperLoss("global")
    good_before, good_after = _good_batches(2, 2), _good_batches(3, 2)
    for batch in [*good_before, BAD_BATCHES["nan"], *good_after]:
        out = hit(batch)
        torch.testing.assert_close(out, eager(batch), equal_nan=True)
    for batch in [*good_before, *good_after]:
        skip(batch)
    _assert_same_state(_running_state(hit, "train"), _running_state(skip, "train"))
    torch.testing.assert_close(hit.tau, eager.tau)
    assert int(hit.count_train) == 4


# ---------------------------------------------------- eager op budget and torch.compile
#: Issue 14: the eager forward at batch 256 stays within 40 aten ops (it is dispatch-bound
#: there, so the op count is its cost; op counts are deterministic, wall times are not).
MAX_FORWARD_ATEN_OPS = 40
THRESHOLDS = ["exp", "global", 1.5]


class _AtenOpCounter(TorchDispatchMode):  # type: ignore[misc]
    """Counts every aten op dispatched inside the block (views and in-place ops included)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_forward_at_batch_256_stays_within_the_aten_op_budget(
    threshold: float | str, mode: str
) -> None:
    modifier = SuperLoss(threshold).train(mode == "train")
    loss = (torch.rand(256) * 3).requires_grad_()
    modifier(loss)  # the first call too, but count a steady-state one
    with _AtenOpCounter() as counter:
        modifier(loss)
    assert len(counter.ops) <= MAX_FORWARD_ATEN_OPS, counter.ops


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_forward_compiles_as_one_graph_without_recompiling(
    threshold: float | str, mode: str
) -> None:
    """fullgraph=True traces the whole forward (state updates included), once per shape."""
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled_module = SuperLoss(threshold).train(mode == "train")
    eager = SuperLoss(threshold).train(mode == "train")
    compiled = torch.compile(compiled_module, fullgraph=True, backend=counter)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        loss = torch.rand(32, generator=gen) * 3
        torch.testing.assert_close(compiled(loss), eager(loss))
        torch.testing.assert_close(compiled_module.last_confidence, eager.last_confidence)
    assert counter.frame_count == 1
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(compiled_module.state_dict()[key], value)


def test_compiled_forward_keeps_the_exact_gradient() -> None:
    """Through AOTAutograd (backend "aot_eager") d out / d loss is still sigma*."""
    torch._dynamo.reset()
    modifier = SuperLoss("exp")
    compiled = torch.compile(modifier, fullgraph=True, backend="aot_eager")
    for _ in range(2):
        loss = (torch.rand(16) * 3).requires_grad_()
        compiled(loss).sum().backward()
        assert loss.grad is not None
        torch.testing.assert_close(loss.grad, modifier.last_confidence, rtol=0.0, atol=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_at_the_threshold_gives_exactly_zero(dtype: torch.dtype) -> None:
    modifier = SuperLoss(1.25, regularization=0.3)
    loss = torch.tensor([1.25, 0.0, 4.0], dtype=dtype)
    assert modifier(loss)[0].item() == 0.0
    assert super_loss(loss, 1.25, 0.3)[0].item() == 0.0
    assert modifier.last_confidence[0].item() == pytest.approx(1.0, abs=1e-7)

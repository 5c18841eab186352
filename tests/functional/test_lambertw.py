"""Tests for nectarloss.functional.lambertw (principal branch W0)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import lambertw as scipy_lambertw

from nectarloss.functional import lambertw
from nectarloss.functional.lambertw import _neg_lambertw
from nectarloss.testing import SyncCounter

BRANCH_POINT = -math.exp(-1.0)  # W0(-1/e) = -1
OMEGA = 0.5671432904097838  # omega constant W0(1), OEIS A030178
W_1E10 = 20.02868541330495  # scipy.special.lambertw(1e10)
W_1E30 = 64.90463377004612  # scipy.special.lambertw(1e30)
REL_TOL_FLOAT32 = 1e-6
REL_TOL_FLOAT64 = 1e-12
# scipy.special.lambertw of the largest finite floats (float32 max, float64 max).
W_FLOAT32_MAX = 84.28859251630837
W_FLOAT64_MAX = 703.2270331047702


def _grid(dtype: torch.dtype) -> np.ndarray:
    """Dense grid over the domain: near the branch point, around 0, large values."""
    top = 38 if dtype == torch.float32 else 300
    near_branch = BRANCH_POINT + math.exp(-1.0) * np.logspace(-15, 0, 2000)
    return np.concatenate(
        [
            near_branch,
            np.linspace(-0.36, 10.0, 20000),
            np.logspace(-30, top, 4000),
            -np.logspace(-30, math.log10(0.36), 1000),
        ]
    )


def _rel_err(w: torch.Tensor, ref: np.ndarray) -> np.ndarray:
    got = w.double().numpy()
    return np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)


def test_float64_matches_scipy_on_dense_grid() -> None:
    x = torch.tensor(_grid(torch.float64), dtype=torch.float64)
    x = x[x >= -0.36]  # scipy itself loses digits closer to -1/e (see the mpmath test)
    ref = scipy_lambertw(x.numpy()).real
    assert _rel_err(lambertw(x), ref).max() <= REL_TOL_FLOAT64


def test_float64_near_branch_point_matches_mpmath() -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    x = torch.tensor(_grid(torch.float64), dtype=torch.float64)
    x = x[(x < -0.35) & (x >= BRANCH_POINT)][::10]
    ref = np.array([float(mpmath.lambertw(mpmath.mpf(float(v))).real) for v in x.tolist()])
    assert _rel_err(lambertw(x), ref).max() <= REL_TOL_FLOAT64


def test_float32_matches_scipy_on_dense_grid() -> None:
    x = torch.tensor(_grid(torch.float32), dtype=torch.float32)
    x = x[torch.isfinite(x) & (x >= BRANCH_POINT)]
    ref = scipy_lambertw(x.double().numpy()).real  # exact W of the float32 inputs
    assert _rel_err(lambertw(x), ref).max() <= REL_TOL_FLOAT32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_special_values(dtype: torch.dtype) -> None:
    x = torch.tensor([BRANCH_POINT, 0.0, 1.0, math.e, 1e10, 1e30], dtype=dtype)
    expected = torch.tensor([-1.0, 0.0, OMEGA, 1.0, W_1E10, W_1E30], dtype=dtype)
    tol = REL_TOL_FLOAT32 if dtype == torch.float32 else REL_TOL_FLOAT64
    torch.testing.assert_close(lambertw(x), expected, rtol=tol, atol=tol)


def test_large_float64_and_edge_inputs() -> None:
    x = torch.tensor([1e300, math.inf, math.nan, -1.0, -math.inf], dtype=torch.float64)
    w = lambertw(x)
    assert w[0].item() == pytest.approx(scipy_lambertw(1e300).real, rel=REL_TOL_FLOAT64)
    assert w[1].item() == math.inf
    assert math.isnan(w[2].item())
    # Below -1/e W0 is not real: the argument is clamped to the branch point.
    assert w[3].item() == -1.0 and w[4].item() == -1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    x = torch.tensor([-0.2, 0.5, 3.0], dtype=dtype)
    w = lambertw(x)
    assert w.dtype == dtype
    torch.testing.assert_close(w, lambertw(x.float()).to(dtype))


def test_rejects_non_float_input() -> None:
    with pytest.raises(TypeError, match=r"lambertw: `x` expected a floating-point Tensor"):
        lambertw(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match=r"lambertw: `x` expected a Tensor, got float"):
        lambertw(1.0)  # type: ignore[arg-type]


def test_gradcheck_float64() -> None:
    x = torch.tensor([-0.3, -0.1, 0.0, 0.5, 1.0, 10.0, 1e3], dtype=torch.float64)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambertw, (x,))
    assert torch.autograd.gradgradcheck(lambertw, (x,))


def test_gradient_is_analytic() -> None:
    x = torch.tensor([-0.2, 0.3, 2.0, 50.0], dtype=torch.float64, requires_grad=True)
    w = lambertw(x)
    (grad,) = torch.autograd.grad(w.sum(), x)
    expected = w.detach() / (x.detach() * (1.0 + w.detach()))  # dW/dx = W / (x (1 + W))
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=0.0)
    x0 = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (grad0,) = torch.autograd.grad(lambertw(x0).sum(), x0)
    assert grad0.item() == 1.0  # dW/dx at 0


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=BRANCH_POINT, max_value=1e15, allow_nan=False))
def test_inverse_identity(value: float) -> None:
    x = torch.tensor([value], dtype=torch.float64)
    w = lambertw(x)
    assert w.item() >= -1.0
    torch.testing.assert_close(w * torch.exp(w), x, rtol=1e-12, atol=1e-15)


def test_no_host_sync() -> None:
    x = torch.linspace(-0.3, 50.0, 128, requires_grad=True)
    with SyncCounter() as counter:
        lambertw(x).sum().backward()
    assert counter.scalar_reads == 0
    assert counter.host_copies == 0


def test_shape_preserved() -> None:
    x = torch.rand(2, 3, 4)
    assert lambertw(x).shape == (2, 3, 4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_without_sync() -> None:
    x = torch.tensor(_grid(torch.float32), dtype=torch.float32)
    x = x[torch.isfinite(x)]
    x_cuda = x.cuda()
    torch.cuda.set_sync_debug_mode("error")
    try:
        w_cuda = lambertw(x_cuda)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(w_cuda.cpu(), lambertw(x), rtol=1e-6, atol=1e-7)


def test_gradient_below_branch_point_is_zero() -> None:
    x = torch.tensor([-1.0, -0.5], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(lambertw(x).sum(), x)
    assert torch.equal(grad, torch.zeros(2, dtype=torch.float64))


def _mpmath_w(values: list[float]) -> np.ndarray:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    branch = -mpmath.exp(-1)
    return np.array(
        [
            -1.0 if mpmath.mpf(v) <= branch else float(mpmath.lambertw(mpmath.mpf(v)).real)
            for v in values
        ]
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_near_branch_point_matches_mpmath(dtype: torch.dtype) -> None:
    """The first floats above -1/e, and distances up to 0.1: W is ~-1 + sqrt(2 (e x + 1))."""
    start = torch.tensor(BRANCH_POINT, dtype=dtype)
    steps = torch.arange(0, 64, dtype=dtype)
    first_floats = start + steps * torch.finfo(dtype).eps * 0.25  # a few ulps at a time
    spread = BRANCH_POINT + math.exp(-1.0) * torch.logspace(-15, -1, 200, dtype=torch.float64)
    x = torch.cat([first_floats, spread.to(dtype)])
    x = x[x >= start]
    ref = _mpmath_w(x.double().tolist())  # W of the exact float inputs
    tol = REL_TOL_FLOAT32 if dtype == torch.float32 else REL_TOL_FLOAT64
    assert _rel_err(lambertw(x), ref).max() <= tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_inputs_up_to_the_largest_float(dtype: torch.dtype) -> None:
    """Where e x overflows the iteration must not (no NaN, no inf, still accurate)."""
    info = torch.finfo(dtype)
    top = math.log10(info.max)
    x = torch.cat(
        [
            torch.logspace(top - 3, top, 500, dtype=torch.float64).clamp(max=info.max).to(dtype),
            torch.tensor([info.max, info.max / math.e, info.max / (2 * math.e)], dtype=dtype),
        ]
    )
    w = lambertw(x)
    assert torch.isfinite(w).all()
    ref = scipy_lambertw(x.double().numpy()).real
    tol = REL_TOL_FLOAT32 if dtype == torch.float32 else REL_TOL_FLOAT64
    assert _rel_err(w, ref).max() <= tol
    expected = W_FLOAT32_MAX if dtype == torch.float32 else W_FLOAT64_MAX
    top_w = lambertw(torch.tensor([info.max], dtype=dtype)).item()
    assert top_w == pytest.approx(expected, rel=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_and_subnormal_inputs_keep_relative_precision(dtype: torch.dtype) -> None:
    info = torch.finfo(dtype)
    x = torch.tensor([info.tiny, info.tiny / 8, info.eps, 1e-20, -1e-20, 1e-6, -1e-6], dtype=dtype)
    w = lambertw(x)
    ref = scipy_lambertw(x.double().numpy()).real
    tol = REL_TOL_FLOAT32 if dtype == torch.float32 else REL_TOL_FLOAT64
    assert _rel_err(w, ref).max() <= tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_nan_anywhere_on_the_domain(dtype: torch.dtype) -> None:
    """Every float in [-1/e, max] (a dense sample, both signs of zero) gives a finite W."""
    info = torch.finfo(dtype)
    top = math.log10(info.max)
    magnitudes = torch.logspace(math.log10(info.tiny) - 5, top, 20000, dtype=torch.float64)
    x = torch.cat(
        [
            magnitudes.clamp(max=info.max).to(dtype),
            -magnitudes[magnitudes < 0.3678].to(dtype),
            torch.linspace(BRANCH_POINT, 3.0, 20001, dtype=torch.float64).to(dtype),
            torch.tensor([0.0, -0.0, BRANCH_POINT, info.max], dtype=dtype),
        ]
    )
    x = x[x >= torch.tensor(BRANCH_POINT, dtype=dtype)]
    w = lambertw(x)
    assert torch.isfinite(w).all()
    assert (w >= -1.0).all()
    # W is increasing; rounding may repeat a value but never step back by more than an ulp.
    order = torch.sort(x).indices
    steps = torch.diff(w[order])
    assert (steps >= -4 * info.eps * w[order][1:].abs().clamp(min=1.0)).all()


def test_exact_values_at_the_branch_point_and_zero() -> None:
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([BRANCH_POINT, -1.0, 0.0, -0.0], dtype=dtype)
        w = lambertw(x)
        assert w.tolist() == [-1.0, -1.0, 0.0, 0.0]
        assert math.copysign(1.0, w[3].item()) == -1.0  # W(-0.0) = -0.0


@pytest.mark.parametrize(
    ("x", "step"),
    [  # finite-difference steps well inside each point's distance to the singularity
        (BRANCH_POINT + 1e-6, 1e-10),
        (BRANCH_POINT + 1e-3, 1e-7),
        (-0.3, 1e-6),
        (1e10, 1e3),
        (1e100, 1e93),
        (1e300, 1e293),
    ],
)
def test_gradcheck_near_branch_point_and_for_huge_x(x: float, step: float) -> None:
    point = torch.tensor([x], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambertw, (point,), eps=step, atol=1e-8, rtol=1e-4)
    (grad,) = torch.autograd.grad(lambertw(point).sum(), point)
    w = lambertw(point.detach())
    torch.testing.assert_close(grad, w / (point.detach() * (1.0 + w)), rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cached_scalar_operands_give_the_same_bits_as_floats(dtype: torch.dtype) -> None:
    """Eager mode uses cached 0-d tensors for constants; compiled code the floats, or 0-d
    tensors created in the graph where an op takes a constant only as a tensor."""
    torch._dynamo.reset()
    x = torch.tensor(_grid(dtype), dtype=dtype)
    x = x[torch.isfinite(x)]
    traced = torch.compile(lambertw, backend="eager", fullgraph=True)  # runs the float path
    assert torch.equal(lambertw(x), traced(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_both_starting_guess_forms_agree(dtype: torch.dtype) -> None:
    """``_neg_lambertw`` forms ``kappa p^2 / spread`` in one op when ``c <= 1 / (2 kappa)``
    (SuperLoss passes ``c = 1/2``) and as ``p (p / spread)`` otherwise (``lambertw``'s
    ``c = e``, whose ``v`` reaches the largest float); both give the same ``W``."""
    x = torch.tensor(np.linspace(-0.36, 50.0, 4001), dtype=dtype)
    shift = x + math.exp(-1.0)  # c v = e x + 1 with c = e, v = x + 1/e
    p = (2.0 * math.e * shift).sqrt()
    general = _neg_lambertw(p, shift, math.e)
    fused = _neg_lambertw(p, 2.0 * math.e * shift, 0.5)  # c = 1/2, v = 2 (e x + 1)
    tol = REL_TOL_FLOAT32 if dtype == torch.float32 else REL_TOL_FLOAT64
    torch.testing.assert_close(fused, general, rtol=tol, atol=tol)

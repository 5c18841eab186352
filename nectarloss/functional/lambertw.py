"""The principal branch of the Lambert W function in pure torch.

:func:`lambertw` solves ``w * exp(w) = x`` for ``w >= -1`` (the branch ``W0``). A closed-form
starting guess good to about 1% everywhere is refined by a fixed number of Halley steps
(one in float32, two in float64), so there is no data-dependent loop, nothing reads back
to the host, and the whole computation is a short chain of elementwise ops (few enough
that the eager path is cheap at small batch sizes, and one fused kernel when compiled).

Everything is written in ``x + 1/e`` and ``s = -(1 + W)``, both computed without
cancellation near the branch point ``x = -1/e`` (where ``W`` has a square-root
singularity), which is what keeps the result accurate there; the guess uses the
branch-point series variable ``p = sqrt(2 (e x + 1))`` (Corless et al. 1996).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["lambertw"]

#: ``-1/e = hi + lo`` with ``hi`` representable in the dtype; ``x - hi`` is then exact near
#: the branch point (Sterbenz), so ``x + 1/e`` keeps full precision there.
_BRANCH_POINT_SPLIT = {
    torch.float32: (-0.3678794503211975, 9.149755188170102e-09),
    torch.float64: (-0.36787944117144233, 1.2428753672788363e-17),
}
#: Halley steps after the starting guess: its error of at most ~1.2e-2 in ``1 + W`` falls
#: below 1e-7 after one step (float32) and to rounding after two (float64).
_NUM_HALLEY_STEPS = {torch.float32: 1, torch.float64: 2}
#: Starting guess ``1 + W ~ log1p(p + kappa p^2 / log(beta + gamma p))`` with
#: ``p = sqrt(2 (e x + 1))``. Near the branch point it follows the series
#: ``1 + W = p - p^2/3 + ...``; for large ``x`` the asymptote ``W ~ log(x) - log(log(x))``.
#: The three constants minimise the largest relative error of ``1 + W`` after one Halley
#: step over ``[-1/e, 1.8e308]`` (fitted offline with Nelder-Mead against
#: ``scipy.special.lambertw``, and mpmath near the branch point).
_GUESS_BETA = 7.00720547218563
_GUESS_GAMMA = 0.25552876244119943
_GUESS_KAPPA = 0.27106060494238965
_SQRT_2E = math.sqrt(2.0 * math.e)
#: On ``(-0.25, 2)``, i.e. ``|x - center| < half_width``, ``W`` is returned as ``x e^-W``:
#: exact at 0 and accurate relative to tiny ``W`` (the iteration itself is accurate in
#: absolute terms, as ``1 + W``). Elsewhere, the branch point included, ``-s - 1`` is.
_SMALL_X_WINDOW = (0.875, 1.125)

#: Cached 0-d tensors for :func:`_scalar_operands`, per (device, dtype, values).
_SCALAR_OPERANDS: dict[tuple[torch.device, torch.dtype, tuple[float, ...]], tuple[Tensor, ...]] = {}
_MAX_SCALAR_OPERANDS = 64


def _scalar_operands(ref: Tensor, values: tuple[float, ...]) -> tuple[Tensor | float, ...]:
    """``values`` as cached 0-d tensors in ``ref``'s dtype and on its device (eager mode).

    A Python number in a tensor position (``x + 2.0``) is wrapped into a new 0-d tensor
    at every call, which at small batch sizes costs about as much as the op itself; a
    cached 0-d tensor of the same value skips that and gives bitwise the same result.
    ``torch.full`` launches a fill, never a copy, so creating one never synchronises.
    The tensors are only ever read. Under ``torch.compile``, for tensor subclasses
    (fake tensors included) and while a CUDA graph is captured (its memory is the
    graph's) the floats are returned as they are.
    """
    if not _can_cache(ref):
        return values
    return _cached_operands(ref, values)


def _tensor_operands(ref: Tensor, values: tuple[float, ...]) -> tuple[Tensor, ...]:
    """``values`` as 0-d tensors in ``ref``'s dtype and on its device, for tensor-only slots.

    Some ops take a constant only as a tensor (``torch.addcmul(beta, p, gamma)``, where a
    float would need an extra op). In eager mode these are the cached tensors of
    :func:`_scalar_operands`; where caching is off (see there) they are created by
    ``torch.full`` at each call (a fill inside the compiled graph or the captured one).
    """
    if _can_cache(ref):
        return _cached_operands(ref, values)
    return tuple(torch.full((), v, dtype=ref.dtype, device=ref.device) for v in values)


def _can_cache(ref: Tensor) -> bool:
    """Whether constants for ``ref`` may come from the cache (plain eager tensors only)."""
    if torch.compiler.is_compiling() or type(ref) is not Tensor:
        return False
    return not (ref.is_cuda and torch.cuda.is_current_stream_capturing())


def _cached_operands(ref: Tensor, values: tuple[float, ...]) -> tuple[Tensor, ...]:
    key = (ref.device, ref.dtype, values)
    operands = _SCALAR_OPERANDS.get(key)
    if operands is None:
        if len(_SCALAR_OPERANDS) >= _MAX_SCALAR_OPERANDS:  # e.g. many regularizations
            _SCALAR_OPERANDS.clear()
        with torch.inference_mode(False), torch.no_grad():
            operands = tuple(torch.full((), v, dtype=ref.dtype, device=ref.device) for v in values)
        _SCALAR_OPERANDS[key] = operands
    return operands


def _neg_lambertw(p: Tensor, v: Tensor, c: float) -> Tensor:
    """``-W0(x)`` from ``p = sqrt(2 (e x + 1)) > 0`` and ``c * v = e x + 1 = p^2 / 2``.

    Callers pass ``v`` and ``c`` so that ``c * v`` never overflows (``e x + 1`` does for
    the largest inputs): :func:`lambertw` passes ``v = x + 1/e`` with ``c = e``. ``p``
    must be positive (callers clamp ``v`` to at least the smallest normal number, which
    moves ``W`` by ~1e-154 in float64 at the branch point).

    Halley's method on ``f(s) = expm1(s) - s - c v e^s`` in ``s = -(1 + W)``, the form of
    ``W e^W = x`` that loses no digits near the branch point: there ``s``,
    ``expm1(s) - s`` and ``v`` are all small and known to full relative precision. With
    ``f' = expm1(s) - c v e^s`` and ``f'' = f' + 1`` a step is

        ``s <- s - f / (f' - f (f' + 1) / (2 f'))``

    written below with ``fm = f'`` and ``g = s - fm = -f``; ``v > 0`` keeps ``f' < 0``, so
    no step divides by zero.
    """
    # Constants as 0-d tensors (a Python float in a tensor slot, or in `alpha=`, costs a
    # conversion per call); `value=` takes only numbers.
    beta, gamma, half, one = _tensor_operands(p, (_GUESS_BETA, _GUESS_GAMMA, 0.5, 1.0))
    # Starting guess (see _GUESS_*): 1 + W = log1p(r), s = -(1 + W).
    spread = torch.addcmul(beta, p, gamma).log_()
    kappa_p2 = 2.0 * c * _GUESS_KAPPA  # kappa p^2 = kappa_p2 * v
    if kappa_p2 <= 1.0:  # (kappa_p2 * v) / spread cannot overflow: one op
        # The method, not torch.addcdiv(..., value=): dynamo rewrites that function
        # into add(div) (other rounding), and compiled code must give eager's bits.
        r = p.addcdiv(v, spread, value=kappa_p2)
    else:  # lambertw's v reaches the largest float: p (p / spread), never above it
        r = torch.addcmul(p, p, p.div(spread), value=_GUESS_KAPPA)
    s = r.log1p_().neg_()
    for _ in range(_NUM_HALLEY_STEPS[p.dtype]):
        # v is the second factor: (c e^s) v never overflows, whichever product comes first.
        fm = torch.addcmul(torch.expm1(s), torch.exp(s), v, value=-c)  # f'
        g = torch.sub(s, fm)  # -f, as f = f' - s
        denominator = torch.addcmul(fm, g, half).addcdiv_(g, fm, value=0.5)
        s = s.addcdiv(g, denominator)
    return s.add_(one)


def _shift_of(x: Tensor) -> Tensor:
    """``x + 1/e``, exact near ``x = -1/e``, at least the smallest normal number."""
    hi, lo = _scalar_operands(x, _BRANCH_POINT_SPLIT[x.dtype])
    # (x - hi) is exact near the branch point (Sterbenz); 1/e = -hi - lo.
    return (x - hi).sub_(lo).clamp_min_(torch.finfo(x.dtype).tiny)


def _lambertw(x: Tensor) -> Tensor:
    """Forward value of ``W0`` (no autograd), in the dtype of ``x`` (float32 or float64)."""
    x = x.clamp_min(_BRANCH_POINT_SPLIT[x.dtype][0])
    shift = _shift_of(x)
    (sqrt_2e,) = _scalar_operands(x, (_SQRT_2E,))
    neg_w = _neg_lambertw(shift.sqrt().mul_(sqrt_2e), shift, math.e)
    # x e^-W equals W; for small |x| it keeps W's relative precision and W(0) = 0 exactly.
    center, half_width = _SMALL_X_WINDOW
    w = torch.where((x - center).abs() < half_width, x * neg_w.exp(), neg_w.neg())
    return torch.where(torch.isposinf(x), x, w)  # +inf maps to +inf; NaN stays NaN


class _LambertW(torch.autograd.Function):
    """``W0`` with the analytic derivative ``dW/dx = exp(-W) / (1 + W)``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        w = _lambertw(x)
        ctx.save_for_backward(x, w)
        return w

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        x: Tensor = ctx.saved_tensors[0]
        w: Tensor = ctx.saved_tensors[1]
        # exp(-W) / (1 + W) equals W / (x (1 + W)) and stays finite at x = 0. Writing it
        # with the saved output keeps it differentiable (double backward works).
        grad = grad_output * torch.exp(-w) / (1.0 + w)
        # Below -1/e the input was clamped: the output does not depend on it there.
        below = x < _BRANCH_POINT_SPLIT[x.dtype][0]
        return torch.where(below, torch.zeros_like(grad), grad)


def lambertw(x: Tensor) -> Tensor:
    """Principal branch ``W0`` of the Lambert W function, elementwise.

    Solves ``w * exp(w) = x`` with ``w >= -1``. A closed-form starting guess in
    ``p = sqrt(2 (e x + 1))`` (the branch-point series variable), good to about 1%
    everywhere, is refined by Halley steps on a form of the equation that stays exact
    near the branch point: one step in float32, two in float64, always (no
    data-dependent loop, no host synchronisation). Relative accuracy is about 1e-7 in
    float32 and 1e-15 in float64 over ``[-1/e, inf)``, including the branch point, tiny
    ``|x|`` and the largest finite inputs.

    Inputs below ``-1/e``, where ``W0`` is not real, are clamped to ``-1/e`` (so the result
    is ``-1``, exactly at the branch point), which is what SuperLoss needs. ``W(0) = 0``
    exactly, ``+inf`` maps to ``+inf`` and NaN stays NaN. ``float16`` and ``bfloat16``
    inputs are computed in ``float32`` and cast back.

    The gradient is the analytic ``dW/dx = exp(-W) / (1 + W)`` (equal to
    ``W / (x (1 + W))``), infinite at the branch point and 0 below it (where the input is
    clamped); it supports double backward.

    Args:
        x: Input tensor of any shape, floating point.

    Returns:
        ``W0(x)``, same shape and dtype as ``x``.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor.

    Example:
        >>> lambertw(torch.tensor([-math.exp(-1.0), 0.0, math.e], dtype=torch.float64))
        tensor([-1.,  0.,  1.], dtype=torch.float64)

    Reference:
        Corless, Gonnet, Hare, Jeffrey, Knuth, "On the Lambert W function", Advances in
        Computational Mathematics 5 (1996). Iacono, Boyd, "New approximations to the
        principal real-valued branch of the Lambert W-function", Advances in
        Computational Mathematics 43 (2017).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"lambertw: `x` expected a Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(f"lambertw: `x` expected a floating-point Tensor, got {x.dtype}.")
    if x.dtype not in _BRANCH_POINT_SPLIT:  # float16, bfloat16: compute in float32
        out: Tensor = _LambertW.apply(x.float())  # type: ignore[no-untyped-call]
        return out.to(x.dtype)
    result: Tensor = _LambertW.apply(x)  # type: ignore[no-untyped-call]
    return result

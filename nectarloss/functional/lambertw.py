"""The principal branch of the Lambert W function in pure torch.

:func:`lambertw` solves ``w * exp(w) = x`` for ``w >= -1`` (the branch ``W0``). It runs a
fixed number of Halley steps from a good initial guess, so it has no data-dependent loop,
never synchronises with the host, and traces cleanly under ``torch.compile``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["lambertw"]

#: Below this ``p = sqrt(2 (e x + 1))`` the branch-point series is the initial guess.
_SERIES_P_MAX = 0.8
#: Below this ``p`` the series alone is exact to double precision (no Halley step). Close
#: to the branch point Halley's steps lose accuracy (``w e^w - x`` cancels, ``w + 1 -> 0``).
_SERIES_ONLY_P_MAX = 0.3
#: Halley steps from the initial guess (cubic convergence: 1e-2 -> 1e-6 -> 1e-18).
_NUM_HALLEY_STEPS = 3
#: Coefficients of ``W0`` in powers of ``p`` around the branch point: -1, 1, -1/3, 11/72,
#: -43/540, 769/17280, ... (Corless et al. 1996, eqs. 4.22-4.24, recurrence evaluated in
#: exact rational arithmetic). 24 terms: truncation error < 1e-16 for p < 0.3.
_BRANCH_SERIES = (
    -1.0,
    1.0,
    -0.3333333333333333,
    0.1527777777777778,
    -0.07962962962962963,
    0.044502314814814814,
    -0.02598471487360376,
    0.01563563253233392,
    -0.009616892024299432,
    0.006014543252956118,
    -0.0038112980348919993,
    0.0024408779911439826,
    -0.0015769303446867841,
    0.0010262633205076071,
    -0.0006720616311561362,
    0.0004424730618146209,
    -0.00029267722472962746,
    0.00019438727605453933,
    -0.00012957426685274883,
    8.665035805208128e-05,
    -5.811360750441382e-05,
    3.907668486743905e-05,
    -2.63380647472311e-05,
    1.7790345805079586e-05,
)

#: ``-1/e = hi + lo`` with ``hi`` representable in the dtype; ``x - hi`` is then exact near
#: the branch point (Sterbenz), so ``x + 1/e`` keeps full precision there.
_BRANCH_POINT_SPLIT = {
    torch.float32: (-0.3678794503211975, 9.149755188170102e-09),
    torch.float64: (-0.36787944117144233, 1.2428753672788363e-17),
}


def _branch_series(p: Tensor) -> Tensor:
    """Evaluate the branch-point series at ``p`` by Horner's rule."""
    out = torch.full_like(p, _BRANCH_SERIES[-1])
    for coefficient in reversed(_BRANCH_SERIES[:-1]):
        out = out * p + coefficient
    return out


def _winitzki(x: Tensor) -> Tensor:
    """Winitzki's guess ``L (1 - log(1 + L) / (2 + L))``, ``L = log(1 + x)``.

    Within a few percent of ``W0`` from ``x = -0.25`` up to the largest floats, where it
    tends to ``log(x) - log(log(x))``.
    """
    log1p_x = torch.log1p(x.clamp(min=-0.25))
    return log1p_x * (1.0 - torch.log1p(log1p_x) / (2.0 + log1p_x))


def _halley_step(w: Tensor, x: Tensor) -> Tensor:
    """One Halley step on ``w e^w - x``, divided through by ``e^w`` so nothing overflows."""
    residual = w - x * torch.exp(-w)  # (w e^w - x) / e^w
    w_plus_1 = w + 1.0
    # w + 1 is 0 only at the branch point, where the series value is kept (see _lambertw).
    safe_w_plus_1 = torch.where(w_plus_1 == 0, torch.ones_like(w_plus_1), w_plus_1)
    denominator = safe_w_plus_1 - residual * (w + 2.0) / (2.0 * safe_w_plus_1)
    safe_denominator = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return w - residual / safe_denominator


def _lambertw(x: Tensor) -> Tensor:
    """Forward value of ``W0`` (no autograd), in the dtype of ``x``."""
    hi, lo = _BRANCH_POINT_SPLIT[x.dtype]
    x = x.clamp(min=hi)
    # p = sqrt(2 (e x + 1)) = sqrt(2 e (x + 1/e)), with x + 1/e = (x - hi) - lo computed
    # without the cancellation that e x + 1 suffers near the branch point.
    distance = ((x - hi) - lo).clamp(min=0.0)
    p = torch.sqrt((2.0 * math.e) * distance)
    series = _branch_series(p)
    w = torch.where(p < _SERIES_P_MAX, series, _winitzki(x))
    for _ in range(_NUM_HALLEY_STEPS):
        w = _halley_step(w, x)
    w = torch.where(p < _SERIES_ONLY_P_MAX, series, w)
    # Exact special values: W(0) = 0 keeps the sign of zero; +inf maps to +inf.
    w = torch.where(x == 0, x, w)
    return torch.where(torch.isposinf(x), x, w)


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

    Solves ``w * exp(w) = x`` with ``w >= -1``. The initial guess is the series in
    ``p = sqrt(2 (e x + 1))`` around the branch point ``x = -1/e`` (for ``p < 0.8``) and
    Winitzki's ``log1p``-based approximation elsewhere, which tends to
    ``log(x) - log(log(x))`` for large ``x``. Three Halley steps follow, always (no
    data-dependent loop, no host synchronisation). Within ``p < 0.3`` of the branch point
    the 24-term series alone is used, which is exact there to double precision.

    Inputs below ``-1/e``, where ``W0`` is not real, are clamped to ``-1/e`` (so the result
    is ``-1``, exactly at the branch point), which is what SuperLoss needs. ``+inf`` maps to
    ``+inf`` and NaN stays NaN. ``float16`` and ``bfloat16`` inputs are computed in
    ``float32`` and cast back.

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
        Computational Mathematics 5 (1996). Winitzki, "Uniform approximations for
        transcendental functions", ICCSA 2003.
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

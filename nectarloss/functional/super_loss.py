"""SuperLoss: confidence-aware per-sample loss for curriculum and noisy-label learning.

The pure functions here take the threshold ``tau`` as an input; the running estimate of
``tau`` (exponential or global average) is state, kept in buffers by
:class:`nectarloss.modifiers.SuperLoss`. Module and functions share the private helpers
below (``_confidence``, ``_combine``, ``_running_threshold``, ``_super_loss_step``).

The math is written for the eager path at small batches, where each tensor op costs a
few microseconds of dispatch whatever its size: a float32 SuperLoss forward with a
running threshold is 34 aten ops, the Lambert W included (see
:func:`~nectarloss.functional.lambertw`), and nothing reads back to the host.
"""

from __future__ import annotations

import math
import struct

import torch
from torch import Tensor

from nectarloss.functional.lambertw import _neg_lambertw, _tensor_operands
from nectarloss.validation import check_float

__all__ = ["rank_by_confidence", "super_loss", "super_loss_confidence"]

_FLOAT_TYPES = (torch.float32, torch.float64)
#: Veltkamp's splitter for float32's 24-bit significand within float64's 53 bits.
_VELTKAMP = 2.0**29 + 1.0


def _check_regularization(owner: str, regularization: object) -> float:
    """Return ``regularization`` as a float, or raise if it is not a finite number > 0."""
    return check_float(
        owner,
        "regularization",
        regularization,
        "a finite float > 0",
        low=0.0,
        open_low=True,
        type_what="a float > 0",
    )


def _as_compute_dtype(loss: Tensor) -> Tensor:
    """``loss`` in float32 at least: half-precision losses are computed in float32."""
    return loss if loss.dtype in _FLOAT_TYPES else loss.float()


def _confidence(
    detached: Tensor, tau: Tensor | float, regularization: float
) -> tuple[Tensor, Tensor]:
    """Return ``(sigma*, 2 lambda W)`` for the detached loss (float32 or float64).

    ``sigma* = exp(-W)`` with ``W = W0(z)``, ``z = max(beta, -2/e) / 2`` and
    ``beta = (loss - tau) / lambda``. The second output, ``2 lambda W``, is computed as
    ``2 lambda z sigma*`` (``W = z e^-W``), which is exactly 0 where ``loss == tau``.
    """
    dtype = detached.dtype
    info = torch.finfo(dtype)
    # beta >= -2/e as loss - tau >= -2 lambda / e, with a margin of a few ulps so that the
    # capped values land at or below the branch point (W = -1, sigma* = e) after rounding.
    cap = 2.0 * regularization / math.e * (1.0 + 8.0 * info.eps)
    # p2 = 2 (e z + 1) = (e / lambda) (loss - tau + 2 lambda / e), the branch-point variable
    # squared. Near the cap the sum cancels: 2 lambda / e is added as hi + lo (hi exact in
    # the dtype, so the first sum is exact there), lo after scaling (one addcmul), which
    # keeps p2 precise. At least the smallest normal number (see _neg_lambertw); at most
    # the largest float, reached only by a loss - tau above ~1e37 lambda (float32), whose
    # W it then understates. Constants are 0-d tensors (see _tensor_operands).
    scale = math.e / regularization
    offset_hi, offset_lo = _split(2.0 * regularization / math.e, dtype)
    neg_cap, hi, scaled_lo, factor, tiny, top = _tensor_operands(
        detached, (-cap, offset_hi, offset_lo * scale, scale, info.tiny, info.max)
    )
    shifted = (detached - tau).clamp_min_(neg_cap)
    p2 = torch.add(shifted, hi)
    p2 = torch.addcmul(scaled_lo, p2, factor) if offset_lo else p2.mul_(factor)
    p2 = p2.clamp_(tiny, top)
    sigma = _neg_lambertw(p2.sqrt(), p2, 0.5).exp_()
    return sigma, shifted.mul_(sigma)


def _split(value: float, dtype: torch.dtype) -> tuple[float, float]:
    """``value = hi + lo`` with ``hi`` representable in ``dtype`` (``lo = 0`` in float64).

    Pure Python (``struct`` rounds to float32), so nothing is read back from a tensor;
    while compiling, Veltkamp's split (the same ``hi`` for float32's normal range), which
    also traces when ``torch.compile(dynamic=True)`` makes ``value`` a SymFloat.
    """
    if dtype == torch.float64:
        return value, 0.0
    if torch.compiler.is_compiling():
        scaled = value * _VELTKAMP
        hi = scaled - (scaled - value)
        return hi, value - hi
    rounded: float = struct.unpack("f", struct.pack("f", value))[0]
    return rounded, value - rounded


def _super_loss_parts(
    values: Tensor, tau: Tensor | float, regularization: float
) -> tuple[Tensor, Tensor]:
    """Return ``(super_loss, sigma*)`` for ``values`` in their (float32+) dtype.

    ``(loss - tau) sigma* + lambda W^2``. ``sigma*``, ``W`` and ``tau`` carry no gradient
    (computed from the detached loss), so autograd records only the last three ops and
    ``d out / d loss = sigma*`` exactly.
    """
    sigma, scaled_w = _confidence(values.detach(), tau, regularization)
    return _combine(values, tau, sigma, scaled_w, regularization), sigma


def _combine(
    values: Tensor, tau: Tensor | float, sigma: Tensor, scaled_w: Tensor, regularization: float
) -> Tensor:
    """``(loss - tau) sigma* + lambda W^2`` from ``scaled_w = 2 lambda W``."""
    return torch.addcmul((values - tau) * sigma, scaled_w, scaled_w, value=0.25 / regularization)


def _running_threshold(
    batch_mean: Tensor,
    tau: Tensor,
    is_initialized: Tensor,
    count: Tensor,
    momentum: float | None,
) -> Tensor:
    """Update a running threshold in place from ``batch_mean``; return the new one.

    ``momentum`` (``"exp"``): ``tau <- tau - momentum * (tau - mean)``, except that the
    first batch (``is_initialized`` False) sets ``tau = mean``. ``None`` (``"global"``):
    ``tau <- tau + (mean - tau) / (count + 1)``, the running mean of all batch means.
    A non-finite ``batch_mean`` (a NaN or inf loss in the batch, an empty batch's
    ``0 / 0``, or a sum that overflows) leaves ``tau``, ``is_initialized`` and ``count``
    as they are, so one bad batch cannot poison the threshold for the rest of training.
    Every selection is a ``torch.where`` on device flags: nothing synchronises. The
    result is in ``batch_mean``'s dtype (``tau`` is stored rounded to its own).
    """
    difference = batch_mean - batch_mean
    is_valid = difference == difference  # False for NaN and +-inf
    current = tau if tau.dtype == batch_mean.dtype else tau.to(batch_mean.dtype)
    if momentum is None:
        moved = torch.addcdiv(current, batch_mean - current, count + 1)
    else:
        (weight,) = _tensor_operands(batch_mean, (momentum,))
        moved = torch.where(is_initialized, torch.lerp(current, batch_mean, weight), batch_mean)
    if current is tau:
        new_tau = torch.where(is_valid, moved, tau, out=tau)
    else:
        new_tau = torch.where(is_valid, moved, current)
        tau.copy_(new_tau)
    is_initialized.logical_or_(is_valid)
    count.add_(is_valid)
    return new_tau


def _batch_mean(values: Tensor) -> Tensor:
    """``values.mean()`` as a sum times a cached ``1 / n`` (NaN for an empty batch).

    On CPU ``mean`` divides by a wrapped Python number, which at small batches costs
    more than the sum; the product may differ from it in the last bit.
    """
    num = values.numel()
    (inverse,) = _tensor_operands(values, (1.0 / num if num else math.inf,))
    return torch.sum(values).mul_(inverse)


def _super_loss_step(
    values: Tensor,
    tau: Tensor,
    is_initialized: Tensor,
    count: Tensor,
    momentum: float | None,
    regularization: float,
    is_running: bool,
) -> tuple[Tensor, Tensor]:
    """One SuperLoss call with its threshold state: ``(super_loss, sigma*)``.

    With ``is_running`` the threshold is first updated from the batch mean (see
    :func:`_running_threshold`); otherwise ``tau`` is used as it is. One function, so
    :class:`~nectarloss.modifiers.SuperLoss` can compile it as one graph.
    """
    detached = values.detach()
    if is_running:
        batch_mean = _batch_mean(detached)
        threshold = _running_threshold(batch_mean, tau, is_initialized, count, momentum)
    else:
        threshold = tau.to(values.dtype)
    sigma, scaled_w = _confidence(detached, threshold, regularization)
    return _combine(values, threshold, sigma, scaled_w, regularization), sigma


def super_loss_confidence(loss: Tensor, tau: Tensor | float, regularization: float = 1.0) -> Tensor:
    """Per-sample SuperLoss confidence ``sigma*`` (detached).

    ``sigma* = exp(-W0(0.5 * max(-2/e, beta)))`` with ``beta = (loss - tau) / lambda``:
    about 1 for a loss at the threshold, above 1 for easy samples (loss < tau), below 1
    for hard ones. Low confidences point at difficult or mislabeled samples.

    Ties: every sample with ``loss <= tau - 2 lambda / e`` is capped and gets exactly
    ``sigma* = e`` (the dtype's ``e``: 2.7182817 in float32). With a threshold well above
    most losses (a large constant ``tau``, or a small ``lambda``) many confidences are
    therefore equal, and sorting by confidence alone leaves those samples unordered; use
    :func:`rank_by_confidence`, which breaks ties by the raw loss.

    Args:
        loss: Per-sample loss, any shape (``[B]`` in nectarloss).
        tau: The threshold: a float (e.g. ``log(num_classes)`` for cross-entropy) or a
            tensor broadcastable to ``loss``.
        regularization: ``lambda > 0``; larger values keep ``sigma*`` closer to 1.

    Returns:
        ``sigma*``, same shape as ``loss``, float32 or wider, without gradient.

    Raises:
        TypeError: If ``regularization`` is not a real number.
        ValueError: If ``regularization`` is not finite and > 0.

    Example:
        >>> super_loss_confidence(torch.tensor([0.0, 1.0, 3.0]), tau=1.0)
        tensor([2.7183, 1.0000, 0.5671])

    Reference:
        Castells, Weinzaepfel, Revaud, "SuperLoss: A Generic Loss for Robust Curriculum
        Learning", NeurIPS 2020.
    """
    lam = _check_regularization("super_loss_confidence", regularization)
    if isinstance(tau, Tensor):
        tau = tau.detach()
    sigma, _ = _confidence(_as_compute_dtype(loss.detach()), tau, lam)
    return sigma


def super_loss(loss: Tensor, tau: Tensor | float, regularization: float = 1.0) -> Tensor:
    """Per-sample SuperLoss ``(loss - tau) * sigma* + lambda * log(sigma*)^2``.

    ``sigma*`` (see :func:`super_loss_confidence`) is the closed-form minimiser of the
    SuperLoss over the confidence, computed from the detached loss as the paper
    recommends, so ``d super_loss / d loss = sigma*`` exactly. ``tau`` is detached too.

    The paper caps ``beta`` at ``-2/e``; the Lambert W argument then reaches ``-1/e``
    exactly, where ``W = -1`` (FastEstimator uses ``-1.9999998/e`` instead to dodge an
    imprecise ``W``; ours is exact there). ``log(sigma*)^2 = W^2`` is computed as
    ``(z sigma*)^2`` (``W = z e^-W``), so a loss equal to ``tau`` gives exactly 0.
    Half-precision losses are computed in float32.

    Args:
        loss: Per-sample loss, any shape (``[B]`` in nectarloss).
        tau: The threshold: a float (e.g. ``log(num_classes)`` for cross-entropy) or a
            tensor broadcastable to ``loss``, such as a running mean of the loss.
        regularization: ``lambda > 0``. As it grows the SuperLoss tends to ``loss - tau``.

    Returns:
        The per-sample SuperLoss, same shape as ``loss``, float32 or wider.

    Raises:
        TypeError: If ``regularization`` is not a real number.
        ValueError: If ``regularization`` is not finite and > 0.

    Example:
        >>> super_loss(torch.tensor([0.0, 1.0, 3.0]), tau=1.0)
        tensor([-1.7183,  0.0000,  1.4559])

    Reference:
        Castells, Weinzaepfel, Revaud, "SuperLoss: A Generic Loss for Robust Curriculum
        Learning", NeurIPS 2020.
    """
    lam = _check_regularization("super_loss", regularization)
    if isinstance(tau, Tensor):
        tau = tau.detach()
    out, _ = _super_loss_parts(_as_compute_dtype(loss), tau, lam)
    return out


def rank_by_confidence(confidence: Tensor, loss: Tensor) -> Tensor:
    """Sample indices from least to most confident, ties broken by the raw loss.

    Sorts by ``confidence`` ascending and, among equal confidences, by ``loss``
    descending (a higher loss counts as less confident, as ``sigma*`` decreases with the
    loss). The tie-breaker matters for SuperLoss: every capped sample has
    ``sigma* = e`` exactly (see :func:`super_loss_confidence`). A NaN confidence (from a
    NaN loss) ranks first, so broken samples lead the list. Two stable sorts on the
    device, no host synchronisation.

    Args:
        confidence: Per-sample confidences ``sigma*``, shape ``[N]`` (e.g. collected from
            :attr:`~nectarloss.modifiers.SuperLoss.last_confidence` over an epoch).
        loss: The raw per-sample losses they came from, shape ``[N]``.

    Returns:
        ``int64`` indices, shape ``[N]``: ``indices[0]`` is the least confident sample.

    Raises:
        ValueError: If the shapes are not one and the same ``[N]``.

    Example:
        >>> loss = torch.tensor([0.5, 9.0, 0.1, 3.0])
        >>> confidence = super_loss_confidence(loss, tau=4.0)  # three capped: all e
        >>> confidence
        tensor([2.7183, 0.3834, 2.7183, 2.7183])
        >>> rank_by_confidence(confidence, loss)
        tensor([1, 3, 0, 2])
    """
    if confidence.ndim != 1 or confidence.shape != loss.shape:
        raise ValueError(
            f"rank_by_confidence: `loss` expected the confidences' shape [N] "
            f"{tuple(confidence.shape)}, got {tuple(loss.shape)}."
        )
    by_loss = torch.argsort(loss, descending=True, stable=True)
    keys = torch.nan_to_num(confidence[by_loss], nan=-math.inf)
    return by_loss[torch.argsort(keys, stable=True)]

"""SuperLoss: confidence-aware per-sample loss for curriculum and noisy-label learning.

The pure functions here take the threshold ``tau`` as an input; the running estimate of
``tau`` (exponential or global average) is state, kept in buffers by
:class:`nectarloss.modifiers.SuperLoss`. Module and functions share the private helpers
below (``_super_loss_compute``, ``_update_threshold``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nectarloss.functional.lambertw import lambertw
from nectarloss.validation import check_float

__all__ = ["super_loss", "super_loss_confidence"]

#: The Lambert W argument is ``0.5 * max(-2/e, beta)``, i.e. never below ``-1/e``.
_BETA_MIN = -2.0 / math.e


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


def _compute_dtype(loss: Tensor) -> torch.dtype:
    """Float32 at least: half-precision losses are computed in float32."""
    return torch.promote_types(loss.dtype, torch.float32)


def _confidence(loss: Tensor, tau: Tensor | float, regularization: float) -> Tensor:
    """Return ``log(sigma*)`` from the detached loss (shared by function and module)."""
    beta = (loss.detach().to(_compute_dtype(loss)) - tau) / regularization
    # sigma* = exp(-W0(0.5 max(-2/e, beta)))  =>  log sigma* = -W0(...)
    return -lambertw(0.5 * beta.clamp(min=_BETA_MIN))


def _super_loss_compute(
    loss: Tensor, tau: Tensor | float, regularization: float
) -> tuple[Tensor, Tensor]:
    """Return ``(super_loss, sigma*)``; ``sigma*`` and ``tau`` carry no gradient."""
    if isinstance(tau, Tensor):
        tau = tau.detach()
    log_sigma = _confidence(loss, tau, regularization)
    sigma = torch.exp(log_sigma)
    out = (loss.to(sigma.dtype) - tau) * sigma + regularization * log_sigma.square()
    return out, sigma


def _update_threshold(
    tau: Tensor, is_initialized: Tensor, batch_mean: Tensor, momentum: Tensor | float
) -> tuple[Tensor, Tensor]:
    """Return ``(new_tau, is_valid)``: the new running threshold and whether it moved.

    ``tau <- tau - momentum * (tau - batch_mean)``, except that the first batch (where
    ``is_initialized`` is ``False``) sets ``tau = batch_mean``. A non-finite
    ``batch_mean`` (a NaN or inf loss in the batch, an empty batch's ``0 / 0``, or a sum
    that overflows) leaves ``tau`` as it is and gives ``is_valid = False``, so one bad
    batch cannot poison the threshold for the rest of training. Both selections are
    ``torch.where`` on device flags, so nothing synchronises. Shared by the module and
    manual callers, who store ``new_tau`` and count the batch only where ``is_valid``.
    """
    is_valid = torch.isfinite(batch_mean)
    moved = tau - momentum * (tau - batch_mean)
    updated = torch.where(is_initialized, moved, batch_mean)
    return torch.where(is_valid, updated, tau), is_valid


def _running_super_loss(
    loss: Tensor,
    tau: Tensor,
    is_initialized: Tensor,
    momentum: Tensor | float,
    regularization: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Update a running threshold from the batch mean, then apply SuperLoss.

    Returns ``(new_tau, super_loss, sigma*, is_valid)``; see :func:`_update_threshold`
    for ``is_valid`` (a bad or empty batch is computed with the unchanged ``tau``). Pure
    (the caller stores the state), so it can be compiled as one graph.
    """
    dtype = _compute_dtype(loss)
    batch_mean = loss.detach().to(dtype).mean()  # NaN for an empty batch
    new_tau, is_valid = _update_threshold(tau.to(dtype), is_initialized, batch_mean, momentum)
    out, sigma = _super_loss_compute(loss, new_tau, regularization)
    return new_tau, out, sigma, is_valid


def super_loss_confidence(loss: Tensor, tau: Tensor | float, regularization: float = 1.0) -> Tensor:
    """Per-sample SuperLoss confidence ``sigma*`` (detached).

    ``sigma* = exp(-W0(0.5 * max(-2/e, beta)))`` with ``beta = (loss - tau) / lambda``:
    about 1 for a loss at the threshold, above 1 for easy samples (loss < tau), below 1
    for hard ones. Low confidences point at difficult or mislabeled samples.

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
    return torch.exp(_confidence(loss, tau, lam))


def super_loss(loss: Tensor, tau: Tensor | float, regularization: float = 1.0) -> Tensor:
    """Per-sample SuperLoss ``(loss - tau) * sigma* + lambda * log(sigma*)^2``.

    ``sigma*`` (see :func:`super_loss_confidence`) is the closed-form minimiser of the
    SuperLoss over the confidence, computed from the detached loss as the paper
    recommends, so ``d super_loss / d loss = sigma*`` exactly. ``tau`` is detached too.

    The paper caps ``beta`` at ``-2/e``; the Lambert W argument then reaches ``-1/e``
    exactly, where :func:`~nectarloss.functional.lambertw` returns ``-1`` (FastEstimator
    uses ``-1.9999998/e`` instead to dodge an imprecise ``W``; ours is exact there).
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
    out, _ = _super_loss_compute(loss, tau, lam)
    return out

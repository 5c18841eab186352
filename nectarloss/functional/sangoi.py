"""The Sangoi loss modifier: reward accurate predictions more on hard (high-SNR) steps.

``weight = exp(-(1 - MAPE) * log(1 + SNR))`` per sample, where MAPE is the clamped mean
absolute percentage error between prediction and target and the SNR is clamped to
``[1e-4, 100]``. The modified loss is ``loss * weight``.

The reference implementation (OneTrainer's ``_sangoi_loss_modifier``, "the reference"
below) has four rough edges, each fixed here behind an option that defaults to the fix:

* ``sign_safe``: the reference divides by ``target + eps``, which is 0 (or tiny) for a
  target of ``-eps``; we divide by ``|target| + eps``.
* ``upcast``: half-precision inputs (autocast) are cast to float32 before the division
  and the mean.
* rank: the reference averages over dims ``[1, 2, 3]`` (4-D only); we average over every
  non-batch dim, so 2-D, 3-D (tokens), 4-D (images) and 5-D (video) inputs all work.
* ``detach``: the weight is computed from detached inputs, so it carries no gradient
  (the reference lets gradients flow through it; pass ``detach=False`` for that).

An optional ``mask`` restricts the MAPE to the masked elements. ``reference_exact=True``
reproduces the reference's numbers bit for bit (4-D inputs give its own result).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nectarloss.functional.snr_weights import _broadcasts_to, _check_per_sample, _check_snr_range
from nectarloss.validation import check_float, check_positive, check_tensor

__all__ = ["SANGOI_SNR_RANGE", "mape", "sangoi", "sangoi_weight"]

#: The reference's SNR clamp ``[min_snr, max_snr]``.
SANGOI_SNR_RANGE = (1e-4, 100.0)
#: The reference's epsilon in the MAPE denominator.
_EPS = 1e-8


def _check_inputs(owner: str, prediction: object, target: object) -> tuple[Tensor, Tensor]:
    """Check that prediction and target are tensors of one shape with a batch dim."""
    prediction = check_tensor(owner, "prediction", prediction)
    target = check_tensor(owner, "target", target)
    if prediction.shape != target.shape:
        raise ValueError(
            f"{owner}: `target` expected the prediction's shape {tuple(prediction.shape)}, "
            f"got {tuple(target.shape)}."
        )
    if prediction.ndim < 1:
        raise ValueError(
            f"{owner}: `prediction` expected a batch dimension (shape [B, ...]), "
            f"got shape {tuple(prediction.shape)}."
        )
    return prediction, target


def _check_mask(owner: str, mask: object, shape: torch.Size) -> Tensor | None:
    """Return ``mask`` if it is None or a tensor broadcastable to ``shape``, else raise."""
    if mask is None:
        return None
    mask = check_tensor(owner, "mask", mask)
    if not _broadcasts_to(mask.shape, shape):
        raise ValueError(
            f"{owner}: `mask` expected a shape broadcastable to the inputs' shape "
            f"{tuple(shape)}, got {tuple(mask.shape)}."
        )
    return mask


def _non_batch_dims(x: Tensor) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def _per_sample_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over every non-batch dim, over the masked elements when a mask is given.

    A row whose mask is all zero gets a mean of 1 (the largest clamped error), which makes
    the Sangoi weight 1: the loss of that sample passes through unchanged.
    """
    dims = _non_batch_dims(values)
    if mask is None:
        return values.mean(dim=dims) if dims else values
    weights = mask.to(values.dtype).expand(values.shape)
    if not dims:
        total, count = values * weights, weights
    else:
        total, count = (values * weights).sum(dim=dims), weights.sum(dim=dims)
    has_any = count > 0
    mean = total / torch.where(has_any, count, torch.ones_like(count))
    return torch.where(has_any, mean, torch.ones_like(mean))


def _compute_dtype(x: Tensor, upcast: bool) -> torch.dtype:
    if not x.is_floating_point():
        return torch.float32
    return torch.promote_types(x.dtype, torch.float32) if upcast else x.dtype


def _mape_compute(
    prediction: Tensor,
    target: Tensor,
    mask: Tensor | None,
    eps: float,
    max_error: float | None,
    sign_safe: bool,
    upcast: bool,
) -> Tensor:
    dtype = _compute_dtype(prediction, upcast)
    prediction, target = prediction.to(dtype), target.to(dtype)
    needs_grad = torch.is_grad_enabled() and (prediction.requires_grad or target.requires_grad)
    if needs_grad:
        denominator = target.abs() + eps if sign_safe else target + eps
        error = ((target - prediction) / denominator).abs()
        if max_error is not None:
            error = error.clamp(min=0.0, max=max_error)
    else:  # the same operations in place: two full-size temporaries instead of six
        denominator = target.abs().add_(eps) if sign_safe else target.add(eps)
        error = torch.sub(target, prediction).div_(denominator).abs_()
        if max_error is not None:
            error = error.clamp_(min=0.0, max=max_error)
    return _per_sample_mean(error, mask)


def _sangoi_weight_reference(
    snr: Tensor, predicted: Tensor, target: Tensor, eps: float, snr_range: tuple[float, float]
) -> Tensor:
    """The reference's operations in its order and dtype (bit-exact on 4-D inputs)."""
    snr = torch.clamp(snr, min=snr_range[0], max=snr_range[1])
    mape_ = torch.abs((target - predicted) / (target + eps))
    mape_ = torch.clamp(mape_, min=0, max=1)
    dims = _non_batch_dims(mape_)
    mape_ = mape_.mean(dim=list(dims)) if dims else mape_
    snr_weight = torch.log(snr + 1)
    mape_reward = 1 - mape_
    return torch.exp(-mape_reward * snr_weight)


def _sangoi_weight_compute(
    snr: Tensor,
    prediction: Tensor,
    target: Tensor,
    mask: Tensor | None,
    eps: float,
    snr_range: tuple[float, float],
    sign_safe: bool,
    upcast: bool,
    detach: bool,
    reference_exact: bool,
) -> Tensor:
    """Shared by :func:`sangoi_weight` and :class:`~nectarloss.modifiers.Sangoi`."""
    if detach:
        prediction, target = prediction.detach(), target.detach()
    snr = snr.detach()
    if reference_exact:
        return _sangoi_weight_reference(snr, prediction, target, eps, snr_range)
    error = _mape_compute(prediction, target, mask, eps, 1.0, sign_safe, upcast)
    snr = snr.to(error.dtype).clamp(min=snr_range[0], max=snr_range[1])
    return torch.exp(-(1.0 - error) * torch.log1p(snr))


def _check_sangoi_options(
    owner: str,
    eps: object,
    snr_range: object,
    reference_exact: object,
    mask: object,
) -> tuple[float, tuple[float, float]]:
    eps_value = check_positive(owner, "eps", eps)
    low_high = _check_snr_range(owner, snr_range)
    _check_reference_mask(owner, reference_exact, mask)
    return eps_value, low_high


def _check_reference_mask(owner: str, reference_exact: object, mask: object) -> None:
    """Raise unless ``mask`` is None with ``reference_exact`` (the reference has none)."""
    if reference_exact and mask is not None:
        raise ValueError(
            f"{owner}: `mask` expected None with reference_exact=True (the reference has no "
            f"mask), got a {type(mask).__name__}."
        )


def mape(
    prediction: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    eps: float = _EPS,
    max_error: float | None = 1.0,
    sign_safe: bool = True,
    upcast: bool = True,
) -> Tensor:
    """Per-sample mean absolute percentage error, each element clamped to ``max_error``.

    ``|(target - prediction) / (|target| + eps)|`` elementwise (``target + eps`` if
    ``sign_safe`` is False, as in the reference), clamped to ``[0, max_error]``, then
    averaged over every non-batch dimension, or over the elements where ``mask`` is
    nonzero (a float mask weights them). A sample whose mask is all zero gets 1.

    Args:
        prediction: Model output, shape ``[B, ...]`` (any rank >= 1).
        target: Target, same shape as ``prediction``.
        mask: Optional mask broadcastable to the inputs (torch broadcasting, aligned on
            the trailing dims), bool or float.
        eps: Added to the denominator, > 0.
        max_error: Elementwise clamp of the error, or None for no clamp.
        sign_safe: Divide by ``|target| + eps`` (True) or ``target + eps`` (the reference).
        upcast: Compute half-precision inputs in float32.

    Returns:
        The per-sample MAPE, shape ``[B]``.

    Raises:
        TypeError: If an input is not a Tensor.
        ValueError: If shapes disagree or ``eps`` is not > 0.

    Example:
        >>> mape(torch.tensor([[1.0, 3.0], [0.0, -2.0]]), torch.tensor([[2.0, 2.0], [1.0, -2.0]]))
        tensor([0.5000, 0.5000])
    """
    prediction, target = _check_inputs("mape", prediction, target)
    eps = check_positive("mape", "eps", eps)
    checked_mask = _check_mask("mape", mask, prediction.shape)
    if max_error is not None:
        max_error = check_float("mape", "max_error", max_error, "a finite float or None")
    return _mape_compute(prediction, target, checked_mask, eps, max_error, sign_safe, upcast)


def sangoi_weight(
    snr: Tensor,
    prediction: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    eps: float = _EPS,
    snr_range: tuple[float, float] = SANGOI_SNR_RANGE,
    sign_safe: bool = True,
    upcast: bool = True,
    detach: bool = True,
    reference_exact: bool = False,
) -> Tensor:
    """Per-sample Sangoi weight ``exp(-(1 - MAPE) * log(1 + clamp(SNR)))``.

    The weight is 1 for a useless prediction (MAPE 1) and ``1 / (1 + SNR)`` for a perfect
    one, so accurate predictions on high-SNR (hard) steps shrink the loss most.

    Args:
        snr: Per-sample SNR, shape ``[B]``.
        prediction: Model output, shape ``[B, ...]``.
        target: Target, same shape as ``prediction``.
        mask: Optional mask broadcastable to the inputs; the MAPE is averaged over it.
        eps: Added to the MAPE denominator.
        snr_range: ``(low, high)`` clamp of the SNR (the reference's ``[1e-4, 100]``).
        sign_safe: Divide by ``|target| + eps`` instead of the reference's ``target + eps``.
        upcast: Compute in float32 when the inputs are half precision.
        detach: Compute the weight from detached inputs (no gradient through it).
        reference_exact: Run the reference implementation's exact operations (no sign
            safety, no upcast, no mask), reproducing its numbers bit for bit.

    Returns:
        The weight, shape ``[B]``, float32 or wider (the input dtype with
        ``reference_exact=True``).

    Raises:
        TypeError: If an input is not a Tensor or an option has the wrong type.
        ValueError: If shapes disagree, an option is out of range, or a mask is given with
            ``reference_exact=True``.

    Example:
        >>> target = torch.ones(2, 3)
        >>> prediction = torch.stack([torch.ones(3), torch.zeros(3)])
        >>> sangoi_weight(torch.tensor([3.0, 3.0]), prediction, target)
        tensor([0.2500, 1.0000])

    Reference:
        Sangoi, "Sangoi Loss Modifier Function" for OneTrainer (2024, README of the
        reference implementation).
    """
    prediction, target = _check_inputs("sangoi_weight", prediction, target)
    snr = check_tensor("sangoi_weight", "snr", snr)
    eps, low_high = _check_sangoi_options("sangoi_weight", eps, snr_range, reference_exact, mask)
    checked_mask = _check_mask("sangoi_weight", mask, prediction.shape)
    return _sangoi_weight_compute(
        snr,
        prediction,
        target,
        checked_mask,
        eps,
        low_high,
        sign_safe,
        upcast,
        detach,
        reference_exact,
    )


def sangoi(
    loss: Tensor,
    snr: Tensor,
    prediction: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    eps: float = _EPS,
    snr_range: tuple[float, float] = SANGOI_SNR_RANGE,
    sign_safe: bool = True,
    upcast: bool = True,
    detach: bool = True,
    reference_exact: bool = False,
) -> Tensor:
    """Per-sample loss times :func:`sangoi_weight`.

    Args:
        loss: Per-sample loss, shape ``[B]``.
        snr: Per-sample SNR, shape ``[B]``.
        prediction: Model output, shape ``[B, ...]``.
        target: Target, same shape as ``prediction``.
        mask: See :func:`sangoi_weight`.
        eps: See :func:`sangoi_weight`.
        snr_range: See :func:`sangoi_weight`.
        sign_safe: See :func:`sangoi_weight`.
        upcast: See :func:`sangoi_weight`.
        detach: See :func:`sangoi_weight`.
        reference_exact: See :func:`sangoi_weight`.

    Returns:
        ``loss * weight``, shape ``[B]``.

    Raises:
        TypeError: See :func:`sangoi_weight`.
        ValueError: See :func:`sangoi_weight`, or if ``snr`` or the batch size of
            ``prediction`` do not match ``loss``.

    Example:
        >>> target = torch.ones(2, 3)
        >>> prediction = torch.stack([torch.ones(3), torch.zeros(3)])
        >>> sangoi(torch.tensor([2.0, 2.0]), torch.tensor([3.0, 3.0]), prediction, target)
        tensor([0.5000, 2.0000])

    Reference:
        Sangoi, "Sangoi Loss Modifier Function" for OneTrainer (2024).
    """
    loss = check_tensor("sangoi", "loss", loss)
    _check_per_sample("sangoi", loss, "snr", check_tensor("sangoi", "snr", snr))
    _check_batch("sangoi", loss, check_tensor("sangoi", "prediction", prediction))
    return loss * sangoi_weight(
        snr,
        prediction,
        target,
        mask=mask,
        eps=eps,
        snr_range=snr_range,
        sign_safe=sign_safe,
        upcast=upcast,
        detach=detach,
        reference_exact=reference_exact,
    )


def _check_batch(owner: str, loss: Tensor, prediction: Tensor) -> None:
    """Raise unless ``loss`` is ``[B]`` and ``prediction`` has the same batch size."""
    if loss.ndim != 1 or prediction.ndim < 1 or prediction.shape[0] != loss.shape[0]:
        raise ValueError(
            f"{owner}: `prediction` expected shape [B, ...] with B matching the per-sample "
            f"loss shape {tuple(loss.shape)}, got {tuple(prediction.shape)}."
        )

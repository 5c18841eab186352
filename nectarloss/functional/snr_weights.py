"""Per-sample loss weights computed from the signal-to-noise ratio of diffusion timesteps.

Each weight has a ``*_weight(snr, ...)`` function returning the weight and a twin named
after its module (``min_snr``, ``debiased_estimation``, ``p2``) returning
``loss * weight``. ``snr`` is the per-sample SNR, e.g. from
:meth:`nectarloss.modifiers.NoiseSchedule.snr`. The modules validate their options once
and call the same private helpers every step.

``prediction`` names what the model predicts, and so which loss the weight multiplies:
``"epsilon"`` (the noise), ``"v_prediction"`` (``v = alpha eps - sigma x0``) or
``"sample"`` (``x0``). With ``alpha^2 + sigma^2 = 1`` the three losses relate as
``loss_x0 = loss_eps / SNR`` and ``loss_v = loss_eps * (SNR + 1) / SNR``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nectarloss.validation import check_float, check_positive, check_tensor

__all__ = [
    "DEBIASED_SNR_RANGE",
    "PREDICTION_TYPES",
    "debiased_estimation",
    "debiased_estimation_weight",
    "min_snr",
    "min_snr_weight",
    "p2",
    "p2_weight",
]

#: The accepted values of ``prediction``.
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")

#: kohya-ss sd-scripts clamps the SNR at 1000 before the debiased weight (an SNR of
#: ``inf`` at timestep 0 would give a zero weight); the lower end avoids ``1 / sqrt(0)``
#: at the last step of a flow-matching schedule.
DEBIASED_SNR_RANGE = (1e-6, 1000.0)


# ----------------------------------------------------------------------------- checks
def _check_prediction(owner: str, prediction: object) -> str:
    """Return ``prediction`` if it is one of :data:`PREDICTION_TYPES`, else raise."""
    if not isinstance(prediction, str):
        raise TypeError(
            f"{owner}: `prediction` expected one of {PREDICTION_TYPES}, "
            f"got {type(prediction).__name__} {prediction!r}."
        )
    if prediction not in PREDICTION_TYPES:
        raise ValueError(
            f"{owner}: `prediction` expected one of {PREDICTION_TYPES}, got {prediction!r}."
        )
    return prediction


def _check_snr_range(owner: str, snr_range: object) -> tuple[float, float]:
    """Return ``(low, high)`` with ``0 <= low < high``, or raise."""
    if not isinstance(snr_range, (tuple, list)) or len(snr_range) != 2:
        raise TypeError(
            f"{owner}: `snr_range` expected a (low, high) pair of floats, got {snr_range!r}."
        )
    low = check_float(owner, "snr_range[0]", snr_range[0], "a finite float >= 0")
    high = check_float(owner, "snr_range[1]", snr_range[1], "a finite float > snr_range[0]")
    if not 0.0 <= low < high:
        raise ValueError(f"{owner}: `snr_range` expected 0 <= low < high, got {(low, high)!r}.")
    return low, high


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``target`` without changing it."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target), strict=False))


def _check_per_sample(owner: str, loss: Tensor, name: str, value: Tensor) -> None:
    """Raise unless ``value`` (e.g. the SNR) broadcasts to the per-sample ``loss`` shape."""
    if not _broadcasts_to(value.shape, loss.shape):
        raise ValueError(
            f"{owner}: `{name}` expected a shape broadcastable to the loss shape "
            f"{tuple(loss.shape)}, got {tuple(value.shape)}."
        )


def _weight_dtype(snr: Tensor) -> torch.dtype:
    """Weights are float32 at least (integer or half SNRs are widened)."""
    if not snr.is_floating_point():
        return torch.float32
    return torch.promote_types(snr.dtype, torch.float32)


# ------------------------------------------------------------------ private helpers
def _min_snr_weight(snr: Tensor, gamma: float, prediction: str) -> Tensor:
    snr = snr.detach().to(_weight_dtype(snr))
    if prediction == "epsilon":
        # min(SNR, gamma) / SNR, written so that SNR = 0 gives the limit 1, not 0 / 0.
        return (gamma / snr).clamp(max=1.0)
    clipped = snr.clamp(max=gamma)
    if prediction == "v_prediction":
        return clipped / (snr + 1.0)
    return clipped


def _debiased_estimation_weight(
    snr: Tensor, prediction: str, snr_range: tuple[float, float]
) -> Tensor:
    snr = snr.detach().to(_weight_dtype(snr))
    if prediction == "v_prediction":  # SNR + 1 >= 1: no clamp needed
        return torch.rsqrt(snr + 1.0)
    snr = snr.clamp(min=snr_range[0], max=snr_range[1])
    if prediction == "epsilon":
        return torch.rsqrt(snr)
    return torch.sqrt(snr)


def _p2_weight(snr: Tensor, gamma: float, k: float) -> Tensor:
    snr = snr.detach().to(_weight_dtype(snr))
    return (k + snr).pow(-gamma)


# ------------------------------------------------------------------------- public
def min_snr_weight(snr: Tensor, gamma: float = 5.0, prediction: str = "epsilon") -> Tensor:
    """Min-SNR-gamma weight.

    ``min(SNR, gamma) / SNR`` for ``"epsilon"``, ``min(SNR, gamma) / (SNR + 1)`` for
    ``"v_prediction"`` and ``min(SNR, gamma)`` for ``"sample"``: the same weighting of the
    x0 loss expressed for each parameterisation. An SNR of 0 gives the limit 1 for
    ``"epsilon"``.

    Args:
        snr: Per-sample SNR, any shape, no gradient needed.
        gamma: The clamp ``gamma > 0`` (the paper recommends 5).
        prediction: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.

    Returns:
        The weight, same shape as ``snr``, float32 or wider, detached.

    Raises:
        TypeError: If ``snr`` is not a Tensor, ``gamma`` not a number or ``prediction``
            not a string.
        ValueError: If ``gamma <= 0`` or ``prediction`` is unknown.

    Example:
        >>> min_snr_weight(torch.tensor([0.5, 5.0, 50.0]), gamma=5.0)
        tensor([1.0000, 1.0000, 0.1000])

    Reference:
        Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy",
        ICCV 2023.
    """
    check_tensor("min_snr_weight", "snr", snr)
    gamma = check_positive("min_snr_weight", "gamma", gamma)
    prediction = _check_prediction("min_snr_weight", prediction)
    return _min_snr_weight(snr, gamma, prediction)


def min_snr(loss: Tensor, snr: Tensor, gamma: float = 5.0, prediction: str = "epsilon") -> Tensor:
    """Per-sample loss times :func:`min_snr_weight`.

    Args:
        loss: Per-sample loss, shape ``[B]``.
        snr: Per-sample SNR, broadcastable to ``loss``.
        gamma: The clamp ``gamma > 0``.
        prediction: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.

    Returns:
        ``loss * weight``, shape of ``loss``.

    Raises:
        TypeError: See :func:`min_snr_weight`.
        ValueError: See :func:`min_snr_weight`, or if ``snr`` does not broadcast to
            ``loss``.

    Example:
        >>> min_snr(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 10.0]))
        tensor([2., 1.])

    Reference:
        Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy",
        ICCV 2023.
    """
    _check_per_sample("min_snr", check_tensor("min_snr", "loss", loss), "snr", snr)
    return loss * min_snr_weight(snr, gamma, prediction)


def debiased_estimation_weight(
    snr: Tensor,
    prediction: str = "epsilon",
    snr_range: tuple[float, float] = DEBIASED_SNR_RANGE,
) -> Tensor:
    """Debiased-estimation weight, as in kohya-ss sd-scripts.

    For ``"epsilon"`` and ``"sample"`` the SNR is clamped to ``snr_range`` first (kohya
    clamps it at 1000; the lower bound keeps the weight finite where the SNR is 0). Then:

    * ``"epsilon"``: ``1 / sqrt(SNR)`` (Yu et al., and kohya);
    * ``"v_prediction"``: ``1 / sqrt(SNR + 1)``: the v target's SNR is ``SNR + 1``
      relative to the epsilon loss, so the same debiasing applies to it. (kohya's
      sd-scripts uses ``1 / (SNR + 1)`` here; this library follows the project spec);
    * ``"sample"``: ``sqrt(SNR)``, the epsilon weight carried over to the x0 loss
      (``loss_x0 = loss_eps / SNR``).

    Args:
        snr: Per-sample SNR, any shape.
        prediction: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        snr_range: ``(low, high)`` clamp of the SNR, ``0 <= low < high``.

    Returns:
        The weight, same shape as ``snr``, float32 or wider, detached.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``prediction`` is unknown or ``snr_range`` is not ordered.

    Example:
        >>> debiased_estimation_weight(torch.tensor([0.25, 4.0, 1e6]))
        tensor([2.0000, 0.5000, 0.0316])

    Reference:
        Yu et al., "Debias the Training of Diffusion Models", arXiv:2310.08442 (2023);
        kohya-ss/sd-scripts, ``library/custom_train_functions.py``.
    """
    check_tensor("debiased_estimation_weight", "snr", snr)
    prediction = _check_prediction("debiased_estimation_weight", prediction)
    low_high = _check_snr_range("debiased_estimation_weight", snr_range)
    return _debiased_estimation_weight(snr, prediction, low_high)


def debiased_estimation(
    loss: Tensor,
    snr: Tensor,
    prediction: str = "epsilon",
    snr_range: tuple[float, float] = DEBIASED_SNR_RANGE,
) -> Tensor:
    """Per-sample loss times :func:`debiased_estimation_weight`.

    Args:
        loss: Per-sample loss, shape ``[B]``.
        snr: Per-sample SNR, broadcastable to ``loss``.
        prediction: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        snr_range: ``(low, high)`` clamp of the SNR.

    Returns:
        ``loss * weight``, shape of ``loss``.

    Raises:
        TypeError: See :func:`debiased_estimation_weight`.
        ValueError: See :func:`debiased_estimation_weight`, or if ``snr`` does not
            broadcast to ``loss``.

    Example:
        >>> debiased_estimation(torch.tensor([1.0, 1.0]), torch.tensor([4.0, 100.0]))
        tensor([0.5000, 0.1000])

    Reference:
        Yu et al., "Debias the Training of Diffusion Models", arXiv:2310.08442 (2023).
    """
    _check_per_sample(
        "debiased_estimation", check_tensor("debiased_estimation", "loss", loss), "snr", snr
    )
    return loss * debiased_estimation_weight(snr, prediction, snr_range)


def p2_weight(snr: Tensor, gamma: float = 1.0, k: float = 1.0) -> Tensor:
    """Perception-prioritised (P2) weight ``1 / (k + SNR)^gamma``.

    Applied to the epsilon loss, it down-weights the high-SNR (nearly clean) steps, where
    the model learns imperceptible details.

    Args:
        snr: Per-sample SNR, any shape.
        gamma: Exponent ``gamma > 0`` (the paper uses 0.5 or 1).
        k: Offset ``k > 0`` keeping the weight finite at SNR 0 (the paper uses 1).

    Returns:
        The weight, same shape as ``snr``, float32 or wider, detached.

    Raises:
        TypeError: If ``snr`` is not a Tensor or ``gamma``/``k`` not numbers.
        ValueError: If ``gamma <= 0`` or ``k <= 0``.

    Example:
        >>> p2_weight(torch.tensor([0.0, 1.0, 3.0]))
        tensor([1.0000, 0.5000, 0.2500])

    Reference:
        Choi et al., "Perception Prioritized Training of Diffusion Models", CVPR 2022.
    """
    check_tensor("p2_weight", "snr", snr)
    gamma = check_positive("p2_weight", "gamma", gamma)
    k = check_positive("p2_weight", "k", k)
    return _p2_weight(snr, gamma, k)


def p2(loss: Tensor, snr: Tensor, gamma: float = 1.0, k: float = 1.0) -> Tensor:
    """Per-sample loss times :func:`p2_weight`.

    Args:
        loss: Per-sample loss, shape ``[B]``.
        snr: Per-sample SNR, broadcastable to ``loss``.
        gamma: Exponent ``gamma > 0``.
        k: Offset ``k > 0``.

    Returns:
        ``loss * weight``, shape of ``loss``.

    Raises:
        TypeError: See :func:`p2_weight`.
        ValueError: See :func:`p2_weight`, or if ``snr`` does not broadcast to ``loss``.

    Example:
        >>> p2(torch.tensor([3.0, 3.0]), torch.tensor([0.0, 2.0]), gamma=1.0, k=1.0)
        tensor([3., 1.])

    Reference:
        Choi et al., "Perception Prioritized Training of Diffusion Models", CVPR 2022.
    """
    _check_per_sample("p2", check_tensor("p2", "loss", loss), "snr", snr)
    return loss * p2_weight(snr, gamma, k)

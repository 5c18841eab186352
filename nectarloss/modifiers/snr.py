"""SNR-based per-sample weights for diffusion training: min-SNR-gamma, debiased, P2.

Each modifier looks the SNR of the batch's ``timesteps`` up in a
:class:`~nectarloss.modifiers.NoiseSchedule` and multiplies the per-sample loss by a
weight from :mod:`nectarloss.functional.snr_weights`. The weights carry no gradient.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from nectarloss.functional.snr_weights import (
    DEBIASED_SNR_RANGE,
    _check_per_sample,
    _check_prediction,
    _check_snr_range,
    _debiased_estimation_weight,
    _min_snr_weight,
    _p2_weight,
)
from nectarloss.modifiers.base import LossContext, Modifier, check_timesteps_in
from nectarloss.noise import NoiseSchedule
from nectarloss.noise import as_noise_schedule as _as_noise_schedule
from nectarloss.validation import check_positive

__all__ = ["DebiasedEstimation", "MinSNR", "P2"]


class _SNRWeighting(Modifier):
    """Shared forward: ``loss * weight(SNR(timesteps))``."""

    requires_timesteps = True

    def __init__(self, noise_schedule: NoiseSchedule | Any) -> None:
        super().__init__()
        self.noise_schedule = _as_noise_schedule(type(self).__name__, noise_schedule)

    def _weight_from_snr(self, snr: Tensor) -> Tensor:
        raise NotImplementedError

    def check_context(self, context: LossContext) -> None:
        """Check that ``context.timesteps`` lie in the noise table (a sync)."""
        check_timesteps_in(self.noise_schedule, type(self).__name__, context)

    def weight(self, timesteps: Tensor) -> Tensor:
        """The weight at ``timesteps`` (shape of ``timesteps``, float32, detached).

        Args:
            timesteps: Integer or float timesteps, see :meth:`NoiseSchedule.snr`.

        Returns:
            The per-sample weight.
        """
        return self._weight_from_snr(self.noise_schedule.snr(timesteps))

    def forward(self, loss: Tensor, context: LossContext) -> Tensor:
        """Return ``loss * weight(context.timesteps)``.

        Args:
            loss: Per-sample loss, shape ``[B]``.
            context: Must carry ``timesteps`` (shape ``[B]``).

        Returns:
            The weighted per-sample loss, shape ``[B]``.

        Raises:
            ValueError: If ``timesteps`` is missing or does not broadcast to ``[B]``.
            TypeError: If ``timesteps`` is not a Tensor.
        """
        name = type(self).__name__
        timesteps = context.require_timesteps(name)
        _check_per_sample(f"{context.loss_name}: modifier {name}", loss, "timesteps", timesteps)
        return loss * self.weight(timesteps)


class MinSNR(_SNRWeighting):
    """Min-SNR-gamma weighting of the per-sample diffusion loss.

    Multiplies the loss by ``min(SNR, gamma) / SNR`` (``prediction="epsilon"``),
    ``min(SNR, gamma) / (SNR + 1)`` (``"v_prediction"``) or ``min(SNR, gamma)``
    (``"sample"``); see :func:`~nectarloss.functional.min_snr_weight`. Functional twin:
    :func:`~nectarloss.functional.min_snr`.

    Args:
        noise_schedule: The training schedule: a :class:`NoiseSchedule`, or a
            diffusers-style scheduler (converted with :meth:`NoiseSchedule.from_scheduler`).
        gamma: The clamp ``gamma > 0`` (5 in the paper).
        prediction: What the model predicts: ``"epsilon"``, ``"v_prediction"`` or
            ``"sample"``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``gamma <= 0`` or ``prediction`` is unknown.

    Shape:
        - loss: ``[B]``; context.timesteps: ``[B]``.
        - output: ``[B]``.

    Example:
        >>> import torch
        >>> modifier = MinSNR(NoiseSchedule.scaled_linear(), gamma=5.0)
        >>> context = LossContext("mse", (torch.zeros(2, 4),), timesteps=torch.tensor([0, 999]))
        >>> modifier(torch.ones(2), context)
        tensor([0.0043, 1.0000])

    Reference:
        Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy",
        ICCV 2023.
    """

    def __init__(
        self, noise_schedule: NoiseSchedule | Any, gamma: float = 5.0, prediction: str = "epsilon"
    ) -> None:
        super().__init__(noise_schedule)
        self.gamma = check_positive("MinSNR", "gamma", gamma)
        self.prediction = _check_prediction("MinSNR", prediction)

    def _weight_from_snr(self, snr: Tensor) -> Tensor:
        return _min_snr_weight(snr, self.gamma, self.prediction)

    def extra_repr(self) -> str:
        """Show the options."""
        return f"gamma={self.gamma}, prediction={self.prediction!r}"


class DebiasedEstimation(_SNRWeighting):
    """Debiased-estimation weighting of the per-sample diffusion loss (kohya-ss style).

    The SNR is clamped to ``snr_range`` (kohya clamps at 1000), then the loss is
    multiplied by ``1 / sqrt(SNR)`` (``"epsilon"``), ``1 / sqrt(SNR + 1)``
    (``"v_prediction"``, unclamped) or ``sqrt(SNR)`` (``"sample"``); see
    :func:`~nectarloss.functional.debiased_estimation_weight` for the reasoning. Functional
    twin: :func:`~nectarloss.functional.debiased_estimation`.

    Args:
        noise_schedule: A :class:`NoiseSchedule` or a diffusers-style scheduler.
        prediction: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        snr_range: ``(low, high)`` clamp of the SNR, default ``(1e-6, 1000)``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``prediction`` is unknown or ``snr_range`` is not ordered.

    Shape:
        - loss: ``[B]``; context.timesteps: ``[B]``.
        - output: ``[B]``.

    Example:
        >>> import torch
        >>> modifier = DebiasedEstimation(NoiseSchedule.scaled_linear())
        >>> context = LossContext("mse", (torch.zeros(2, 4),), timesteps=torch.tensor([0, 999]))
        >>> modifier(torch.ones(2), context)
        tensor([ 0.0316, 14.6146])

    Reference:
        Yu et al., "Debias the Training of Diffusion Models", arXiv:2310.08442 (2023);
        kohya-ss/sd-scripts, ``library/custom_train_functions.py``
        (``apply_debiased_estimation``).
    """

    def __init__(
        self,
        noise_schedule: NoiseSchedule | Any,
        prediction: str = "epsilon",
        snr_range: tuple[float, float] = DEBIASED_SNR_RANGE,
    ) -> None:
        super().__init__(noise_schedule)
        self.prediction = _check_prediction("DebiasedEstimation", prediction)
        self.snr_range = _check_snr_range("DebiasedEstimation", snr_range)

    def _weight_from_snr(self, snr: Tensor) -> Tensor:
        return _debiased_estimation_weight(snr, self.prediction, self.snr_range)

    def extra_repr(self) -> str:
        """Show the options."""
        return f"prediction={self.prediction!r}, snr_range={self.snr_range}"


class P2(_SNRWeighting):
    """Perception-prioritised (P2) weighting ``1 / (k + SNR)^gamma`` of the diffusion loss.

    Functional twin: :func:`~nectarloss.functional.p2`.

    Args:
        noise_schedule: A :class:`NoiseSchedule` or a diffusers-style scheduler.
        gamma: Exponent ``gamma > 0`` (the paper uses 0.5 or 1).
        k: Offset ``k > 0`` (the paper uses 1).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``gamma <= 0`` or ``k <= 0``.

    Shape:
        - loss: ``[B]``; context.timesteps: ``[B]``.
        - output: ``[B]``.

    Example:
        >>> import torch
        >>> modifier = P2(NoiseSchedule.scaled_linear(), gamma=1.0, k=1.0)
        >>> context = LossContext("mse", (torch.zeros(2, 4),), timesteps=torch.tensor([0, 999]))
        >>> modifier(torch.ones(2), context)
        tensor([8.5000e-04, 9.9534e-01])

    Reference:
        Choi et al., "Perception Prioritized Training of Diffusion Models", CVPR 2022.
    """

    def __init__(
        self, noise_schedule: NoiseSchedule | Any, gamma: float = 1.0, k: float = 1.0
    ) -> None:
        super().__init__(noise_schedule)
        self.gamma = check_positive("P2", "gamma", gamma)
        self.k = check_positive("P2", "k", k)

    def _weight_from_snr(self, snr: Tensor) -> Tensor:
        return _p2_weight(snr, self.gamma, self.k)

    def extra_repr(self) -> str:
        """Show the options."""
        return f"gamma={self.gamma}, k={self.k}"

"""The Sangoi modifier: scale the diffusion loss by prediction accuracy and step difficulty."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nectarloss.functional.sangoi import (
    _EPS,
    SANGOI_SNR_RANGE,
    _check_batch,
    _check_inputs,
    _check_mask,
    _check_reference_mask,
    _check_sangoi_options,
    _sangoi_weight_compute,
)
from nectarloss.functional.snr_weights import _check_per_sample
from nectarloss.modifiers.base import (
    LossContext,
    Modifier,
    check_timesteps_in,
    maybe_compiled,
)
from nectarloss.noise import NoiseSchedule
from nectarloss.noise import as_noise_schedule as _as_noise_schedule
from nectarloss.validation import check_bool

__all__ = ["Sangoi"]


class Sangoi(Modifier):
    """Multiply the per-sample loss by ``exp(-(1 - MAPE) * log(1 + SNR))``.

    The MAPE is computed from ``context.prediction`` and ``context.target`` (clamped to
    ``[0, 1]`` per element, averaged over every non-batch dim, or over
    ``context.extra["mask"]`` when given); the SNR comes from ``noise_schedule`` at
    ``context.timesteps``, clamped to ``snr_range``. See
    :mod:`nectarloss.functional.sangoi` for the fixes over the reference implementation
    (OneTrainer's), each an option here.
    Functional twin: :func:`~nectarloss.functional.sangoi`.

    Args:
        noise_schedule: A :class:`NoiseSchedule` or a diffusers-style scheduler.
        eps: Added to the MAPE denominator (the reference's ``1e-8``).
        snr_range: ``(low, high)`` clamp of the SNR (the reference's ``(1e-4, 100)``).
        sign_safe: Divide by ``|target| + eps`` (True) instead of ``target + eps``.
        upcast: Compute in float32 when the inputs are half precision (autocast).
        detach: The weight carries no gradient (True); False lets gradients flow through
            it into the prediction, as in the reference.
        reference_exact: Reproduce the reference implementation's numbers bit for bit
            (implies no sign safety, no upcast, no mask).
        mask_key: Key of the optional mask in ``context.extra``; None ignores masks.
        use_compile: Fuse the weight computation with ``torch.compile`` (one pass over
            the data once compiled; the first call compiles, which takes seconds).

    Raises:
        TypeError: If an option has the wrong type.
        ValueError: If an option is out of range.

    Shape:
        - loss: ``[B]``; context.inputs: prediction and target ``[B, ...]`` of one shape;
          context.timesteps: ``[B]``; mask: broadcastable to the inputs.
        - output: ``[B]``.

    Example:
        >>> import torch
        >>> modifier = Sangoi(NoiseSchedule.scaled_linear())
        >>> target = torch.ones(2, 4, 8, 8)
        >>> context = LossContext("mse", (target, target), timesteps=torch.tensor([0, 999]))
        >>> modifier(torch.ones(2), context)  # perfect predictions: weight 1 / (1 + SNR)
        tensor([0.0099, 0.9953])

    Reference:
        Sangoi, "Sangoi Loss Modifier Function" for OneTrainer (2024).
    """

    requires_timesteps = True

    def __init__(
        self,
        noise_schedule: NoiseSchedule | Any,
        *,
        eps: float = _EPS,
        snr_range: tuple[float, float] = SANGOI_SNR_RANGE,
        sign_safe: bool = True,
        upcast: bool = True,
        detach: bool = True,
        reference_exact: bool = False,
        mask_key: str | None = "mask",
        use_compile: bool = False,
    ) -> None:
        super().__init__()
        self.noise_schedule = _as_noise_schedule("Sangoi", noise_schedule)
        self.eps, self.snr_range = _check_sangoi_options("Sangoi", eps, snr_range, False, None)
        self.sign_safe = check_bool("Sangoi", "sign_safe", sign_safe)
        self.upcast = check_bool("Sangoi", "upcast", upcast)
        self.detach = check_bool("Sangoi", "detach", detach)
        self.reference_exact = check_bool("Sangoi", "reference_exact", reference_exact)
        if mask_key is not None and not isinstance(mask_key, str):
            raise TypeError(
                f"Sangoi: `mask_key` expected a str or None, got {type(mask_key).__name__}."
            )
        self.use_compile = check_bool("Sangoi", "use_compile", use_compile)
        self.mask_key = mask_key

    def check_context(self, context: LossContext) -> None:
        """Check that ``context.timesteps`` lie in the noise table (a sync)."""
        check_timesteps_in(self.noise_schedule, "Sangoi", context)

    def forward(self, loss: Tensor, context: LossContext) -> Tensor:
        """Return ``loss * weight``.

        Args:
            loss: Per-sample loss, shape ``[B]``.
            context: Prediction and target (``inputs[0]``, ``inputs[1]``), ``timesteps``
                and optionally ``extra[mask_key]``.

        Returns:
            The weighted per-sample loss, shape ``[B]``.

        Raises:
            ValueError: If ``timesteps`` or the target is missing, a shape disagrees, or a
                mask is given with ``reference_exact=True``.
            TypeError: If ``timesteps``, an input or the mask is not a Tensor.
        """
        timesteps = context.require_timesteps(type(self).__name__)
        owner = f"{context.loss_name}: modifier Sangoi"
        prediction, target = _check_inputs(owner, context.prediction, context.target)
        _check_batch(owner, loss, prediction)
        _check_per_sample(owner, loss, "timesteps", timesteps)
        mask = context.extra.get(self.mask_key) if self.mask_key is not None else None
        if torch.compiler.is_compiling():  # eps and snr_range may be SymFloats (dynamic=True)
            _check_reference_mask(owner, self.reference_exact, mask)
        else:
            _check_sangoi_options(owner, self.eps, self.snr_range, self.reference_exact, mask)
        checked_mask = _check_mask(owner, mask, prediction.shape)
        compute = maybe_compiled(_sangoi_weight_compute, self.use_compile)
        weight: Tensor = compute(
            self.noise_schedule.snr(timesteps),
            prediction,
            target,
            checked_mask,
            self.eps,
            self.snr_range,
            self.sign_safe,
            self.upcast,
            self.detach,
            self.reference_exact,
        )
        return loss * weight

    def extra_repr(self) -> str:
        """Show the options."""
        return (
            f"eps={self.eps}, snr_range={self.snr_range}, sign_safe={self.sign_safe}, "
            f"upcast={self.upcast}, detach={self.detach}, "
            f"reference_exact={self.reference_exact}, "
            f"mask_key={self.mask_key!r}, use_compile={self.use_compile}"
        )

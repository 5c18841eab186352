"""Pure tensor functions behind the modifiers: no state, no host synchronisation.

Each stateful or configurable module in :mod:`nectarloss.modifiers` has a twin here named
after it in snake_case (``SuperLoss`` -> :func:`super_loss`, ``MinSNR`` ->
:func:`min_snr`, ...); module and function share private helpers.
"""

from nectarloss.functional.lambertw import lambertw
from nectarloss.functional.sangoi import SANGOI_SNR_RANGE, mape, sangoi, sangoi_weight
from nectarloss.functional.snr_weights import (
    DEBIASED_SNR_RANGE,
    PREDICTION_TYPES,
    debiased_estimation,
    debiased_estimation_weight,
    min_snr,
    min_snr_weight,
    p2,
    p2_weight,
)
from nectarloss.functional.super_loss import (
    rank_by_confidence,
    super_loss,
    super_loss_confidence,
)

__all__ = [
    "DEBIASED_SNR_RANGE",
    "PREDICTION_TYPES",
    "SANGOI_SNR_RANGE",
    "debiased_estimation",
    "debiased_estimation_weight",
    "lambertw",
    "mape",
    "min_snr",
    "min_snr_weight",
    "p2",
    "p2_weight",
    "rank_by_confidence",
    "sangoi",
    "sangoi_weight",
    "super_loss",
    "super_loss_confidence",
]

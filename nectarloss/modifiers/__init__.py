"""Per-sample loss modifiers and the SNR sources they use.

A modifier takes the per-sample loss (shape ``[B]``) and a :class:`LossContext` and
returns the modified per-sample loss; its state lives in buffers. Each has a pure twin in
:mod:`nectarloss.functional`.
"""

from nectarloss.modifiers.base import LossContext, Modifier
from nectarloss.modifiers.sangoi import Sangoi
from nectarloss.modifiers.snr import P2, DebiasedEstimation, MinSNR
from nectarloss.modifiers.superloss import SuperLoss
from nectarloss.noise import NoiseSchedule  # re-exported: users import it from here

__all__ = [
    "DebiasedEstimation",
    "LossContext",
    "MinSNR",
    "Modifier",
    "NoiseSchedule",
    "P2",
    "Sangoi",
    "SuperLoss",
]

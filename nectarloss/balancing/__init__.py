"""Adaptive loss balancing: weights computed from the run, sync-free, logged per step.

Attach one with ``register_loss_fn(..., balancer=...)``; one instance attached to
several losses balances them as a group. See :class:`Balancer`.
"""

from nectarloss.balancing.adaptive import AdaptiveWeight
from nectarloss.balancing.base import Balancer
from nectarloss.balancing.dwa import DWA
from nectarloss.balancing.gradnorm import GradNorm
from nectarloss.balancing.uncertainty import UncertaintyWeighting

__all__ = ["DWA", "AdaptiveWeight", "Balancer", "GradNorm", "UncertaintyWeighting"]

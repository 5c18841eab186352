"""``UncertaintyWeighting``: homoscedastic-uncertainty task weighting (Kendall et al.)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nectarloss.balancing.base import Balancer, weight_dtype
from nectarloss.validation import check_float

__all__ = ["UncertaintyWeighting"]


class UncertaintyWeighting(Balancer):
    """Learn one log-variance ``s_i`` per loss: each contributes ``L_i / (2 e^s_i) + s_i / 2``.

    This is the form LibMTL uses (``UW``), with ``s_i`` starting at ``init`` (LibMTL:
    -0.5). A loss weight ``w`` (``loss_weight`` or a schedule) scales the whole
    contribution, ``w (L_i / (2 e^s_i) + s_i / 2)``, so a warm-up at 0 leaves ``s_i``
    alone. The weight applied and logged is ``w / (2 e^s_i)``; the returned loss also
    holds ``w s_i / 2``, so its gradient reaches ``s_i``. Give the optimizer
    ``lm.parameters()`` (or this module's ``parameters()``) next to the model's, and
    register every loss of the group before building it (a new member grows the
    parameter; a removed one keeps its slot, so the optimizer's tensor stays the one
    learnt, and a loss registered again under that name takes its slot back).

    Args:
        init: The starting ``s_i`` of each loss.

    Example:
        >>> uw = UncertaintyWeighting(init=-0.5)
        >>> uw.bind("seg"); uw.bind("depth")
        >>> loss, weight = uw.weigh("seg", torch.tensor(2.0), 1.0, epoch=0)
        >>> round(loss.item(), 4), round(weight.item(), 4)  # 2 / (2 e^-0.5) - 0.25
        (1.3987, 0.8244)

    Reference:
        Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses
        for Scene Geometry and Semantics", CVPR 2018; LibMTL ``weighting/UW.py``.
    """

    def __init__(self, init: float = -0.5) -> None:
        super().__init__()
        self.init = check_float(
            "UncertaintyWeighting", "init", init, "a finite float", type_what="a float"
        )
        #: The learnable ``s_i`` (log variances), one slot per loss name ever bound.
        self.log_vars = nn.Parameter(torch.zeros(0))
        #: Loss name -> its slot in :attr:`log_vars`.
        self.slots: dict[str, int] = {}

    def _on_bind(self, name: str) -> None:
        if name in self.slots:  # registered again: its slot (and the optimizer's tensor)
            return
        old = self.log_vars.detach()
        new = torch.cat([old, torch.full((1,), self.init, dtype=old.dtype, device=old.device)])
        self.log_vars = nn.Parameter(new)
        self.slots[name] = len(self.slots)

    def _log_var(self, name: str) -> Tensor:
        self.index(name)  # a clear KeyError for a loss it does not balance
        return self.log_vars[self.slots[name]]

    def factor(self, name: str, value: Tensor, epoch: float) -> Tensor:
        """``1 / (2 e^s_i)``, detached."""
        return (1.0 / (2.0 * self._log_var(name).exp())).detach()

    def weigh(self, name: str, value: Tensor, weight: float, epoch: float) -> tuple[Tensor, Tensor]:
        """``weight (L / (2 e^s) + s / 2)`` (graph to ``s`` intact), and ``weight / (2 e^s)``."""
        s = self._log_var(name)
        self._check_device(s, value, name)
        two_var = 2.0 * s.exp()
        balanced = value / two_var + s / 2.0
        weighted = balanced if weight == 1.0 else balanced * weight
        return weighted.to(value.dtype), (weight / two_var).detach().to(weight_dtype(value))

    def spec_config(self) -> dict[str, Any]:
        """``init``."""
        return {"init": self.init}

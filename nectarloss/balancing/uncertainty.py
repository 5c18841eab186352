"""``UncertaintyWeighting``: homoscedastic-uncertainty task weighting (Kendall et al.)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nectarloss.balancing.base import Balancer
from nectarloss.validation import check_float

__all__ = ["UncertaintyWeighting"]


class UncertaintyWeighting(Balancer):
    """Learn one log-variance ``s_i`` per loss: each contributes ``L_i / (2 e^s_i) + s_i / 2``.

    This is the form LibMTL uses (``UW``), with ``s_i`` starting at ``init`` (LibMTL:
    -0.5). With a loss weight ``w`` (``loss_weight`` or a schedule), the loss scales
    first: ``w L_i / (2 e^s_i) + s_i / 2``. The weight applied and logged is
    ``w / (2 e^s_i)``; the returned loss also holds ``s_i / 2``, so its gradient
    reaches ``s_i``. Give the optimizer ``lm.parameters()`` (or this module's
    ``parameters()``) next to the model's, and register every loss of the group before
    building it (a new member grows the parameter).

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
        #: The learnable ``s_i`` (log variances), one per member in order.
        self.log_vars = nn.Parameter(torch.zeros(0))

    def _on_bind(self, name: str) -> None:
        old = self.log_vars.detach()
        new = torch.cat([old, torch.full((1,), self.init, dtype=old.dtype, device=old.device)])
        self.log_vars = nn.Parameter(new)

    def _on_unbind(self, index: int) -> None:
        old = self.log_vars.detach()
        self.log_vars = nn.Parameter(torch.cat([old[:index], old[index + 1 :]]))

    def factor(self, name: str, value: Tensor, epoch: float) -> Tensor:
        """``1 / (2 e^s_i)``, detached."""
        s = self.log_vars[self.index(name)]
        return (1.0 / (2.0 * s.exp())).detach()

    def weigh(self, name: str, value: Tensor, weight: float, epoch: float) -> tuple[Tensor, Tensor]:
        """``weight * L / (2 e^s) + s / 2`` (graph to ``s`` intact), and ``weight / (2 e^s)``."""
        s = self.log_vars[self.index(name)]
        self._check_device(s, value, name)
        scaled = value if weight == 1.0 else value * weight
        two_var = 2.0 * s.exp()
        weighted = scaled / two_var + s / 2.0
        return weighted.to(value.dtype), (weight / two_var).detach().to(value.dtype)

    def spec_config(self) -> dict[str, Any]:
        """``init``."""
        return {"init": self.init}

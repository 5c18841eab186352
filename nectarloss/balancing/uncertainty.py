"""``UncertaintyWeighting``: homoscedastic-uncertainty task weighting (Kendall et al.)."""

from __future__ import annotations

from collections.abc import Mapping
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

    # -- checkpoints: ``s`` travels by loss name ------------------------------------------
    PER_MEMBER_STATE = False  # slots are matched by name (below), not by position

    def get_extra_state(self) -> dict[str, Any]:
        """The members and each loss's slot in :attr:`log_vars`."""
        return {**super().get_extra_state(), "slots": dict(self.slots)}

    def set_extra_state(self, state: Any) -> None:
        """Check what :meth:`get_extra_state` saved (this group's slots stay its own)."""
        super().set_extra_state(state)
        self._saved_slots(state)

    @staticmethod
    def _saved_slots(extra: object) -> dict[str, int]:
        slots = extra.get("slots") if isinstance(extra, dict) else None
        if not isinstance(slots, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in slots.items()
        ):
            raise ValueError(
                f"UncertaintyWeighting: state `_extra_state` expected {{'slots': {{name: "
                f"index}}}}, got {extra!r}."
            )
        return slots

    def check_state(self, saved: Mapping[str, Any], owner: str) -> None:
        """Raise ``ValueError`` unless ``saved`` holds one ``s`` per saved slot."""
        if set(saved) != {"log_vars", "_extra_state"}:
            raise ValueError(
                f"{owner}: state `balancer` expected the keys ['_extra_state', 'log_vars'] "
                f"of its UncertaintyWeighting, got {sorted(saved)}."
            )
        try:
            slots = self._saved_slots(saved["_extra_state"])
        except ValueError as exc:
            raise ValueError(f"{owner}: {exc}") from None
        values = saved["log_vars"]
        if (
            not isinstance(values, Tensor)
            or values.dim() != 1
            or sorted(slots.values()) != list(range(values.numel()))
        ):
            raise ValueError(
                f"{owner}: state `balancer.log_vars` expected one value per saved slot "
                f"{slots}, got {values!r:.80}."
            )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Take each loss's saved ``s`` by name (a loss new to this group keeps ``init``)."""
        key = prefix + "log_vars"
        extra = state_dict.get(prefix + "_extra_state")
        if key in state_dict and isinstance(extra, dict) and isinstance(extra.get("slots"), dict):
            saved, saved_slots = state_dict[key], extra["slots"]
            mapped = self.log_vars.detach().clone()
            for name, slot in self.slots.items():
                if name in saved_slots:
                    mapped[slot] = saved[saved_slots[name]]
            state_dict[key] = mapped
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def spec_config(self) -> dict[str, Any]:
        """``init``."""
        return {"init": self.init}

"""``AdaptiveWeight``: the VQGAN / taming-transformers adaptive discriminator weight."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nectarloss.balancing.base import Balancer
from nectarloss.validation import add_note, check_positive, check_weight

__all__ = ["AdaptiveWeight"]

LastLayer = nn.Parameter | Tensor | Callable[[], Tensor]


class AdaptiveWeight(Balancer):
    """Scale a loss so its gradient at the last layer matches a reference loss's.

    The factor is ``||grad_last(L_ref)|| / (||grad_last(L_this)|| + eps)``, clamped to
    ``[0, max_factor]`` and detached (Esser et al.'s ``calculate_adaptive_weight``),
    where ``L_ref`` is the sum of the weighted outputs of the ``reference`` losses and
    ``L_this`` the balanced loss's unweighted (post-modifier) mean. The weight applied
    is the loss's own weight times the factor, as taming multiplies by
    ``discriminator_weight``.

    **Order:** in each step the references must be computed, through the same manager,
    before the balanced loss (in a pix2pix step: ``G_L1``, then ``G_GAN``; the balanced
    loss may then be computed several times, e.g. once per discriminator scale). The
    latest output of each reference is used: before the first one the call raises
    ``RuntimeError``, and so does torch when that output is from an earlier step whose
    graph ``backward()`` has freed (with a note saying so). Two ``torch.autograd.grad``
    calls per call, no host sync.

    With gradients off (``torch.no_grad()``, validation) or the balancer in eval mode
    (``.eval()``), the factor is the constant ``eval_factor`` (taming falls back to 0
    there; the default 1.0 reports the loss at its own weight).

    Args:
        reference: The reference loss name, or several whose sum is used.
        last_layer: The parameter the gradients are taken at (the generator's last
            layer weight), or a callable returning it. May be set later
            (``balancer.last_layer = ...``), before the first call.
        eps: Added to the balanced loss's gradient norm.
        max_factor: Upper clamp of the factor.
        eval_factor: The factor without gradients or in eval mode.

    Example:
        >>> from nectarloss import LossManager
        >>> gen = nn.Linear(3, 3)
        >>> lm = LossManager(enable_logging=False)
        >>> _ = lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=1.0)
        >>> _ = lm.register_loss_fn("G_GAN", nn.MSELoss(), loss_weight=0.5,
        ...     balancer=AdaptiveWeight(reference="G_L1", last_layer=gen.weight))
        >>> x, y = torch.ones(2, 3), torch.zeros(2, 3)
        >>> l1 = lm.compute_loss_xy("G_L1", gen(x), y)
        >>> gan = lm.compute_loss_xy("G_GAN", gen(x), y)  # weight 0.5 * factor

    Reference:
        Esser, Rombach and Ommer, "Taming Transformers for High-Resolution Image
        Synthesis", CVPR 2021 (``taming/modules/losses/vqperceptual.py``).
    """

    REFERENCES = ("last_layer",)
    PER_MEMBER_STATE = False
    TRANSIENT = ("_observed",)

    def __init__(
        self,
        reference: str | Sequence[str],
        last_layer: LastLayer | None = None,
        eps: float = 1e-4,
        max_factor: float = 1e4,
        eval_factor: float = 1.0,
    ) -> None:
        super().__init__()
        names = [reference] if isinstance(reference, str) else list(reference)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(
                "AdaptiveWeight: `reference` expected a loss name or a non-empty list of "
                f"names, got {reference!r}."
            )
        self.reference = tuple(names)
        self.last_layer = last_layer
        self.eps = check_positive("AdaptiveWeight", "eps", eps)
        self.max_factor = check_positive("AdaptiveWeight", "max_factor", max_factor)
        self.eval_factor = check_weight("AdaptiveWeight", eval_factor, "eval_factor")
        #: The latest weighted output of each reference (graph intact).
        self._observed: dict[str, Tensor] = {}

    @property
    def references(self) -> tuple[str, ...]:
        """The reference losses' names."""
        return self.reference

    def observe(self, name: str, weighted: Tensor) -> None:
        """Keep a reference's weighted output (with its graph) for this step's calls."""
        self._observed[name] = weighted

    def _parameter(self, name: str) -> Tensor:
        last = self.last_layer
        if callable(last) and not isinstance(last, Tensor):
            last = last()
        if not isinstance(last, Tensor):
            raise ValueError(
                f"AdaptiveWeight ({name}): `last_layer` expected a parameter (or a callable "
                f"returning one), got {type(last).__name__}; set balancer.last_layer first."
            )
        if not last.requires_grad:
            raise ValueError(
                f"AdaptiveWeight ({name}): `last_layer` expected a tensor that requires "
                "grad (the generator's last layer weight), got one that does not."
            )
        return last

    def _fresh_reference(self, name: str) -> Tensor:
        parts: list[Tensor] = []
        for ref in self.reference:
            seen = self._observed.get(ref)
            if seen is None:
                raise RuntimeError(
                    f"AdaptiveWeight ({name}): reference loss {ref!r} was not computed in this "
                    f"step before {name!r}; compute it first, through the same LossManager "
                    "(the weight compares both losses' gradients at the last layer)."
                )
            parts.append(seen)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def factor(self, name: str, value: Tensor, epoch: float) -> Tensor:
        """``clamp(||grad L_ref|| / (||grad L_this|| + eps), 0, max_factor)``, detached."""
        if not (self.training and torch.is_grad_enabled() and value.requires_grad):
            return torch.full((), self.eval_factor, dtype=torch.float32, device=value.device)
        reference = self._fresh_reference(name)
        last = self._parameter(name)
        try:
            (ref_grad,) = torch.autograd.grad(reference, last, retain_graph=True)
            (own_grad,) = torch.autograd.grad(value, last, retain_graph=True)
        except RuntimeError as exc:
            add_note(
                exc,
                f"nectarloss: AdaptiveWeight ({name}) takes the gradients of {name!r} and of "
                f"its reference(s) {list(self.reference)} at `last_layer`: both must depend "
                "on it, with their graphs alive. A freed graph means the reference's latest "
                f"output is from an earlier step: compute it before {name!r} in every step.",
            )
            raise
        ratio = torch.linalg.vector_norm(ref_grad) / (torch.linalg.vector_norm(own_grad) + self.eps)
        return torch.clamp(ratio, 0.0, self.max_factor).detach()

    def spec_config(self) -> dict[str, Any]:
        """``reference``, ``eps``, ``max_factor``, ``eval_factor`` (not ``last_layer``)."""
        return {
            "reference": list(self.reference),
            "eps": self.eps,
            "max_factor": self.max_factor,
            "eval_factor": self.eval_factor,
        }

    def extra_repr(self) -> str:
        """The references and members."""
        return f"reference={list(self.reference)}, members={self.members}"

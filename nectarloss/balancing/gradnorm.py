"""``GradNorm``: gradient normalisation of task weights (Chen et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from nectarloss.balancing.base import Balancer
from nectarloss.validation import add_note, check_float, check_positive

__all__ = ["GradNorm"]

Shared = nn.Parameter | Tensor | Callable[[], Tensor]


class GradNorm(Balancer):
    """Learn task weights that equalise the tasks' gradient norms at a shared layer.

    Each member ``i`` is weighted by a task weight ``w_i`` (starting at 1; applied
    detached, times the loss's own weight). :meth:`step`, called once per training step
    after every member was computed and **before** ``backward()`` (it needs their
    graphs; ``lm.balance_step()`` calls it), updates the weights:

    * ``G_i = w_i ||grad_W L_i||`` at the shared parameter ``W``, ``G = mean_i G_i``;
    * ``r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))``, with ``L_i(0)`` the first
      value of each loss in training (a first value of 0 counts as ``L_i / L_i(0) = 1``);
    * ``L_grad = sum_i |G_i - G r_i^alpha|`` (the target held constant), and one
      gradient step ``w <- w - lr dL_grad/dw``;
    * then ``w`` is clamped to ``>= 1e-6`` and renormalised to sum to ``K``.

    ``L_i`` are the unweighted (post-modifier) means, so the losses' own weights (a
    warm-up, a constant) still scale the balanced terms. The update is a plain
    gradient step on device tensors: no optimizer, no host sync. The task weights are
    a buffer (in ``state_dict``, not in ``parameters()``): only this rule changes them.

    Args:
        shared: The shared parameter ``W`` (e.g. the last shared layer's weight), or a
            callable returning it. May be set later (``balancer.shared = ...``).
        alpha: The asymmetry ``alpha`` (paper: 0.12 to 3.0; 1.5 is common).
        lr: Step size of the weights' update.

    Reference:
        Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization for
        Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.
    """

    #: Smallest task weight after an update.
    MIN_WEIGHT = 1e-6
    REFERENCES = ("shared",)
    TRANSIENT = ("_pending",)

    def __init__(self, shared: Shared | None = None, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__()
        self.shared = shared
        self.alpha = check_float("GradNorm", "alpha", alpha, "a finite float >= 0", low=0.0)
        self.lr = check_positive("GradNorm", "lr", lr)
        #: The task weights ``w_i``, one per member in order.
        self.register_buffer("task_weights", torch.zeros(0))
        #: The first value of each member, ``L_i(0)``.
        self.register_buffer("initial_losses", torch.zeros(0, dtype=torch.float64))
        #: Whether each member's ``L_i(0)`` is set.
        self.has_initial: list[bool] = []
        self._pending: dict[str, Tensor] = {}

    task_weights: Tensor
    initial_losses: Tensor

    def _on_bind(self, name: str) -> None:
        device = self.task_weights.device
        self.task_weights = torch.cat([self.task_weights, torch.ones(1, device=device)])
        self.initial_losses = torch.cat(
            [self.initial_losses, torch.zeros(1, dtype=torch.float64, device=device)]
        )
        self.has_initial.append(False)

    def _on_unbind(self, index: int) -> None:
        keep = [i for i in range(len(self.has_initial)) if i != index]
        self.task_weights = self.task_weights[keep]
        self.initial_losses = self.initial_losses[keep]
        del self.has_initial[index]

    def factor(self, name: str, value: Tensor, epoch: float) -> Tensor:
        """``w_i``, detached; keeps ``value`` (with its graph) for :meth:`step`."""
        index = self.index(name)
        self._check_device(self.task_weights, value, name)
        if value.requires_grad and torch.is_grad_enabled():  # training, not validation
            if not self.has_initial[index]:
                self.initial_losses[index] = value.detach().to(torch.float64)
                self.has_initial[index] = True
            self._pending[name] = value
        return self.task_weights[index]

    def _shared_parameter(self) -> Tensor:
        shared = self.shared
        if callable(shared) and not isinstance(shared, Tensor):
            shared = shared()
        if not isinstance(shared, Tensor) or not shared.requires_grad:
            raise ValueError(
                "GradNorm: `shared` expected a parameter that requires grad (or a callable "
                f"returning one), got {type(shared).__name__}; set balancer.shared first."
            )
        return shared

    def step(self) -> None:
        """Update the task weights from this step's members (see the class docstring).

        Does nothing when no member was computed with gradients since the last step
        (validation). Never syncs.

        Raises:
            RuntimeError: Some members were computed and others not.
        """
        pending = self._pending
        if not pending:
            return
        missing = [m for m in self.members if m not in pending]
        if missing:
            raise RuntimeError(
                f"GradNorm: step() expected every member computed since the last step; "
                f"missing {missing} (computed: {sorted(pending)})."
            )
        self._pending = {}
        shared = self._shared_parameter()
        losses = [pending[m] for m in self.members]
        grads: list[Tensor] = []
        for member, loss in zip(self.members, losses, strict=True):
            try:
                grads.append(torch.autograd.grad(loss, shared, retain_graph=True)[0])
            except RuntimeError as exc:
                add_note(
                    exc,
                    f"nectarloss: GradNorm.step() took loss {member!r}'s gradient at "
                    "`shared`; call it (lm.balance_step()) before backward(), with every "
                    "member depending on `shared`.",
                )
                raise
        norms = torch.stack([torch.linalg.vector_norm(g) for g in grads]).detach()
        values = torch.stack([loss.detach() for loss in losses]).to(torch.float64)
        with torch.no_grad():
            weights = self.task_weights
            g_norms = weights * norms
            initial = self.initial_losses  # a first value of 0 gives no rate: ratio 1
            ratios = torch.where(initial > 0, values / initial.clamp_min(1e-300), 1.0)
            relative = (ratios / ratios.mean()).to(weights.dtype)
            target = g_norms.mean() * relative**self.alpha
            # d/dw_i sum_j |w_j n_j - target_j| = sign(w_i n_i - target_i) n_i
            grad = torch.sign(g_norms - target) * norms
            updated = (weights - self.lr * grad).clamp_min(self.MIN_WEIGHT)
            weights.copy_(updated * (len(self.members) / updated.sum()))

    def get_extra_state(self) -> dict[str, Any]:
        """The members, and which members' first values are set."""
        return {**super().get_extra_state(), "has_initial": list(self.has_initial)}

    def set_extra_state(self, state: Any) -> None:
        """Restore :meth:`get_extra_state`."""
        super().set_extra_state(state)
        flags = state.get("has_initial")
        if not isinstance(flags, list) or not all(isinstance(f, bool) for f in flags):
            raise ValueError(
                f"GradNorm: state `_extra_state` expected {{'has_initial': [bool, ...]}}, "
                f"got {state!r}."
            )
        self.has_initial = list(flags)

    def spec_config(self) -> dict[str, Any]:
        """``alpha`` and ``lr`` (not ``shared``)."""
        return {"alpha": self.alpha, "lr": self.lr}

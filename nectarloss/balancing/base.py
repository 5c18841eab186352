"""``Balancer``: an adaptive weight source shared by one loss or a group of losses.

A balancer is attached with ``register_loss_fn(..., balancer=...)``. At each call of one
of its losses it returns the weighted loss and the weight it applied, a detached 0-d
tensor on the loss's device, so nothing is read back to the host: the manager records
that weight per step and flushes it with the values. The weight applied is the loss's
``loss_weight`` (or its schedule's value) times the balancer's factor, so warm-ups and
constants compose with it. One instance attached to several losses balances them as a
group; its state (learnable parameters, buffers, host counters) lives in its
``state_dict`` and moves with ``.to()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Balancer", "weight_dtype"]


def weight_dtype(value: Tensor) -> torch.dtype:
    """The dtype applied weights are kept in for a loss ``value``: float64 or float32."""
    return torch.float64 if value.dtype == torch.float64 else torch.float32


class Balancer(nn.Module):
    """Base class: the group's members, and the hooks the manager calls.

    Subclasses implement :meth:`factor` (or override :meth:`weigh` when the balanced
    loss is not the loss times a weight, as in :class:`UncertaintyWeighting`), and may
    react to :meth:`_on_bind` (per-member state), :meth:`observe` (other losses'
    outputs) and :meth:`step` (an update after every member was computed).
    """

    #: Attributes holding the user's tensors or callables (a model's layer): kept as plain
    #: references, never registered as this module's parameters, saved or moved.
    REFERENCES: tuple[str, ...] = ()
    #: Whether tensors of the state hold one entry per member, in member order (then a
    #: checkpoint loads only into the same members in the same order).
    PER_MEMBER_STATE = True

    def __init__(self) -> None:
        super().__init__()
        #: The names of the losses this balancer weights, in registration order.
        self.members: list[str] = []
        #: The spec group it was built for (``None`` when made in Python).
        self.group: str | None = None

    #: Per-step attributes holding graph tensors (a dict each): left out of copies and
    #: pickles, which cannot take non-leaf tensors.
    TRANSIENT: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # type: ignore[no-untyped-call]
        for name in self.TRANSIENT:
            state[name] = {}
        return state

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.REFERENCES:  # a model's parameter stays the model's
            self.__dict__[name] = value
            return
        super().__setattr__(name, value)

    # -- membership (registration) --------------------------------------------------------
    def bind(self, name: str) -> None:
        """Add a loss to the group (called by the manager when it is registered).

        Raises:
            ValueError: ``name`` is already a member.
        """
        if name in self.members:
            raise ValueError(f"{type(self).__name__}: loss {name!r} is already balanced by it.")
        self.members.append(name)
        self._on_bind(name)

    def unbind(self, name: str) -> None:
        """Remove a loss from the group (``remove_loss``); its per-member state goes too."""
        if name in self.members:
            index = self.members.index(name)
            self.members.remove(name)
            self._on_unbind(index)

    def _on_bind(self, name: str) -> None:
        """Grow per-member state for a new member (default: none)."""

    def _on_unbind(self, index: int) -> None:
        """Drop the per-member state at ``index`` (default: none)."""

    def index(self, name: str) -> int:
        """The position of ``name`` in the group.

        Raises:
            KeyError: ``name`` is not a member.
        """
        try:
            return self.members.index(name)
        except ValueError:
            raise KeyError(
                f"{type(self).__name__}: loss {name!r} is not balanced by it; members: "
                f"{self.members}."
            ) from None

    @property
    def references(self) -> tuple[str, ...]:
        """Names of other losses whose weighted outputs :meth:`observe` should get."""
        return ()

    # -- the per-step path (never syncs) ------------------------------------------------
    def observe(self, name: str, weighted: Tensor) -> None:
        """Receive the weighted output (graph intact) of a loss named in :attr:`references`."""

    def factor(self, name: str, value: Tensor, epoch: float) -> Tensor:
        """The factor for member ``name`` at this call: a detached 0-d tensor.

        Args:
            name: The member being computed.
            value: Its unweighted (post-modifier) mean, graph intact.
            epoch: The call's epoch.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement factor().")

    def weigh(self, name: str, value: Tensor, weight: float, epoch: float) -> tuple[Tensor, Tensor]:
        """Weight one call of a member; never syncs.

        Args:
            name: The member being computed.
            value: Its unweighted (post-modifier) mean, graph intact.
            weight: The loss's own weight at this call (``loss_weight`` or the schedule's).
            epoch: The call's epoch.

        Returns:
            The weighted loss (graph intact, in ``value``'s dtype) and the weight applied:
            ``weight`` times the factor, a detached 0-d tensor (float32, or float64 for a
            float64 loss, so a large weight of a half-precision loss does not overflow).
        """
        factor = self.factor(name, value, epoch).detach()
        applied = factor.to(weight_dtype(value)) * weight
        return (value * applied).to(value.dtype), applied

    def step(self) -> None:
        """An update after every member was computed in a step (default: nothing)."""

    # -- checkpoints --------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        """Host state saved with the tensors: the members, in order."""
        return {"members": list(self.members)}

    def set_extra_state(self, state: Any) -> None:
        """Check what :meth:`get_extra_state` saved (members follow registration)."""
        if not isinstance(state, dict) or not isinstance(state.get("members"), list):
            raise ValueError(
                f"{type(self).__name__}: state `_extra_state` expected a dict with "
                f"`members`, got {state!r}."
            )

    def check_state(self, saved: Mapping[str, Any], owner: str) -> None:
        """Raise ``ValueError`` unless ``saved`` (a ``state_dict``) loads into this one.

        Same keys and tensor shapes, and, for per-member state, the same members in the
        same order (a checkpoint is not silently mapped onto other losses).
        """
        what = type(self).__name__
        own = self.state_dict()
        if set(saved) != set(own):
            raise ValueError(
                f"{owner}: state `balancer` expected the keys {sorted(own)} of its {what}, "
                f"got {sorted(saved)}."
            )
        extra = saved.get("_extra_state")
        members = extra.get("members") if isinstance(extra, dict) else None
        if self.PER_MEMBER_STATE and members is not None and members != self.members:
            raise ValueError(
                f"{owner}: state `balancer` is a {what} of the losses {members}, this one "
                f"balances {self.members}; register the same losses in the same order."
            )
        for key, value in own.items():
            got = saved[key]
            if isinstance(value, Tensor) and (
                not isinstance(got, Tensor) or got.shape != value.shape
            ):
                shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
                raise ValueError(
                    f"{owner}: state `balancer.{key}` expected shape {tuple(value.shape)} "
                    f"(a group of {len(self.members)}), got {shape}."
                )

    # -- helpers for subclasses ---------------------------------------------------------
    def _check_device(self, tensor: Tensor, value: Tensor, name: str) -> None:
        if tensor.device != value.device:
            raise RuntimeError(
                f"{type(self).__name__}: its state is on {tensor.device} but loss {name!r} "
                f"is on {value.device}; pass device= to LossManager or call .to(device) on "
                "the balancer before building the optimizer."
            )

    def extra_repr(self) -> str:
        """The members."""
        return f"members={self.members}"

    def spec_config(self) -> dict[str, Any]:
        """The options a JSON spec writes for this balancer (besides ``name``/``group``)."""
        return {}

"""The per-sample modifier protocol shared by every modifier.

A modifier receives the per-sample loss (shape ``[B]``) and a :class:`LossContext`
holding everything the caller passed to ``LossManager.compute_loss``, and returns the
modified per-sample loss (shape ``[B]``). It runs on the loss's device and never
synchronises with the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = ["LossContext", "Modifier", "TimestepTable", "check_timesteps_in", "maybe_compiled"]

_COMPILED: dict[Callable[..., Any], Callable[..., Any]] = {}


def maybe_compiled(fn: Callable[..., Any], use_compile: bool) -> Callable[..., Any]:
    """``fn``, or its ``torch.compile`` version (compiled once per process, lazily)."""
    if not use_compile:
        return fn
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn)
    return _COMPILED[fn]


@dataclass(frozen=True)
class LossContext:
    """What a modifier may look at besides the per-sample loss.

    Args:
        loss_name: The registered name of the loss being computed (used in messages).
        inputs: The loss inputs in call order. By convention ``inputs[0]`` is the
            prediction and ``inputs[1]`` the target.
        timesteps: Diffusion timesteps, shape ``[B]`` (integer or float), or ``None``.
        extra: Any other keyword passed to ``compute_loss(..., **context)``, e.g. ``mask``.
    """

    loss_name: str
    inputs: tuple[Tensor, ...]
    timesteps: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prediction(self) -> Tensor:
        """The first loss input (the model's prediction)."""
        return self.inputs[0]

    @property
    def target(self) -> Tensor:
        """The second loss input (the target)."""
        if len(self.inputs) < 2:
            raise ValueError(
                f"{self.loss_name}: a modifier expected a target as the second input, "
                f"got {len(self.inputs)} input(s)."
            )
        return self.inputs[1]

    def require_timesteps(self, owner: str) -> Tensor:
        """Return ``timesteps`` or raise a clear error naming ``owner`` and the loss."""
        if self.timesteps is None:
            raise ValueError(
                f"{self.loss_name}: modifier {owner} expected `timesteps` "
                f"(call compute_loss(..., timesteps=t)), got None."
            )
        if not isinstance(self.timesteps, Tensor):
            raise TypeError(
                f"{self.loss_name}: modifier {owner} expected `timesteps` to be a Tensor, "
                f"got {type(self.timesteps).__name__}."
            )
        return self.timesteps


class Modifier(nn.Module):
    """Base class of per-sample loss modifiers.

    Subclasses implement :meth:`forward`. State (running means, SNR tables) is kept in
    registered buffers so it follows ``.to(device)`` and lands in ``state_dict``.
    """

    #: Whether the modifier needs ``timesteps`` in its context.
    requires_timesteps: bool = False

    def forward(self, loss: Tensor, context: LossContext) -> Tensor:
        """Return the modified per-sample loss.

        Args:
            loss: Per-sample loss, shape ``[B]``.
            context: The call's inputs, timesteps and extra keywords.

        Returns:
            The modified per-sample loss, shape ``[B]``.
        """
        raise NotImplementedError

    def __call__(self, loss: Tensor, context: LossContext) -> Tensor:
        """Run :meth:`forward` through ``nn.Module.__call__`` (hooks included)."""
        out: Tensor = super().__call__(loss, context)
        return out

    def check_context(self, context: LossContext) -> None:
        """Check ``context`` eagerly and raise a clear error naming the loss.

        The manager calls it before :meth:`forward` only when built with
        ``check_timesteps=True``, because a check may read values back (a sync). The
        default checks nothing; modifiers that index a noise table check the timesteps.
        """

    @property
    def confidences(self) -> Tensor | None:
        """Per-sample confidences of the latest batch, for modifiers that estimate them.

        ``None`` for modifiers that do not (every one but SuperLoss).
        """
        return None


class TimestepTable(Protocol):
    """What :func:`check_timesteps_in` needs of a noise schedule."""

    def check_timesteps(self, timesteps: Tensor) -> None:
        """Raise ``ValueError`` / ``TypeError`` for timesteps outside the table."""


def check_timesteps_in(table: TimestepTable, owner: str, context: LossContext) -> None:
    """Check ``context.timesteps`` against ``table``, naming the loss and ``owner`` on error.

    Reads the timesteps back (a sync): for :meth:`Modifier.check_context` only.
    """
    if context.timesteps is None:
        return
    try:
        table.check_timesteps(context.timesteps)
    except (ValueError, TypeError) as exc:
        detail = str(exc).removeprefix("NoiseSchedule: ")
        raise type(exc)(f"{context.loss_name}: modifier {owner}: {detail}") from exc

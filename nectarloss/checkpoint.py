"""Checking and loading a manager's checkpoint: all checks first, then an atomic load.

:func:`check_state` validates a ``LossManager.state_dict()`` against the registered
losses without changing anything; :func:`load_losses` applies the per-loss states and,
if a module rejects its state part-way, restores what every loss held before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nectarloss.records import LMLoss
from nectarloss.validation import check_epoch

__all__ = ["STATE_VERSION", "check_state", "load_losses"]

#: Version of ``LossManager.state_dict()``.
STATE_VERSION = 1


def check_state(state: object, losses: Mapping[str, LMLoss]) -> None:
    """Raise a clear error unless ``state`` can be loaded into a manager with ``losses``.

    Raises:
        TypeError: ``state`` is not a mapping.
        ValueError: Its version, losses, epoch, logged names or a loss's state is wrong.
    """
    owner = "LossManager: state dict"
    if not isinstance(state, Mapping):
        raise TypeError(f"{owner} expected a mapping, got {type(state).__name__}.")
    if state.get("version") != STATE_VERSION:
        raise ValueError(
            f"{owner} `version` expected {STATE_VERSION}, got {state.get('version')!r}."
        )
    saved = state.get("losses")
    if not isinstance(saved, Mapping):
        raise ValueError(f"{owner} `losses` expected a mapping, got {type(saved).__name__}.")
    missing = sorted(set(losses) - set(saved))
    unexpected = sorted(set(saved) - set(losses))
    if missing or unexpected:
        raise ValueError(
            f"{owner}: losses differ from the registered ones; "
            f"missing: {missing}, unexpected: {unexpected}."
        )
    try:
        check_epoch(owner, state.get("epoch"))
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    names = state.get("logged_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{owner} `logged_names` expected a list of str, got {names!r:.60}.")
    for name, entry in losses.items():
        entry.check_state(saved[name])


def load_losses(losses: Mapping[str, LMLoss], saved: Mapping[str, Any]) -> None:
    """Load each loss's checked state; on any failure every loss gets its old state back."""
    backup = {name: entry.state_dict() for name, entry in losses.items()}
    try:
        for name, entry in losses.items():
            entry.load_state_dict(saved[name])
    except BaseException:
        for name, entry in losses.items():
            entry.load_state_dict(backup[name])
        raise

"""Device-to-host transfers of recorded values.

One copy per device. Under DDP, :func:`pending_to_host` (a flush) and
:func:`values_to_host` with ``across_ranks`` (a ``sync=True`` query) merge the ranks'
values first, averaging each loss over the ranks that computed it (see
:mod:`nectarloss.distributed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from nectarloss.distributed import gather_plan, mean_where_computed, reduce_pending

__all__ = ["HostChunk", "pending_to_host", "tensors_to_host", "values_to_host"]


def tensors_to_host(tensors: Sequence[Tensor]) -> list[list[float]]:
    """Copy 1-D float tensors to host lists with one transfer per device.

    Tensors on the same device are concatenated there first, so ``n`` buffers on one
    GPU cost a single device-to-host copy.
    """
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    out: list[list[float]] = [[] for _ in tensors]
    for indices in by_device.values():
        parts = [tensors[i].reshape(-1) for i in indices]
        flat: list[float] = torch.cat(parts).tolist()
        offset = 0
        for i, part in zip(indices, parts, strict=True):
            out[i] = flat[offset : offset + part.numel()]
            offset += part.numel()
    return out


@dataclass(frozen=True)
class HostChunk:
    """One loss's buffered values on the host, ready to be logged.

    Attributes:
        name: The loss.
        steps: Their step numbers (empty when nothing is pending on any rank).
        values: Raw means, averaged over the ranks that computed them under DDP.
        weights: The weights applied, likewise averaged.
    """

    name: str
    steps: range
    values: list[float]
    weights: list[float]


def pending_to_host(
    names: Sequence[str],
    values: Sequence[Tensor],
    weights: Sequence[Sequence[float] | Tensor],
    first_steps: Sequence[int],
    across_ranks: bool = False,
    owner: str = "LossManager",
) -> list[HostChunk]:
    """Copy every loss's buffered values to the host, merged over DDP ranks if asked.

    Alone, this is one transfer per device. With ``across_ranks`` it is a collective
    that every rank must call with the same ``names`` in the same order: two small
    ``all_gather`` calls agree on each loss's count and first step
    (:func:`~nectarloss.distributed.gather_plan`), then one ``all_reduce`` averages
    values and weights over the ranks that computed each loss
    (:func:`~nectarloss.distributed.reduce_pending`). Every rank gets the same chunks.

    Args:
        names: Loss names, in registration order.
        values: Per loss, its buffered 1-D raw means (empty when none are buffered).
        weights: Per loss, the weight applied at each buffered step: host numbers, or a
            1-D device tensor (a balanced loss's), copied with the values.
        first_steps: Per loss, the step of its first buffered value.
        across_ranks: Merge over the ranks of the default process group.
        owner: Who raises, for messages.

    Returns:
        One :class:`HostChunk` per name, in order.

    Raises:
        RankMismatchError: (``across_ranks``, on every rank alike) the ranks registered
            different names, or ranks that computed a loss hold different steps of it.
        ValueError: A loss has a different number of values and weights.

    Example:
        >>> pending_to_host(["a"], [torch.tensor([0.5, 0.25])], [[2.0, 2.0]], [3])
        [HostChunk(name='a', steps=range(3, 5), values=[0.5, 0.25], weights=[2.0, 2.0])]
    """
    for name, value, weight in zip(names, values, weights, strict=True):
        num_weights = weight.numel() if isinstance(weight, Tensor) else len(weight)
        if value.numel() != num_weights:
            raise ValueError(
                f"{name}: buffered values and weights expected the same length, "
                f"got {value.numel()} and {num_weights}."
            )
    counts = [v.numel() for v in values]
    on_device = [i for i, w in enumerate(weights) if isinstance(w, Tensor)]
    # one copy per device for the values (unless the ranks merge them first) and any
    # device weights together
    copied = tensors_to_host(
        [*(() if across_ranks else values), *(cast(Tensor, weights[i]) for i in on_device)]
    )
    host = [] if across_ranks else copied[: len(values)]
    host_weights: list[Sequence[float]] = [w if not isinstance(w, Tensor) else [] for w in weights]
    for i, weight in zip(on_device, copied[len(host) :], strict=True):
        host_weights[i] = weight
    if not across_ranks:
        return [
            HostChunk(name, range(first, first + count), vals, [float(w) for w in weight])
            for name, first, count, vals, weight in zip(
                names, first_steps, counts, host, host_weights, strict=True
            )
        ]
    plans = gather_plan(names, counts, first_steps, owner)
    if not any(p.count for p in plans):
        return [HostChunk(p.name, p.steps, [], []) for p in plans]
    merged = reduce_pending(plans, values, host_weights)
    return [
        HostChunk(p.name, p.steps, vals, weight)
        for p, (vals, weight) in zip(plans, merged, strict=True)
    ]


def values_to_host(
    names: Sequence[str],
    values: Sequence[Tensor | None],
    scales: Sequence[float],
    across_ranks: bool = False,
    owner: str = "LossManager",
) -> list[float]:
    """Latest values times ``scales`` on the host; ``nan`` where a value is ``None``.

    Alone, this is one transfer per device. With ``across_ranks`` it is a collective
    (every rank must pass the same ``names``): each value is averaged over the ranks
    where it is not ``None``, and reads ``nan`` where it is ``None`` on every rank.

    Example:
        >>> values_to_host(["a", "b"], [torch.tensor(0.5), None], [4.0, 1.0])
        [2.0, nan]
    """
    if across_ranks:
        return mean_where_computed(names, values, scales, owner)
    present = [v for v in values if v is not None]
    host = iter(tensors_to_host(present))
    return [
        float("nan") if v is None else next(host)[0] * float(s)
        for v, s in zip(values, scales, strict=True)
    ]

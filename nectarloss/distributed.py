"""Helpers for runs under ``torch.distributed`` (DDP): rank checks, means and the flush merge.

Every function here is a no-op outside an initialised process group, so single-process
code pays nothing.

The flush merge is split in a pure part and a collective part. :func:`plan_merge`
decides, from every rank's ``(count, first_step)`` per loss, what a flush writes (or
raises :class:`RankMismatchError`); it runs identically on every rank because every
rank sees the same gathered table, so a disagreement raises on all ranks and none is
left waiting in a collective. :func:`gather_plan` gathers that table and
:func:`reduce_pending` averages the values and weights with one ``all_reduce``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from nectarloss.errors import RankMismatchError

__all__ = [
    "LossPlan",
    "RankMismatchError",
    "agree_on_losses",
    "any_rank_failed",
    "gather_plan",
    "is_distributed",
    "is_main_rank",
    "mean_across_ranks",
    "mean_where_computed",
    "names_digest",
    "plan_merge",
    "reduce_pending",
    "world_size",
]


def is_distributed() -> bool:
    """Whether a process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_rank() -> bool:
    """Whether this process is rank 0 (True outside a process group)."""
    return not is_distributed() or dist.get_rank() == 0


def launched_as_later_rank() -> bool:
    """Whether a launcher started this process as a rank other than 0, before its group.

    Launchers announce the world size and the rank in the environment before
    ``init_process_group``: ``WORLD_SIZE`` with ``RANK`` (torchrun, Accelerate), or with
    ``LOCAL_RANK`` / ``NODE_RANK`` (Lightning's ``ddp`` strategy, which starts ranks 1+
    by running the script again). Without a ``WORLD_SIZE`` above 1 a rank variable is
    taken for a stray one; unset or unparsable values count as rank 0.
    """
    size = os.environ.get("WORLD_SIZE", "").strip()
    if is_distributed() or not (size.isdigit() and int(size) > 1):
        return False
    rank = os.environ.get("RANK")
    if rank is not None:
        return rank.strip().isdigit() and int(rank) != 0
    return any(
        value.strip().isdigit() and int(value) != 0
        for value in (os.environ.get("LOCAL_RANK", ""), os.environ.get("NODE_RANK", ""))
    )


def mean_across_ranks(tensor: Tensor) -> Tensor:
    """Average ``tensor`` over all ranks with a single ``all_reduce`` (returns a new tensor).

    Every rank must call this with a tensor of the same shape. Outside a process group
    the tensor is returned as is.
    """
    if not is_distributed():
        return tensor
    out = tensor.detach().to(torch.float32, copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.div_(dist.get_world_size())


# ---------------------------------------------------------------------- the pure part
@dataclass(frozen=True)
class LossPlan:
    """What a flush writes for one loss, as agreed by every rank.

    Attributes:
        name: The loss.
        count: Number of values to write (0 when no rank computed the loss).
        first_step: Step of the first value (for ``count == 0``: the largest first step
            any rank holds; nothing is written then).
        ranks: The ranks that computed the loss, ascending; each value is their mean.
    """

    name: str
    count: int
    first_step: int
    ranks: tuple[int, ...]

    @property
    def steps(self) -> range:
        """Step numbers of the values to write."""
        return range(self.first_step, self.first_step + self.count)


def names_digest(names: Sequence[str]) -> int:
    """A signed 64-bit fingerprint of ``names`` in order (names hold no control characters)."""
    raw = hashlib.blake2b("\x00".join(names).encode(), digest_size=8).digest()
    return int.from_bytes(raw, "little", signed=True)


def check_same_losses(
    headers: Sequence[tuple[int, int]],
    gathered_names: Sequence[Sequence[str]] | None = None,
    owner: str = "LossManager",
) -> None:
    """Raise unless every rank's ``(number of losses, names_digest)`` is the same.

    Args:
        headers: Per rank, the number of losses and :func:`names_digest` of their names.
        gathered_names: Per rank, the names themselves, to name the difference.
        owner: Who raises, for the message.

    Raises:
        RankMismatchError: The ranks registered different losses or a different order.
    """
    if all(tuple(h) == tuple(headers[0]) for h in headers):
        return
    if gathered_names is not None:
        got = "; ".join(f"rank {r}: {list(n)}" for r, n in enumerate(gathered_names))
    else:
        got = "; ".join(f"rank {r}: {h[0]} losses" for r, h in enumerate(headers))
    raise RankMismatchError(
        f"{owner}: DDP flush or query expected every rank to register the same losses in "
        f"the same order, got {got}. Nothing was written or cleared."
    )


def plan_merge(
    names: Sequence[str],
    gathered: Sequence[Sequence[Sequence[int]]],
    owner: str = "LossManager",
) -> list[LossPlan]:
    """Agree, per loss, on what a flush writes from every rank's buffered steps.

    A loss is written when any rank computed it. Each value is the mean over the ranks
    that computed the loss, so those ranks must hold the same steps of it.

    Args:
        names: The losses, in registration order (the same on every rank).
        gathered: ``gathered[r][i]`` is ``(count, first_step)`` of ``names[i]`` on rank
            ``r``.
        owner: Who raises, for the message.

    Returns:
        One :class:`LossPlan` per name, in order.

    Raises:
        RankMismatchError: Ranks that computed a loss hold a different number of values
            of it or start at different steps (every conflict is named).

    Example:
        >>> plan_merge(["a", "b"], [[(2, 0), (0, 0)], [(0, 0), (3, 5)]])[1]
        LossPlan(name='b', count=3, first_step=5, ranks=(1,))
    """
    plans: list[LossPlan] = []
    conflicts: list[str] = []
    for i, name in enumerate(names):
        rows = [(int(per_rank[i][0]), int(per_rank[i][1])) for per_rank in gathered]
        ranks = tuple(r for r, (count, _) in enumerate(rows) if count > 0)
        if not ranks:
            plans.append(LossPlan(name, 0, max((first for _, first in rows), default=0), ()))
            continue
        held = {rows[r] for r in ranks}
        if len(held) > 1:
            shown = ", ".join(
                f"rank {r}: {rows[r][0]} values from step {rows[r][1]}" for r in ranks
            )
            conflicts.append(f"{name!r} ({shown})")
            continue
        count, first_step = rows[ranks[0]]
        plans.append(LossPlan(name, count, first_step, ranks))
    if conflicts:
        raise RankMismatchError(
            f"{owner}: DDP flush expected every rank that computed a loss to hold the same "
            f"steps of it, got {'; '.join(conflicts)}. Nothing was written or cleared; "
            "compute each loss equally often on the ranks that compute it between flushes "
            "(or on one rank only), then flush again."
        )
    return plans


# ---------------------------------------------------------------------- the collective part
def _collective_device() -> torch.device:
    """Where tensors for this process group's collectives live (CUDA for NCCL only)."""
    if not is_distributed():
        return torch.device("cpu")
    backend = str(dist.get_backend())
    if "nccl" in backend and "gloo" not in backend:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_gather_int64(rows: list[list[int]]) -> list[list[list[int]]]:
    """Gather an int64 table of the same shape from every rank: ``out[rank]`` is its rows."""
    local = torch.tensor(rows, dtype=torch.int64, device=_collective_device())
    out = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    table: list[list[list[int]]] = torch.stack(out).tolist()
    return table


def agree_on_losses(names: Sequence[str], owner: str = "LossManager") -> None:
    """Check, with one small ``all_gather``, that every rank holds the same loss names.

    Outside a process group this does nothing. On a mismatch every rank gathers the
    names (one more collective, on the error path only) and raises.

    Raises:
        RankMismatchError: On every rank, when the names or their order differ.
    """
    if not is_distributed():
        return
    headers = [(h[0], h[1]) for (h,) in _all_gather_int64([[len(names), names_digest(names)]])]
    if all(h == headers[0] for h in headers):
        return
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(names))
    check_same_losses(headers, [list(n) if isinstance(n, list) else [] for n in gathered], owner)


def gather_plan(
    names: Sequence[str],
    counts: Sequence[int],
    first_steps: Sequence[int],
    owner: str = "LossManager",
) -> list[LossPlan]:
    """Agree on what a flush writes: two small ``all_gather`` calls, then :func:`plan_merge`.

    The first checks the names (:func:`agree_on_losses`), the second gathers an int64
    ``[len(names), 2]`` table of ``(count, first_step)``. Outside a process group the plan
    is this process's own.

    Raises:
        RankMismatchError: On every rank alike, when the names differ or ranks that
            computed a loss hold different steps of it.
    """
    rows = [[int(c), int(s)] for c, s in zip(counts, first_steps, strict=True)]
    if not is_distributed():
        return plan_merge(names, [rows], owner)
    agree_on_losses(names, owner)
    if not rows:
        return []
    return plan_merge(names, _all_gather_int64(rows), owner)


def _cat_float64(parts: Sequence[Tensor], device: torch.device) -> Tensor:
    """Concatenate 1-D tensors as float64 on ``device``, one transfer per source device."""
    if not parts:
        return torch.empty(0, dtype=torch.float64, device=device)
    sources = {p.device for p in parts}
    if len(sources) == 1:
        joined = torch.cat([p.to(torch.float64) for p in parts])
        return joined.to(device)
    return torch.cat([p.to(device, torch.float64) for p in parts])


def reduce_pending(
    plans: Sequence[LossPlan],
    values: Sequence[Tensor],
    weights: Sequence[Sequence[float]],
) -> list[tuple[list[float], list[float]]]:
    """Average each planned loss's values and weights over the ranks that computed it.

    One ``all_reduce`` (sum) of a float64 tensor holding, per planned loss, ``count``
    values then, after all values, ``count`` weights; a rank that did not compute a loss
    contributes zeros. The sums are divided by the number of computing ranks and copied
    to the host once. Every rank gets the same result.

    Args:
        plans: From :func:`gather_plan` (the same on every rank).
        values: This rank's buffered 1-D values per loss (empty where not computed).
        weights: This rank's weights per loss.

    Returns:
        Per plan, ``(values, weights)`` as host lists (empty for ``count == 0``).
    """
    device = _collective_device()
    rank = dist.get_rank() if is_distributed() else 0
    mine = [p.count > 0 and rank in p.ranks for p in plans]
    source = next((v.device for v, m in zip(values, mine, strict=True) if m), device)
    value_parts: list[Tensor] = []
    weight_parts: list[float] = []
    for plan, value, weight, computed in zip(plans, values, weights, mine, strict=True):
        if plan.count == 0:
            continue
        if computed:
            value_parts.append(value.reshape(-1))
            weight_parts.extend(float(w) for w in weight)
        else:
            value_parts.append(torch.zeros(plan.count, dtype=torch.float64, device=source))
            weight_parts.extend([0.0] * plan.count)
    payload = torch.cat(
        [
            _cat_float64(value_parts, device),
            torch.tensor(weight_parts, dtype=torch.float64).to(device),
        ]
    )
    if is_distributed() and payload.numel():
        dist.all_reduce(payload, op=dist.ReduceOp.SUM)
    live = [p for p in plans if p.count > 0]
    if live:
        divisor = torch.repeat_interleave(
            torch.tensor([float(len(p.ranks)) for p in live], dtype=torch.float64),
            torch.tensor([p.count for p in live]),
        ).to(device)
        payload = payload / torch.cat([divisor, divisor])
    flat: list[float] = payload.tolist()
    total = sum(p.count for p in live)
    out: list[tuple[list[float], list[float]]] = []
    offset = 0
    for plan in plans:
        end = offset + plan.count
        out.append((flat[offset:end], flat[total + offset : total + end]))
        offset = end
    return out


def any_rank_failed(failed: bool) -> bool:
    """Whether any rank reports a failure (one ``all_reduce`` of one int; local otherwise)."""
    if not is_distributed():
        return failed
    flag = torch.tensor([int(failed)], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def mean_where_computed(
    names: Sequence[str],
    values: Sequence[Tensor | None],
    scales: Sequence[float],
    owner: str = "LossManager",
) -> list[float]:
    """Average each value over the ranks where it is not ``None`` (``nan`` where none).

    Each present value is multiplied by its ``scale`` first (the weight it was applied
    with). Under DDP this is a collective: a names check (:func:`agree_on_losses`), then
    one ``all_reduce`` of ``2 * len(names)`` float64; every rank gets the same list.
    Outside a process group it is this process's values.

    Raises:
        RankMismatchError: On every rank, when ranks pass different names.
    """
    device = _collective_device() if is_distributed() else None
    agree_on_losses(names, owner)
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    n = len(names)
    parts = [v.reshape(-1)[:1] for _, v in present]
    target = device if device is not None else (parts[0].device if parts else torch.device("cpu"))
    local = _cat_float64(parts, target)
    payload = torch.zeros(2 * n, dtype=torch.float64, device=target)
    if present:
        index = torch.tensor([i for i, _ in present], device=target)
        scale = torch.tensor([float(scales[i]) for i, _ in present], dtype=torch.float64)
        payload[index] = local * scale.to(target)
        payload[index + n] = 1.0
    if device is not None and n:
        dist.all_reduce(payload, op=dist.ReduceOp.SUM)
    flat: list[float] = payload.tolist()
    return [flat[i] / flat[n + i] if flat[n + i] else float("nan") for i in range(n)]

"""Helpers for runs under ``torch.distributed`` (DDP): rank checks and one-call means.

Every function here is a no-op outside an initialised process group, so single-process
code pays nothing.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "is_main_rank", "mean_across_ranks", "world_size"]


def is_distributed() -> bool:
    """Whether a process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_rank() -> bool:
    """Whether this process is rank 0 (True outside a process group)."""
    return not is_distributed() or dist.get_rank() == 0


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

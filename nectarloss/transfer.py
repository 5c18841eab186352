"""Device-to-host transfers of recorded values.

One copy per device, optionally averaged over DDP ranks first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nectarloss.distributed import mean_across_ranks

__all__ = ["tensors_to_host"]


def tensors_to_host(tensors: Sequence[Tensor], across_ranks: bool = False) -> list[list[float]]:
    """Copy 1-D float tensors to host lists with one transfer per device.

    Tensors on the same device are concatenated there first, so ``n`` buffers on one
    GPU cost a single device-to-host copy. With ``across_ranks`` (under DDP) the
    concatenation is averaged over all ranks first, with one ``all_reduce``.
    """
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    out: list[list[float]] = [[] for _ in tensors]
    for indices in by_device.values():
        parts = [tensors[i].reshape(-1) for i in indices]
        joined = torch.cat(parts)
        if across_ranks:
            joined = mean_across_ranks(joined)
        flat: list[float] = joined.tolist()
        offset = 0
        for i, part in zip(indices, parts, strict=True):
            out[i] = flat[offset : offset + part.numel()]
            offset += part.numel()
    return out

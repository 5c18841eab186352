"""The demo's data: seeded, procedural (edge map, filled shapes) image pairs.

The input is the edge map of a few overlapping shapes (circles, squares, diamonds); the
target is the same picture with every shape filled in the color of its kind, so a
generator must learn to tell a shape from its outline and to fill it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nectarloss.demo.config import DemoConfig

__all__ = ["PALETTE", "epoch_pairs", "make_pairs"]

#: Target colors in [-1, 1]: background, then one per shape kind (circle, square, diamond).
PALETTE = (
    (-0.8, -0.8, -0.7),
    (0.9, -0.5, -0.5),
    (-0.4, 0.8, -0.3),
    (-0.3, -0.1, 0.95),
)
_NUM_KINDS = len(PALETTE) - 1
_CHUNK = 1024  # pairs generated per vectorised call


def make_pairs(
    num: int, image_size: int, generator: torch.Generator, max_shapes: int = 3
) -> tuple[Tensor, Tensor]:
    """Generate ``num`` (edge map, filled shapes) pairs, all on the CPU.

    Each picture holds 1 to ``max_shapes`` shapes (circle, square or diamond), painted
    in order so later ones cover earlier ones. The target fills each visible region in
    its kind's color (:data:`PALETTE`); the input marks every pixel whose right or lower
    neighbour belongs to another region.

    Args:
        num: Number of pairs.
        image_size: Side of the square images.
        generator: The random stream (seed it for reproducible data).
        max_shapes: Largest number of shapes per picture.

    Returns:
        ``(edges, targets)``: ``[num, 1, S, S]`` and ``[num, 3, S, S]``, both in [-1, 1].

    Example:
        >>> x, y = make_pairs(2, 16, torch.Generator().manual_seed(0))
        >>> tuple(x.shape), tuple(y.shape), float(x.min()), float(x.max())
        ((2, 1, 16, 16), (2, 3, 16, 16), -1.0, 1.0)
    """
    size = image_size
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = coords[:, None], coords[None, :]
    shape = (num, max_shapes, 1, 1)
    kind = torch.randint(0, _NUM_KINDS, shape, generator=generator)
    cx = 0.2 + 0.6 * torch.rand(shape, generator=generator)
    cy = 0.2 + 0.6 * torch.rand(shape, generator=generator)
    radius = 0.12 + 0.16 * torch.rand(shape, generator=generator)
    count = torch.randint(1, max_shapes + 1, (num, 1, 1, 1), generator=generator)
    present = torch.arange(max_shapes).view(1, -1, 1, 1) < count
    dx, dy = (xx - cx).abs(), (yy - cy).abs()
    circle = dx.square() + dy.square() < radius.square()
    square = torch.maximum(dx, dy) < 0.85 * radius
    diamond = dx + dy < 1.25 * radius
    inside = torch.where(kind == 0, circle, torch.where(kind == 1, square, diamond)) & present
    label = torch.zeros(num, size, size, dtype=torch.long)
    for k in range(max_shapes):  # paint in order: later shapes cover earlier ones
        label = torch.where(inside[:, k], kind[:, k, 0, 0].view(-1, 1, 1) + 1, label)
    edge = torch.zeros(num, size, size, dtype=torch.bool)
    edge[:, :, :-1] |= label[:, :, :-1] != label[:, :, 1:]
    edge[:, :-1, :] |= label[:, :-1, :] != label[:, 1:, :]
    palette = torch.tensor(PALETTE, dtype=torch.float32)
    targets = palette[label].permute(0, 3, 1, 2).contiguous()
    edges = edge.to(torch.float32).mul(2.0).sub(1.0).unsqueeze(1)
    return edges, targets


def epoch_pairs(
    cfg: DemoConfig, stream: torch.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Fresh pairs for one epoch, generated in large vectorised chunks, moved once.

    Args:
        cfg: The run settings (``steps_per_epoch * batch_size`` pairs of ``image_size``).
        stream: The training data's random stream.
        device: Where the pairs go.

    Returns:
        ``(inputs, targets)`` on ``device``, as :func:`make_pairs` returns them.
    """
    num = cfg.steps_per_epoch * cfg.batch_size
    chunks = [
        make_pairs(min(_CHUNK, num - start), cfg.image_size, stream, cfg.max_shapes)
        for start in range(0, num, _CHUNK)
    ]
    inputs = torch.cat([c[0] for c in chunks]).to(device)
    targets = torch.cat([c[1] for c in chunks]).to(device)
    return inputs, targets

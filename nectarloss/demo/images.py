"""The demo's pictures: the sample grid (input | generated | target) and the loss graph.

:func:`write_png` writes a PNG without any imaging library; the loss graph needs
matplotlib (the ``plot`` extra) and is skipped with a warning without it.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor, nn

from nectarloss.log import LossLog

__all__ = [
    "LOSS_GRAPH_FILENAME",
    "SAMPLES_FILENAME",
    "sample_grid",
    "save_loss_graph",
    "save_samples",
    "write_png",
]

_log = logging.getLogger(__name__)

#: File names the demo writes into the experiment directory.
LOSS_GRAPH_FILENAME = "loss_graph.png"
SAMPLES_FILENAME = "samples.png"


def write_png(path: str | os.PathLike[str], image: Tensor) -> Path:
    """Write an RGB image to a PNG file without any imaging library.

    Args:
        path: The file to write; its directory is created.
        image: ``[3, H, W]`` floats in [-1, 1] (clamped).

    Returns:
        The path written.

    Raises:
        ValueError: ``image`` is not ``[3, H, W]``.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"write_png: `image` expected shape (3, H, W), got {tuple(image.shape)}.")
    pixels = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    _, height, width = pixels.shape
    rows = pixels.permute(1, 2, 0).reshape(height, width * 3).tolist()
    raw = b"".join(b"\x00" + bytes(row) for row in rows)

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    return out


def sample_grid(inputs: Tensor, generated: Tensor, targets: Tensor, zoom: int = 1) -> Tensor:
    """One row per sample: input | generated | target, with a light gap between images.

    Args:
        inputs: ``[N, 1 or 3, S, S]``.
        generated: ``[N, 3, S, S]``.
        targets: ``[N, 3, S, S]``.
        zoom: Nearest-neighbour magnification.

    Returns:
        ``[3, H, W]`` in [-1, 1].
    """
    gap = 2
    cells = [inputs.expand(-1, 3, -1, -1), generated, targets]
    num, _, size, _ = targets.shape
    side = size + gap
    grid = torch.full((3, num * side + gap, 3 * side + gap), 0.8)
    for row in range(num):
        for col, cell in enumerate(cells):
            top, left = gap + row * side, gap + col * side
            grid[:, top : top + size, left : left + size] = cell[row].detach().float().cpu()
    if zoom > 1:
        grid = grid.repeat_interleave(zoom, dim=1).repeat_interleave(zoom, dim=2)
    return grid


def save_samples(
    generator: nn.Module, inputs: Tensor, targets: Tensor, path: Path, zoom: int = 1
) -> Path:
    """Write the sample grid of ``generator`` on ``inputs`` to a PNG.

    The generator is left in eval mode.

    Args:
        generator: The trained generator.
        inputs: ``[N, 1 or 3, S, S]``, one row of the grid each.
        targets: ``[N, 3, S, S]``.
        path: The PNG to write.
        zoom: Nearest-neighbour magnification.

    Returns:
        The path written.
    """
    generator.eval()
    with torch.no_grad():
        generated = generator(inputs)
    return write_png(path, sample_grid(inputs, generated, targets, zoom=zoom))


def save_loss_graph(log: LossLog, path: Path, smooth: int) -> Path | None:
    """Draw the loss graph of ``log`` (log-scale values), or warn without matplotlib.

    Args:
        log: The run's loss log.
        path: The image to write.
        smooth: Moving-average window in steps.

    Returns:
        The path written, or ``None`` when matplotlib is missing.
    """
    try:
        from nectarloss.plot import plot_log

        return plot_log(log, path, smooth=smooth, log_scale=True)
    except ImportError as exc:
        _log.warning("demo: no loss graph (%s)", exc)
        return None

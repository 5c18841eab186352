"""The demo's pictures: the sample grid (input | generated | target) and the loss graph.

The grid's columns are labelled with a 5x8 pixel font drawn here (:func:`text_mask`).

:func:`write_png` writes a PNG without any imaging library; the loss graph needs
matplotlib (the ``plot`` extra) and is skipped with a warning without it.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from nectarloss.log import LossLog

__all__ = [
    "LOSS_GRAPH_FILENAME",
    "SAMPLES_FILENAME",
    "SAMPLE_LABELS",
    "sample_grid",
    "save_loss_graph",
    "save_samples",
    "text_mask",
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


#: The sample grid's column labels, left to right.
SAMPLE_LABELS = ("input", "generated", "target")

# A 5x8 pixel font of the letters a label may hold: each glyph is 8 rows, top first, of 5
# bits, the leftmost pixel in the highest bit; the last row holds descenders (g, j, p, q,
# y). The shapes are the HD44780 character ROM's.
_FONT: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0, 0, 0, 0),
    "-": (0, 0, 0, 0x1F, 0, 0, 0, 0),
    "a": (0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0),
    "b": (0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0),
    "c": (0, 0, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0),
    "d": (0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0),
    "e": (0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0),
    "f": (0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0),
    "g": (0, 0, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E),
    "h": (0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0),
    "i": (0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0),
    "j": (0x02, 0, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "k": (0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0),
    "l": (0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0),
    "m": (0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11, 0),
    "n": (0, 0, 0x16, 0x19, 0x11, 0x11, 0x11, 0),
    "o": (0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0),
    "p": (0, 0, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10),
    "q": (0, 0, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01),
    "r": (0, 0, 0x16, 0x19, 0x10, 0x10, 0x10, 0),
    "s": (0, 0, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0),
    "t": (0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0),
    "u": (0, 0, 0x11, 0x11, 0x11, 0x13, 0x0D, 0),
    "v": (0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04, 0),
    "w": (0, 0, 0x11, 0x11, 0x15, 0x15, 0x0A, 0),
    "x": (0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0),
    "y": (0, 0, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E),
    "z": (0, 0, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0),
}
_GLYPH_WIDTH, _GLYPH_HEIGHT = 5, 8
_BACKGROUND = 0.8  # the light grey between images
_INK = -1.0  # black
_MAX_TEXT_SCALE = 3


def text_mask(text: str, scale: int = 1) -> Tensor:
    """The pixels of ``text`` in a 5x8 pixel font, one blank column between letters.

    Args:
        text: Lowercase letters, spaces and ``-``.
        scale: Each font pixel becomes ``scale x scale`` pixels.

    Returns:
        A bool ``[8 * scale, (6 * len(text) - 1) * scale]`` mask, ``True`` where ink is.

    Raises:
        ValueError: ``text`` holds a character the font lacks, or ``scale < 1``.

    Example:
        >>> text_mask("i").int().tolist()[0]
        [0, 0, 1, 0, 0]
    """
    if scale < 1:
        raise ValueError(f"text_mask: `scale` expected an int >= 1, got {scale}.")
    bad = sorted(set(text) - set(_FONT))
    if bad:
        raise ValueError(
            f"text_mask: `text` expected lowercase letters, spaces and '-', got {text!r} "
            f"(no glyph for {', '.join(map(repr, bad))})."
        )
    bits = torch.tensor([1 << (_GLYPH_WIDTH - 1 - i) for i in range(_GLYPH_WIDTH)])
    columns: list[Tensor] = []
    for i, char in enumerate(text):
        if i:
            columns.append(torch.zeros(_GLYPH_HEIGHT, 1, dtype=torch.bool))
        rows = torch.tensor(_FONT[char]).unsqueeze(1)
        columns.append(rows & bits != 0)
    mask = torch.cat(columns, dim=1) if columns else torch.zeros(_GLYPH_HEIGHT, 0, dtype=torch.bool)
    return mask.repeat_interleave(scale, dim=0).repeat_interleave(scale, dim=1)


def _label_strip(labels: Sequence[str], lefts: Sequence[int], cell: int, width: int) -> Tensor:
    """A light strip ``[3, h, width]`` with each label centred over its column of images.

    The text is as large as fits the widest label in a cell (at most 3x the font); a
    label wider than a cell at 1x is cut at the cell's edges.
    """
    widest = max((len(label) * (_GLYPH_WIDTH + 1) - 1 for label in labels), default=0)
    scale = max(1, min(_MAX_TEXT_SCALE, cell // max(widest + 2, 1)))
    pad = 2 * scale
    strip = torch.full((3, _GLYPH_HEIGHT * scale + 2 * pad, width), _BACKGROUND)
    for label, left in zip(labels, lefts, strict=True):
        mask = text_mask(label, scale)[:, :cell]
        start = left + (cell - mask.shape[1]) // 2
        region = strip[:, pad : pad + mask.shape[0], start : start + mask.shape[1]]
        region[:, mask] = _INK
    return strip


def sample_grid(
    inputs: Tensor,
    generated: Tensor,
    targets: Tensor,
    zoom: int = 1,
    labels: Sequence[str] | None = SAMPLE_LABELS,
) -> Tensor:
    """One row per sample: input | generated | target, with a light gap between images.

    Args:
        inputs: ``[N, 1 or 3, S, S]``.
        generated: ``[N, 3, S, S]``.
        targets: ``[N, 3, S, S]``.
        zoom: Nearest-neighbour magnification.
        labels: The three column titles, written above the columns (:func:`text_mask`'s
            letters); ``None`` for none.

    Returns:
        ``[3, H, W]`` in [-1, 1].

    Raises:
        ValueError: ``labels`` is not three strings of the font's letters.
    """
    if labels is not None and (isinstance(labels, str) or len(labels) != 3):
        raise ValueError(f"sample_grid: `labels` expected 3 strings, got {labels!r}.")
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
    if labels is None:
        return grid
    lefts = [(gap + col * side) * zoom for col in range(3)]
    strip = _label_strip(labels, lefts, size * zoom, grid.shape[2])
    return torch.cat([strip, grid], dim=1)


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

    The graph's title names the run after the directory ``path`` is written to (the
    experiment directory).

    Args:
        log: The run's loss log.
        path: The image to write.
        smooth: Moving-average window in steps.

    Returns:
        The path written, or ``None`` when matplotlib is missing.
    """
    try:
        from nectarloss.plot import plot_log

        return plot_log(
            log, path, smooth=smooth, log_scale=True, run_name=path.resolve().parent.name
        )
    except ImportError as exc:
        _log.warning("demo: no loss graph (%s)", exc)
        return None

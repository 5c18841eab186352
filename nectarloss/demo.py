"""The ``nectarloss demo``: a compact pix2pix trained end to end on generated image pairs.

Everything the demo needs is here and runs offline:

* :func:`make_pairs`: a seeded, procedural paired data set. The input is the edge map
  of a few overlapping shapes (circles, squares, diamonds); the target is the same
  picture with every shape filled in the color of its kind, so a generator must learn
  to tell a shape from its outline and to fill it.
* :class:`UNetGenerator` and :class:`PatchDiscriminator`: a small pix2pix pair.
* :func:`run_demo`: trains them with the objective of a loss spec (``pix2pix_basic`` by
  default) registered in a :class:`~nectarloss.LossManager`, shows a progress bar with
  live losses and weights, flushes the JSON log each epoch, evaluates the generator's
  L1 on held-out pairs before training and after each epoch, and writes a loss graph, a
  sample grid (input | generated | target) and a summary table.

Run settings come from a JSON file validated by :class:`DemoConfig`
(``configs/demo.json``; the packaged copy :data:`DEFAULT_CONFIG_PATH` is identical).
"""

from __future__ import annotations

import logging
import math
import os
import struct
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from torch import Tensor, nn

from nectarloss.console import summary_table
from nectarloss.log import read_log, summarize_log
from nectarloss.manager import LossManager

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DemoConfig",
    "DemoResult",
    "PatchDiscriminator",
    "UNetGenerator",
    "heldout_l1",
    "load_demo_config",
    "make_pairs",
    "pix2pix_roles",
    "resolve_device",
    "run_demo",
    "sample_grid",
    "write_png",
]

_log = logging.getLogger(__name__)

#: The packaged default run settings (byte-identical to the repository's ``configs/demo.json``).
DEFAULT_CONFIG_PATH = Path(__file__).with_name("demo_config.json")

#: File names the demo writes into the experiment directory.
LOSS_GRAPH_FILENAME = "loss_graph.png"
SAMPLES_FILENAME = "samples.png"

#: Target colors in [-1, 1]: background, then one per shape kind (circle, square, diamond).
PALETTE = (
    (-0.8, -0.8, -0.7),
    (0.9, -0.5, -0.5),
    (-0.4, 0.8, -0.3),
    (-0.3, -0.1, 0.95),
)
_NUM_KINDS = len(PALETTE) - 1
_SAMPLE_ROWS = 6
_CHUNK = 1024  # pairs generated per vectorised call


# ---------------------------------------------------------------------------- config
class DemoConfig(BaseModel):
    """Run settings of :func:`run_demo`, read from ``configs/demo.json``.

    Unknown keys are rejected; numbers are checked strictly (``"4"`` is not an int).

    Attributes:
        epochs: Training epochs.
        steps_per_epoch: Batches per epoch (each one freshly generated).
        batch_size: Pairs per batch.
        image_size: Side of the square images; a multiple of ``2 ** unet_depth``, >= 16.
        unet_depth: Down-sampling levels of the U-Net generator.
        base_channels: Channels of the first generator / discriminator layer.
        max_shapes: Shapes per image (1 to this many).
        lr: Adam learning rate of both networks.
        beta1: Adam ``beta1`` (0.5 as in pix2pix).
        seed: Seeds the weights and both data streams.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
        num_heldout: Held-out pairs the generator's L1 is measured on.
        experiment_dir: Where the log, graph and samples go.
        spec: The loss spec: a shipped spec's name or a path to a JSON spec.
        log_every: Steps between refreshes of the live losses (each one syncs).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    epochs: int = Field(default=8, ge=1)
    steps_per_epoch: int = Field(default=100, ge=1)
    batch_size: int = Field(default=16, ge=1)
    image_size: int = Field(default=32, ge=16, le=1024)
    unet_depth: int = Field(default=4, ge=2, le=8)
    base_channels: int = Field(default=16, ge=1)
    max_shapes: int = Field(default=3, ge=1, le=16)
    lr: float = Field(default=2e-3, gt=0.0)
    beta1: float = Field(default=0.5, ge=0.0, lt=1.0)
    seed: int = 0
    device: str = "auto"
    num_heldout: int = Field(default=64, ge=1)
    experiment_dir: str = "runs/demo"
    spec: str = "pix2pix_basic"
    log_every: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _check_image_size(self) -> DemoConfig:
        factor = 2**self.unet_depth
        if self.image_size % factor:
            raise ValueError(
                f"`image_size` expected a multiple of 2 ** unet_depth = {factor}, "
                f"got {self.image_size}"
            )
        return self


def load_demo_config(path: str | os.PathLike[str] | None = None) -> DemoConfig:
    """Read and validate demo settings from a JSON file.

    Args:
        path: The file; ``None`` reads the packaged default (:data:`DEFAULT_CONFIG_PATH`).

    Returns:
        The validated settings.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not JSON or does not validate (the message names the
            file and the offending key).
    """
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        data = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc}).") from exc
    return _validate_config(data, str(file))


def _validate_config(data: object, source: str) -> DemoConfig:
    try:
        return DemoConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ValueError(f"{source}: `{where}`: {first['msg']}.") from exc


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; any other name is checked.

    Raises:
        ValueError: The name is not a torch device, or CUDA is asked for but missing.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"demo: `device` expected 'auto', 'cpu', 'cuda', ..., got {device!r}."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"demo: `device` {device!r} asked for CUDA, but CUDA is not available.")
    return resolved


# ---------------------------------------------------------------------------- data
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


# ---------------------------------------------------------------------------- models
def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm behaves the same in train and eval mode and with any batch size.
    return nn.GroupNorm(min(8, channels), channels)


def _init_weights(module: nn.Module) -> None:
    """pix2pix's initialisation: conv weights ~ N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class UNetGenerator(nn.Module):
    """A compact pix2pix U-Net: strided 4x4 convolutions down, transposed ones up, skips.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (the output is in [-1, 1], ``tanh``).
        base_channels: Channels of the first level; each level doubles them, up to 8x.
        depth: Down-sampling levels; the input side must be a multiple of ``2 ** depth``.

    Shape:
        - input: ``[B, in_channels, S, S]``.
        - output: ``[B, out_channels, S, S]``.

    Example:
        >>> g = UNetGenerator(1, 3, base_channels=8, depth=3)
        >>> tuple(g(torch.zeros(2, 1, 16, 16)).shape)
        (2, 3, 16, 16)
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 3, base_channels: int = 16, depth: int = 4
    ) -> None:
        super().__init__()
        channels = [base_channels * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        for i, ch in enumerate(channels):
            is_outer, is_inner = i == 0, i == depth - 1
            layers: list[nn.Module] = [
                nn.Conv2d(in_channels if is_outer else channels[i - 1], ch, 4, 2, 1)
            ]
            if not (is_outer or is_inner):
                layers.append(_norm(ch))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            in_ch = channels[i + 1] * (1 if i == depth - 2 else 2)
            self.up.append(
                nn.Sequential(
                    nn.ConvTranspose2d(in_ch, channels[i], 4, 2, 1), _norm(channels[i]), nn.ReLU()
                )
            )
        self.out = nn.Sequential(
            nn.ConvTranspose2d(2 * channels[0], out_channels, 4, 2, 1), nn.Tanh()
        )
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        """Translate ``x`` into the output domain."""
        skips: list[Tensor] = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the innermost level has no skip of its own
        for layer in self.up:
            x = torch.cat([layer(x), skips.pop()], dim=1)
        out: Tensor = self.out(x)
        return out


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator on (input, output) pairs: one logit per image patch.

    Args:
        in_channels: Channels of the condition (the generator's input).
        out_channels: Channels of the real or generated image.
        base_channels: Channels of the first layer (doubled twice).

    Shape:
        - condition: ``[B, in_channels, S, S]``; image: ``[B, out_channels, S, S]``.
        - output: ``[B, 1, S / 4 - 2, S / 4 - 2]`` logits.

    Example:
        >>> d = PatchDiscriminator(1, 3, base_channels=8)
        >>> tuple(d(torch.zeros(2, 1, 32, 32), torch.zeros(2, 3, 32, 32)).shape)
        (2, 1, 6, 6)
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 3, base_channels: int = 16
    ) -> None:
        super().__init__()
        c = base_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels + out_channels, c, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1),
            _norm(2 * c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, 1, 1),
            _norm(4 * c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * c, 1, 4, 1, 1),
        )
        self.apply(_init_weights)

    def forward(self, condition: Tensor, image: Tensor) -> Tensor:
        """Patch logits: high for real pairs, low for generated ones."""
        out: Tensor = self.net(torch.cat([condition, image], dim=1))
        return out


# ---------------------------------------------------------------------------- objective
def pix2pix_roles(names: Mapping[str, list[str]]) -> dict[str, str]:
    """Which inputs each loss of a pix2pix spec takes, from its name and tags.

    A ``G``-tagged loss whose name contains ``GAN`` or ``ADV`` is adversarial (the
    discriminator's logits on generated pairs vs ones); any other ``G`` loss compares the
    generated image with the target. A ``D``-tagged loss whose name contains ``real``
    scores real pairs vs ones, ``fake`` generated pairs vs zeros.

    Args:
        names: Loss name -> tags.

    Returns:
        Loss name -> ``"G_adv"``, ``"G_rec"``, ``"D_real"`` or ``"D_fake"``.

    Raises:
        ValueError: A loss fits no role, or the spec has no ``G`` / ``D`` losses.

    Example:
        >>> pix2pix_roles({"G_GAN": ["G"], "G_L1": ["G"], "D_real": ["D"], "D_fake": ["D"]})
        {'G_GAN': 'G_adv', 'G_L1': 'G_rec', 'D_real': 'D_real', 'D_fake': 'D_fake'}
    """
    roles: dict[str, str] = {}
    for name, tags in names.items():
        upper = name.upper()
        if "D" in tags and "REAL" in upper:
            roles[name] = "D_real"
        elif "D" in tags and "FAKE" in upper:
            roles[name] = "D_fake"
        elif "G" in tags:
            roles[name] = "G_adv" if ("GAN" in upper or "ADV" in upper) else "G_rec"
        else:
            raise ValueError(
                f"demo: spec loss {name!r} (tags {tags}) fits no pix2pix role; expected tag 'G', "
                "or tag 'D' with 'real' or 'fake' in the name."
            )
    found = set(roles.values())
    if "G_rec" not in found and "G_adv" not in found or not {"D_real", "D_fake"} <= found:
        raise ValueError(
            f"demo: the spec expected generator losses (tag 'G') and discriminator losses "
            f"'D_real' and 'D_fake' (tag 'D'), got {dict(names)}."
        )
    return roles


# ---------------------------------------------------------------------------- images
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


# ---------------------------------------------------------------------------- training
@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes:
        experiment_dir: Where the files went.
        log_path: The JSON Lines loss log.
        loss_graph: The loss graph PNG, or ``None`` without matplotlib.
        samples: The sample grid PNG (input | generated | target).
        heldout_l1: The generator's mean L1 on the held-out pairs before training, then
            after each epoch (``epochs + 1`` values).
        summary: Per loss ``last``, ``mean``, ``min``, ``max``, ``weight`` (and
            ``count``, ``nonfinite``), from the log (weighted values).
        wall_time_s: Seconds from start to summary.
        device: The device trained on.
        config: The settings used.
    """

    experiment_dir: Path
    log_path: Path
    loss_graph: Path | None
    samples: Path
    heldout_l1: list[float]
    summary: dict[str, dict[str, float]]
    wall_time_s: float
    device: str
    config: DemoConfig
    roles: dict[str, str] = field(default_factory=dict)


@torch.no_grad()
def heldout_l1(
    generator: nn.Module, inputs: Tensor, targets: Tensor, batch_size: int = 64
) -> float:
    """Mean absolute error of ``generator(inputs)`` against ``targets`` (syncs once).

    The generator is put in eval mode for the measurement and restored afterwards.
    """
    was_training = generator.training
    generator.eval()
    total = torch.zeros((), device=inputs.device)
    for start in range(0, inputs.shape[0], batch_size):
        x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
        total += (generator(x) - y).abs().sum()
    generator.train(was_training)
    return float(total) / targets.numel()


def _coerce_config(
    config: DemoConfig | Mapping[str, Any] | str | os.PathLike[str] | None,
) -> DemoConfig:
    if config is None or isinstance(config, (str, os.PathLike)):
        return load_demo_config(config)
    if isinstance(config, DemoConfig):
        return config
    if isinstance(config, Mapping):
        return _validate_config(dict(config), "demo config")
    raise TypeError(
        "run_demo: `config` expected a DemoConfig, a mapping or a path, "
        f"got {type(config).__name__}."
    )


class _LossProgress(Progress):
    """A progress bar with a status block (the live losses and weights) below it."""

    status: Text | str = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        """The bar, then the status block."""
        yield self.make_tasks_table(self.tasks)
        if self.status:
            yield self.status


def _live_text(lm: LossManager, tags: Mapping[str, list[str]]) -> Text:
    """Latest weighted losses per tag, then the weights: one batched copy to the host."""
    values = lm.get_loss_values(precision=4)
    groups: dict[str, list[str]] = {}
    for name, loss_tags in tags.items():
        groups.setdefault(loss_tags[0] if loss_tags else "-", []).append(name)
    text = Text()
    for tag, names in groups.items():
        text.append(f"  {tag}: ", style="bold")
        text.append("  ".join(f"{n} {values[n]:.4g}" for n in names) + "\n")
    weights = lm.get_loss_weights(precision=4)
    text.append("  weights: ", style="bold")
    text.append("  ".join(f"{n} {w:g}" for n, w in weights.items()))
    return text


def _epoch_pairs(
    cfg: DemoConfig, stream: torch.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Fresh pairs for one epoch, generated in large vectorised chunks, moved once."""
    num = cfg.steps_per_epoch * cfg.batch_size
    chunks = [
        make_pairs(min(_CHUNK, num - start), cfg.image_size, stream, cfg.max_shapes)
        for start in range(0, num, _CHUNK)
    ]
    inputs = torch.cat([c[0] for c in chunks]).to(device)
    targets = torch.cat([c[1] for c in chunks]).to(device)
    return inputs, targets


def _sum_losses(
    lm: LossManager,
    by_role: Mapping[str, list[str]],
    role: str,
    prediction: Tensor,
    target: Tensor | float,
    epoch: int,
) -> Tensor:
    """Sum the weighted losses of one role; a float target is a constant map (GAN labels)."""
    if not isinstance(target, Tensor):
        target = torch.full_like(prediction, target)
    total = prediction.new_zeros(())
    for name in by_role.get(role, []):
        total = total + lm.compute_loss_xy(name, prediction, target, epoch=epoch)
    return total


def _train_step(
    lm: LossManager,
    by_role: Mapping[str, list[str]],
    gen: nn.Module,
    disc: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    epoch: int,
) -> None:
    """One pix2pix step: the discriminator, then the generator. Launches work only."""
    fake = gen(x)

    # discriminator: real pairs -> 1, generated pairs -> 0, averaged (the spec's convention)
    logits_real = disc(x, y)
    logits_fake = disc(x, fake.detach())
    loss_d = 0.5 * (
        _sum_losses(lm, by_role, "D_real", logits_real, 1.0, epoch)
        + _sum_losses(lm, by_role, "D_fake", logits_fake, 0.0, epoch)
    )
    opt_d.zero_grad(set_to_none=True)
    torch.autograd.backward(loss_d)
    opt_d.step()

    # generator: fool the discriminator and match the target
    logits_gen = disc(x, fake)
    loss_g = _sum_losses(lm, by_role, "G_adv", logits_gen, 1.0, epoch)
    loss_g = loss_g + _sum_losses(lm, by_role, "G_rec", fake, y, epoch)
    opt_g.zero_grad(set_to_none=True)
    torch.autograd.backward(loss_g)
    opt_g.step()


def _fresh_outputs(directory: Path) -> None:
    """Remove the pictures a previous demo run left in ``directory`` (it writes new ones).

    The log is not removed here: the manager replaces it (``overwrite=True``) once it
    holds the log's lock, so a demo still running in the same directory is refused.
    """
    for name in (LOSS_GRAPH_FILENAME, SAMPLES_FILENAME):
        (directory / name).unlink(missing_ok=True)


def run_demo(
    config: DemoConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    console: Console | None = None,
    show_progress: bool = True,
) -> DemoResult:
    """Train a compact pix2pix on generated pairs with a spec's objective; report it all.

    The files of a previous demo run in the same experiment directory (its log, loss
    graph and samples) are replaced.

    Args:
        config: A :class:`DemoConfig`, a mapping of its fields, a path to a JSON config,
            or ``None`` for the packaged default.
        console: Where the progress bar, the per-epoch lines and the summary go
            (default: a new rich console on stdout).
        show_progress: Draw the progress bar.

    Returns:
        The files written, the held-out L1 curve and the per-loss summary.

    Raises:
        ValueError: Invalid settings, an unknown device, or a spec that is not a pix2pix
            objective (see :func:`pix2pix_roles`).
        FileNotFoundError: A config or spec path that does not exist.
    """
    from nectarloss.specs import load_spec  # imports the loss catalog and pydantic models

    start_time = time.perf_counter()
    cfg = _coerce_config(config)
    out = console if console is not None else Console(highlight=False)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train_stream = torch.Generator().manual_seed(cfg.seed)
    heldout_stream = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    x_eval, y_eval = make_pairs(cfg.num_heldout, cfg.image_size, heldout_stream, cfg.max_shapes)
    x_eval, y_eval = x_eval.to(device), y_eval.to(device)

    gen = UNetGenerator(1, 3, cfg.base_channels, cfg.unet_depth).to(device)
    disc = PatchDiscriminator(1, 3, cfg.base_channels).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))

    experiment_dir = Path(cfg.experiment_dir)
    experiment_dir.mkdir(parents=True, exist_ok=True)
    _fresh_outputs(experiment_dir)
    total_steps = cfg.epochs * cfg.steps_per_epoch
    lm = LossManager(
        experiment_dir, device=device, history_buffer_size=cfg.steps_per_epoch, overwrite=True
    )
    with lm:
        lm.init_from_spec(load_spec, cfg.spec)
        registered = lm.get_registered_losses()
        tags = {name: list(entry.tags) for name, entry in registered.items()}
        roles = pix2pix_roles(tags)
        by_role: dict[str, list[str]] = {}
        for name, role in roles.items():
            by_role.setdefault(role, []).append(name)
        weights = ", ".join(f"{n} x{w:g}" for n, w in lm.get_loss_weights().items())
        out.print(
            f"nectarloss demo: pix2pix on {cfg.image_size}px generated pairs, device {device}, "
            f"spec {cfg.spec!r} ({weights})",
            markup=False,
        )
        curve = [heldout_l1(gen, x_eval, y_eval)]
        out.print(f"held-out L1 before training: {curve[0]:.4f}", markup=False)

        progress = _LossProgress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=out,
            disable=not show_progress,
        )
        with progress:
            task = progress.add_task("train", total=total_steps, epoch=f"1/{cfg.epochs}")
            for epoch in range(cfg.epochs):
                gen.train()
                x_epoch, y_epoch = _epoch_pairs(cfg, train_stream, device)
                for step in range(cfg.steps_per_epoch):
                    batch = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
                    x, y = x_epoch[batch], y_epoch[batch]
                    _train_step(lm, by_role, gen, disc, opt_g, opt_d, x, y, epoch)
                    done = epoch * cfg.steps_per_epoch + step + 1
                    if show_progress and (done % cfg.log_every == 0 or done == total_steps):
                        progress.status = _live_text(lm, tags)  # syncs: only every log_every
                    progress.update(task, advance=1)
                lm.update_loss_log()
                curve.append(heldout_l1(gen, x_eval, y_eval))
                progress.update(task, epoch=f"{min(epoch + 2, cfg.epochs)}/{cfg.epochs}")
                progress.console.print(
                    f"epoch {epoch + 1}/{cfg.epochs}: held-out L1 {curve[-1]:.4f} "
                    f"({curve[-1] / curve[0]:.0%} of the initial {curve[0]:.4f})",
                    markup=False,
                )
    log_path = lm.log_path
    if log_path is None:  # pragma: no cover - logging is always on here
        raise RuntimeError("demo: the loss manager kept no log.")

    gen.eval()
    with torch.no_grad():
        rows = min(_SAMPLE_ROWS, cfg.num_heldout)
        generated = gen(x_eval[:rows])
    samples = write_png(
        experiment_dir / SAMPLES_FILENAME,
        sample_grid(x_eval[:rows], generated, y_eval[:rows], zoom=max(1, 128 // cfg.image_size)),
    )
    log = read_log(log_path)
    summary = summarize_log(log)
    loss_graph: Path | None
    try:
        from nectarloss.plot import plot_log

        loss_graph = plot_log(
            log,
            experiment_dir / LOSS_GRAPH_FILENAME,
            smooth=max(1, cfg.log_every // 2),
            log_scale=True,
        )
    except ImportError as exc:
        _log.warning("demo: no loss graph (%s)", exc)
        loss_graph = None
    wall = time.perf_counter() - start_time
    out.print(summary_table(summary, title=f"losses over {total_steps} steps (weighted)"))
    drop = curve[-1] / curve[0] if curve[0] > 0 and math.isfinite(curve[0]) else math.nan
    out.print(
        f"held-out L1: {' -> '.join(f'{v:.4f}' for v in curve)} ({drop:.0%} of the initial)\n"
        f"wrote {log_path}, {samples}"
        + (f", {loss_graph}" if loss_graph else "")
        + f" in {wall:.1f} s",
        markup=False,
    )
    return DemoResult(
        experiment_dir=experiment_dir,
        log_path=log_path,
        loss_graph=loss_graph,
        samples=samples,
        heldout_l1=curve,
        summary=summary,
        wall_time_s=wall,
        device=str(device),
        config=cfg,
        roles=roles,
    )

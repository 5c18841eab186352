"""The demo's pix2pix pair: a compact U-Net generator and a PatchGAN discriminator."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PatchDiscriminator", "UNetGenerator"]


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

    @property
    def last_layer(self) -> Tensor:
        """The output convolution's weight (where adaptive balancers compare gradients)."""
        conv = self.out[0]
        assert isinstance(conv, nn.ConvTranspose2d)  # built in __init__
        return conv.weight

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

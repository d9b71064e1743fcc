"""The invertible-grayscale encoder/decoder pair.

Both nets work at 1/scale resolution after a pixel-unshuffle, which is where the
speed comes from: a 2x2 block of gray pixels carries its luma plus three
detail coefficients, and those details are where the colour is hidden.
The gray is parameterised as BT.601 luma plus a bounded learned residual, so it
looks like an ordinary grayscale from the first training step on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601


def rgb_to_luma(rgb: Tensor) -> Tensor:
    """BT.601 luma of an RGB batch (B,3,H,W) -> (B,1,H,W), same range as the input."""
    weights = rgb.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class NetConfig:
    """Architecture arguments; stored beside the weights so a file rebuilds its own net."""

    scale: int = 2  # pixel-unshuffle factor
    width: int = 48  # feature channels at 1/scale resolution
    encoder_blocks: int = 4  # residual blocks in the encoder
    decoder_blocks: int = 4  # residual blocks in the decoder
    max_residual: float = 0.25  # bound on |gray - luma| in [0, 1] units (< the 70/255 lightness hinge)

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _trunk(in_channels: int, out_channels: int, width: int, blocks: int) -> nn.Sequential:
    tail = nn.Conv2d(width, out_channels, 3, padding=1)
    nn.init.zeros_(tail.weight)  # start as the identity mapping (gray = luma, colour = gray)
    nn.init.zeros_(tail.bias)
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(inplace=True),
        *[ResidualBlock(width) for _ in range(blocks)],
        tail,
    )


def _trunk_convs(blocks: int) -> int:
    return 2 + 2 * blocks


class InvertibleGray(nn.Module):
    """Encoder RGB -> gray and decoder gray -> RGB, all tensors in [0, 1]."""

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.config = config
        s = config.scale
        self.encoder = _trunk(3 * s * s, s * s, config.width, config.encoder_blocks)
        self.decoder = _trunk(s * s, 3 * s * s, config.width, config.decoder_blocks)

    @property
    def divisibility(self) -> int:
        """Height and width fed to encode/decode must be multiples of this."""
        return self.config.scale

    def _radius(self, blocks: int) -> int:
        # each 3x3 conv at 1/scale resolution reaches one low-res pixel = scale pixels further;
        # the unshuffle block itself adds up to scale-1 more.
        return self.config.scale * (_trunk_convs(blocks) + 1)

    @property
    def encoder_receptive_field(self) -> int:
        """Radius in input pixels beyond which the encoder's output cannot see."""
        return self._radius(self.config.encoder_blocks)

    @property
    def decoder_receptive_field(self) -> int:
        return self._radius(self.config.decoder_blocks)

    @property
    def receptive_field(self) -> int:
        return max(self.encoder_receptive_field, self.decoder_receptive_field)

    def encode(self, rgb: Tensor) -> Tensor:
        """(B,3,H,W) colour in [0,1] -> (B,1,H,W) gray in [0,1], before 8-bit quantisation."""
        s = self.config.scale
        residual = self.encoder(F.pixel_unshuffle(rgb - 0.5, s))
        residual = torch.tanh(residual) * self.config.max_residual
        return (rgb_to_luma(rgb) + F.pixel_shuffle(residual, s)).clamp(0.0, 1.0)

    def decode(self, gray: Tensor) -> Tensor:
        """(B,1,H,W) gray in [0,1] -> (B,3,H,W) colour, unclamped (clamp for output)."""
        s = self.config.scale
        delta = self.decoder(F.pixel_unshuffle(gray - 0.5, s))
        return gray + F.pixel_shuffle(delta, s)

    def forward(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        gray = self.encode(rgb)
        return gray, self.decode(gray)

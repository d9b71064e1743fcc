"""Stage 2 (models): the small U-Net the colouriser and the JPEG decoder share: full resolution in and out, a
residual bottom at 1/2**levels, skip connections merged by 3x3 convolutions at each level."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from invgray_cli.models.net import ResidualBlock


class UNet(nn.Module):
    """(B, in_channels, H, W) -> (B, out_channels, H, W); H and W multiples of ``divisibility``."""

    def __init__(self, in_channels: int, out_channels: int, width: int, levels: int, bottom_blocks: int) -> None:
        super().__init__()
        self.levels = levels
        widths = [width * 2**level for level in range(levels + 1)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), nn.ReLU(inplace=True),
                          nn.Conv2d(widths[i + 1], widths[i + 1], 3, padding=1), nn.ReLU(inplace=True))
            for i in range(levels))
        self.bottom = nn.Sequential(*[ResidualBlock(widths[-1]) for _ in range(bottom_blocks)])
        self.up = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in reversed(range(levels)))
        self.merge = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * widths[i], widths[i], 3, padding=1), nn.ReLU(inplace=True))
            for i in reversed(range(levels)))
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)

    @property
    def divisibility(self) -> int:
        return 2**self.levels

    def run(self, planes: Tensor) -> Tensor:
        skips = [self.stem(planes)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = self.bottom(skips.pop())
        for up, merge in zip(self.up, self.merge):
            skip = skips.pop()
            x = F.interpolate(up(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = merge(torch.cat([x, skip], dim=1))
        return self.head(x)

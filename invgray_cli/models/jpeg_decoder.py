"""Stage 2 (models): the JPEG decoder, colour from a JPEG gray's luma and its block code
(``codec/block_code.py``).

After JPEG a gray's fine carriers are gone, but its block code still gives the colour of each
16x16 macroblock. This net takes the received gray and that coarse colour spread over it, and
returns RGB: a correction of the luma (the gray is the codec net's gray with JPEG's blocking, not
the photo's luma) and of the chroma (sharpened along the gray's edges). With ``fine_planes`` it is
also given what the codec's own decoder makes of the received gray: its colours are mostly guesses
after JPEG, but the codec net knows its gray's offset from the photo's luma, and the fine code's
remnants hold some detail the coarse colour lacks. It is a companion of one codec model, trained on
that model's grays (`invgray train-jpeg-decoder`). The codec runs it on any size in tiles
(``codec.nets.TiledJpegDecoder``), a margin of ``receptive_radius`` around each.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from invgray_cli.colour import chroma_to_rgb, rgb_to_chroma, rgb_to_luma
from invgray_cli.models.unet import UNet


@dataclass(frozen=True)
class JpegDecoderConfig:
    width: int = 24
    levels: int = 2
    bottom_blocks: int = 2
    fine_planes: bool = False  # also given the codec decoder's colour of the received gray

    def to_dict(self) -> dict:
        return asdict(self)


class JpegDecoder(UNet):
    """luma (B,1,H,W) in [0,1] and coarse chroma (B,2,H,W) (and with ``fine_planes`` the codec
    decoder's RGB (B,3,H,W) in [0,1]) -> RGB (B,3,H,W) in [0,1]."""

    def __init__(self, config: JpegDecoderConfig = JpegDecoderConfig()) -> None:
        super().__init__(6 if config.fine_planes else 3, 3, config.width, config.levels, config.bottom_blocks)
        self.config = config

    @property
    def needs_fine(self) -> bool:
        return self.config.fine_planes

    def check_fine(self, fine: Tensor | None) -> None:
        """A ValueError when this decoder needs the codec decoder's colour and ``fine`` is None."""
        if self.needs_fine and fine is None:
            raise ValueError("this JPEG decoder needs the codec decoder's colour of the gray")

    def forward(self, luma: Tensor, chroma: Tensor, fine: Tensor | None = None) -> Tensor:
        self.check_fine(fine)
        planes = [luma - 0.5, chroma]
        if self.needs_fine:
            planes += [rgb_to_luma(fine) - luma, rgb_to_chroma(fine)]  # the new planes: zero at a warm start's start
        correction = self.run(torch.cat(planes, dim=1))
        return chroma_to_rgb((luma + correction[:, :1]).clamp(0.0, 1.0), chroma + correction[:, 1:])

    @property
    def receptive_radius(self) -> int:
        """Pixels each side an output pixel depends on (upper bound): 3x3 convolutions at each level,
        the bottom's residual blocks at the coarsest, each counted at its own scale."""
        stem_and_head = 3
        per_level = sum(2 * 2**level + 2**(level - 1) for level in range(1, self.levels + 1))
        return stem_and_head + per_level + 4 * len(self.bottom) * 2**self.levels

"""Stage 2 (models): the invertible-grayscale encoder/decoder pair.

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

from invgray_cli.colour import CB_WEIGHTS, CHROMA_TO_RGB, CR_WEIGHTS, LUMA_WEIGHTS, rgb_to_luma

# Walsh functions in sequency order; 2-D carriers are their outer products.
WALSH = {2: ((1, 1), (1, -1)), 4: ((1, 1, 1, 1), (1, 1, -1, -1), (1, -1, -1, 1), (1, -1, 1, -1))}
# (row, column) sequency of the carriers that hold (Cb, Cr): the two in which the luma of
# natural photos has least energy (measured on the training photos; for 4x4 blocks the pixel
# checkerboard and its row-modulated twin hold < 0.1 % of the detail energy).
CARRIER_SEQUENCIES = {2: ((1, 1), (1, 0)), 4: ((3, 3), (2, 3))}


@dataclass(frozen=True)
class NetConfig:
    """Architecture arguments; stored beside the weights so a file rebuilds its own net."""

    scale: int = 4  # pixel-unshuffle factor
    width: int = 96  # feature channels at 1/scale resolution
    encoder_blocks: int = 4  # residual blocks in the encoder
    decoder_blocks: int = 4  # residual blocks in the decoder
    max_residual: float = 0.25  # bound on |gray - luma| in [0, 1] units (< the 70/255 lightness hinge)
    carrier_gain: float = 0.25  # initial carrier coefficient per unit of chroma on the linear path
    # (row, column) sequencies of the (Cb, Cr) carriers of the initial code; None: CARRIER_SEQUENCIES
    carriers: tuple[tuple[int, int], tuple[int, int]] | None = None

    def __post_init__(self) -> None:
        if self.carriers is not None:  # JSON gives lists; keep configs comparable
            object.__setattr__(self, "carriers", tuple(tuple(int(v) for v in pair) for pair in self.carriers))

    def to_dict(self) -> dict:
        config = asdict(self)
        if self.carriers is None:  # files written before the field existed stay byte-identical
            del config["carriers"]
        return config


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _trunk(in_channels: int, out_channels: int, width: int, blocks: int) -> nn.Sequential:
    tail = nn.Conv2d(width, out_channels, 3, padding=1)
    # Zero tails: training starts exactly at the analytic carrier code of the linear paths (which
    # already scores ~36 dB); gradients still reach the tails through those paths. A small random
    # tail instead cost ~5 dB at the start that took thousands of steps to win back.
    nn.init.zeros_(tail.weight)
    nn.init.zeros_(tail.bias)
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(inplace=True),
        *[ResidualBlock(width) for _ in range(blocks)],
        tail,
    )


def carrier_patterns(scale: int, sequencies: tuple[tuple[int, int], ...] | None = None) -> Tensor:
    """(2, scale*scale) orthonormal block patterns in pixel-unshuffle order (row-major)."""
    walsh = torch.tensor(WALSH[scale], dtype=torch.float32)
    patterns = [torch.outer(walsh[r], walsh[c]).flatten() / scale for r, c in sequencies or CARRIER_SEQUENCIES[scale]]
    return torch.stack(patterns)


def _carrier_weights(scale: int, gain: float, sequencies: tuple[tuple[int, int], ...] | None = None
                     ) -> tuple[Tensor, Tensor]:
    """Initial 1x1 weights of the linear paths (pixel-unshuffled blocks of n = scale^2 pixels).

    Encoder (3n -> n): in each block, replace the luma's coefficients on two carriers by
    gain * (mean Cb, mean Cr). Decoder (n -> 3n): read those coefficients back as chroma and
    remove them from the luma. A de Queiroz-style embedding that the nets then improve on: it
    gives the joint training a working code from the first step instead of having to find one.
    """
    n = scale * scale
    carriers = carrier_patterns(scale, sequencies)  # (2 bands, n positions)
    luma, cb, cr = (torch.tensor(w) for w in (LUMA_WEIGHTS, CB_WEIGHTS, CR_WEIGHTS))
    chroma_weights = torch.stack([cb, cr])  # (2 bands, 3 colours)
    # encoder: out[k] = sum_b p_b[k] * (gain * mean_j chroma_b(rgb_j) - sum_j p_b[j] * luma(rgb_j))
    encoder = torch.zeros(n, 3, n)  # (out position, colour, in position)
    for b in range(2):
        encoder += carriers[b][:, None, None] * (
            gain * chroma_weights[b][None, :, None] / n - carriers[b][None, None, :] * luma[None, :, None]
        )
    # decoder: coef_b = sum_j p_b[j] gray_j; rgb_c[k] - gray[k] = sum_b coef_b (to_rgb[c, b] / gain - p_b[k])
    to_rgb = torch.tensor(CHROMA_TO_RGB)  # (3 colours, 2 bands)
    decoder = torch.zeros(3, n, n)  # (colour, out position, in position)
    for b in range(2):
        decoder += (to_rgb[:, b, None, None] / gain - carriers[b][None, :, None]) * carriers[b][None, None, :]
    return encoder.reshape(n, 3 * n, 1, 1), decoder.reshape(3 * n, n, 1, 1)


def _channels_last(blocks: Tensor) -> Tensor:
    """The encoder trunk's input stored channels-last, so its convs run in that layout: measured
    at 1024² on a 2-core CPU (fp32, 2 threads) the codec's encode takes 0.53-0.54 s instead of
    0.61-0.64; the sums' order changes (about 1 gray pixel in a million moves by one level). The
    decoder gained 1-2 % that way and keeps its layout (its colours stay as they were)."""
    return blocks.contiguous(memory_format=torch.channels_last)


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
        # linear (1x1) paths beside the trunks; with scale 2 they start as an analytic carrier code
        self.encoder_linear = nn.Conv2d(3 * s * s, s * s, 1)
        self.decoder_linear = nn.Conv2d(s * s, 3 * s * s, 1)
        with torch.no_grad():
            self.encoder_linear.bias.zero_()
            self.decoder_linear.bias.zero_()
            if s in WALSH:
                # small constants, made on the CPU even where the net is built on the meta device (as
                # loading does): there torch.outer imports torch._dynamo, 0.9 s at every start
                with torch.device("cpu"):
                    encoder_init, decoder_init = _carrier_weights(s, config.carrier_gain, config.carriers)
                self.encoder_linear.weight.copy_(encoder_init)
                self.decoder_linear.weight.copy_(decoder_init)

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
        blocks = _channels_last(F.pixel_unshuffle(rgb - 0.5, s))
        bound = self.config.max_residual
        residual = torch.tanh((self.encoder(blocks) + self.encoder_linear(blocks)) / bound) * bound
        return (rgb_to_luma(rgb) + F.pixel_shuffle(residual, s)).clamp(0.0, 1.0)

    def decode(self, gray: Tensor) -> Tensor:
        """(B,1,H,W) gray in [0,1] -> (B,3,H,W) colour, unclamped (clamp for output)."""
        s = self.config.scale
        blocks = F.pixel_unshuffle(gray - 0.5, s)
        delta = self.decoder(blocks) + self.decoder_linear(blocks)
        return gray + F.pixel_shuffle(delta, s)

    def forward(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        gray = self.encode(rgb)
        return gray, self.decode(gray)


@dataclass(frozen=True)
class EdgeDecoder:
    """A codec model's net whose decoder was fine-tuned for the lines beside a crop's cut edges
    (`invgray train --edge-band`; the encoder is the model's own)."""

    net: InvertibleGray
    all_cuts: bool = False  # every cut edge (--edge-all-cuts), not only a top or left cut off the grid

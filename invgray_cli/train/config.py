"""Stage train: the settings of a codec training run (``invgray train``), kept in its checkpoint."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from invgray_cli.models.net import NetConfig
from invgray_cli.train import losses

# An invisible gray: on every validation set a mean gray structure (SSIM structure term vs luma)
# of at least 0.98, the paper's level, and no image below 0.95.
GRAY_RULE = (0.98, 0.95)


@dataclass
class TrainConfig:
    data: list[str]
    val: list[str] = field(default_factory=list)
    steps: int = 7000
    batch: int = 16
    crop: int = 128
    lr: float = 3e-4
    final_lr_fraction: float = 0.01
    linear_lr_scale: float = 0.01
    # last part of the run with rounding in the loop + quantisation loss (paper Table 1, stage II);
    # off: with omega_1 halved it let the pattern grow, gray structure 0.981 -> 0.959 (weights/igray_s4w96.photos789_v1.md)
    stage2_fraction: float = 0.0
    stage1_quantiser: str = "noise"
    seed: int = 0
    val_every: int = 500
    checkpoint_every: int = 100
    max_grad_norm: float = 1.0  # clipping: one run at lr 1e-3 without it blew up after 2000 steps
    colour_augment: float = 0.5
    smooth_augment: float = 0.0  # share of crops defocused and made more saturated
    synthetic_fraction: float = 0.0  # share of each batch replaced by gradients and flat shapes
    synthetic_texture: float = 0.5  # share of those with a fine periodic texture on top
    upscale: float = 0.0  # share of crops up-sampled 1 to upscale_max times (as smooth as a camera photo)
    upscale_max: float = 3.0
    weaken: float = 0.0  # share of crops decoded from a gray whose residual the guard scaled down ...
    weaken_min: float = 0.5  # ... to a strength drawn from weaken_min to 1
    sync_aware: float = 0.0  # share of crops whose gray terms see the sync pattern encode adds
    border_emulation: float = 0.0  # share of steps whose crops end in partial 4-px blocks, as odd-sized photos
    jpeg_share: float = 0.0  # share of crops whose gray is decoded after a (differentiable) JPEG round trip
    jpeg_qualities: tuple[int, int] = (50, 95)  # their qualities, uniform in this range
    val_jpeg: int | None = None  # also validate after saving each gray as JPEG at this quality; selects on it
    cut_edges: float = 0.0  # share of steps whose gray is cut by 0-3 lines per side after encoding (a crop)
    decoder_only: bool = False  # train the decoder alone, the encoder (so every gray it made) kept as it is
    # an edge decoder (see Codec.decode_in_frame): every step cuts the top or left (any side with
    # edge_all_cuts), and only the lines within this many px of a cut edge are scored; 0: all lines
    edge_band: int = 0
    # ... and it serves every cut edge: each step cuts 0 to 2 blocks less a line off each side, at least one
    edge_all_cuts: bool = False
    device: str = "auto"  # as the codec's --device: auto, cpu, cuda, cuda:N
    init: str | None = None  # start from these .safetensors weights (fine-tuning) instead of the carrier code
    # the gray rule a kept checkpoint must meet on every validation set: mean and per-image minimum
    gray_mean_floor: float = GRAY_RULE[0]
    gray_image_floor: float = GRAY_RULE[1]
    net: dict = field(default_factory=lambda: NetConfig().to_dict())
    weights: dict = field(default_factory=lambda: asdict(losses.LossWeights()))
    vgg19: str | None = None


def config_json(cfg: TrainConfig) -> str:
    return json.dumps(asdict(cfg), indent=2)

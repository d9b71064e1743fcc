"""Stage 2 (models): the code detector. Does a gray carry an invgray colour code?

The code lives in the gray's finest detail, on a grid of ``period``-pixel blocks. A gray re-saved
as JPEG, resized or never encoded does not carry it. A small CNN reads the gray's detail (the gray
less its 3x3 local mean) through a first layer that strides by the period, on a few windows, and
gives the probability that the code is there. Trained for one codec model by
``invgray train-detector``.

It does not say where a cropped gray's grid starts: a 2-px shift of the 4-px Walsh carriers flips
the sign of a chroma channel, so the shifts that matter look alike in the gray (see README).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

CODE_THRESHOLD = 0.5  # below this confidence, decode says the gray carries no code


@dataclass(frozen=True)
class DetectorConfig:
    period: int = 4  # the codec's block size (its divisibility)
    width: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CodeReading:
    """What the detector read in a gray."""

    confidence: float  # probability that the gray carries the code, in [0, 1]


class CodeDetector(nn.Module):
    """gray (B,1,H,W) in [0,1] -> per-region logits of "the code is here" (B, 1, h, w)."""

    def __init__(self, config: DetectorConfig = DetectorConfig()) -> None:
        super().__init__()
        self.config = config
        p, w = config.period, config.width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 2 * p, stride=p), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 1, 1),
        )

    def forward(self, gray: Tensor) -> Tensor:
        local_mean = F.avg_pool2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return self.features((gray - local_mean) * 16.0)  # detail of a few levels -> order 1

    def image_logit(self, gray: Tensor) -> Tensor:
        """(B,): the regions' logits averaged."""
        return self(gray).mean(dim=(1, 2, 3))


DETECTOR_WINDOW = 128  # the detector reads windows of this size, at most DETECTOR_MAX_WINDOWS of them
DETECTOR_MAX_WINDOWS = 16


def window_origins(height: int, width: int, period: int) -> list[tuple[int, int]]:
    """Evenly spread window corners, each on the image's own ``period`` grid."""
    def starts(size: int) -> list[int]:
        if size <= DETECTOR_WINDOW:
            return [0]
        count = min(4, -(-size // DETECTOR_WINDOW))
        return sorted({int(round(i * (size - DETECTOR_WINDOW) / (count - 1))) // period * period for i in range(count)})

    return [(y, x) for y in starts(height) for x in starts(width)][:DETECTOR_MAX_WINDOWS]


DETECTOR_MIN_SIDE = 32  # below this a gray holds too few blocks to tell


def read_code(detector: CodeDetector, gray: np.ndarray) -> CodeReading | None:
    """Read a uint8 HxW gray with ``detector`` (a few windows; milliseconds on a CPU); None for a
    gray too small to tell."""
    period = detector.config.period
    height, width = gray.shape
    if min(height, width) < DETECTOR_MIN_SIDE:
        return None
    device = next(detector.parameters()).device
    image = torch.tensor(gray, dtype=torch.float32, device=device)[None, None] / 255.0  # a copy: gray may be read-only
    side = DETECTOR_WINDOW
    windows = [image[..., y : y + side, x : x + side] for y, x in window_origins(height, width, period)]
    with torch.inference_mode():
        logit = torch.stack([detector.image_logit(w)[0] for w in windows]).mean()
    return CodeReading(float(torch.sigmoid(logit.float())))

"""Base: the colour maths, in one place. BT.601 luma and chroma (YCbCr), for torch batches and numpy images.

Every stage uses these: the nets' gray starts from ``rgb_to_luma``, the gray guard and the metrics
measure against ``luma_plane``/``luma_bt601``, the colouriser, the block code and the JPEG decoder
predict chroma and rebuild RGB around a given luma with ``chroma_to_rgb``. Imports numpy and torch only.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601
CB_WEIGHTS = (-0.168736, -0.331264, 0.5)
CR_WEIGHTS = (0.5, -0.418688, -0.081312)
# chroma -> RGB offsets of BT.601 YCbCr: rows R, G, B; columns Cb, Cr
CHROMA_TO_RGB = ((0.0, 1.402), (-0.344136, -0.714136), (1.772, 0.0))
# YIQ: hue is a rotation of the (I, Q) plane, saturation its length (training's colour augmentation)
RGB_TO_YIQ = torch.tensor([LUMA_WEIGHTS, (0.596, -0.274, -0.322), (0.211, -0.523, 0.312)])
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)


# ---------------------------------------------------------------- torch, batched (B,C,H,W)


def rgb_to_luma(rgb: Tensor) -> Tensor:
    """BT.601 luma of an RGB batch (B,3,H,W) -> (B,1,H,W), same range as the input."""
    weights = rgb.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


def rgb_to_chroma(rgb: Tensor) -> Tensor:
    """(B,3,H,W) RGB in [0,1] -> (B,2,H,W) BT.601 Cb, Cr in [-0.5, 0.5]."""
    weights = rgb.new_tensor((CB_WEIGHTS, CR_WEIGHTS)).view(2, 3, 1, 1)
    return F.conv2d(rgb, weights)


def chroma_to_rgb(luma: Tensor, chroma: Tensor) -> Tensor:
    """Luma (B,1,H,W) and chroma (B,2,H,W) -> RGB in [0,1] whose BT.601 luma is ``luma``.

    Where a colour falls outside the RGB cube its chroma is scaled down (towards gray) just enough
    to fit, instead of clipping channels, which would change the luma.
    """
    offsets = F.conv2d(chroma, chroma.new_tensor(CHROMA_TO_RGB).view(3, 2, 1, 1))  # RGB - Y per channel
    room_up = (1.0 - luma) / offsets.clamp(min=1e-6)
    room_down = luma / (-offsets).clamp(min=1e-6)
    limits = torch.where(offsets > 1e-6, room_up, torch.where(offsets < -1e-6, room_down, torch.ones_like(offsets)))
    scale = limits.amin(dim=1, keepdim=True).clamp(0.0, 1.0)
    return (luma + scale * offsets).clamp(0.0, 1.0)


# ---------------------------------------------------------------- one image, HxWx3


def luma_plane(rgb: Tensor) -> Tensor:
    """BT.601 luma of uint8 HxWx3 as float32 HxW on the 0-255 scale (one channel at a time, so a
    large photo needs one float plane, not three)."""
    luma = rgb[..., 0].float().mul_(LUMA_WEIGHTS[0])
    for c in (1, 2):
        luma.add_(rgb[..., c].float().mul_(LUMA_WEIGHTS[c]))
    return luma


def luma_bt601(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an HxWx3 image as float64 HxW, on the input's scale (0-255 for uint8)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    return rgb.astype(np.float64) @ np.asarray(LUMA_WEIGHTS, dtype=np.float64)


def plain_gray(rgb: np.ndarray) -> np.ndarray:
    """The ordinary 8-bit gray of a uint8 HxWx3 photo (its rounded BT.601 luma), no code hidden in it."""
    return np.round(luma_bt601(rgb)).astype(np.uint8)

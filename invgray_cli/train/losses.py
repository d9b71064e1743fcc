"""Stage train: the loss terms after the paper's Sec. 5, all on images in [0, 1].

invertibility  MSE(restored, input)                                  (Eq. 4)
lightness      hinge at theta = 70/255 around BT.601 luma             (Eq. 5)
contrast       multi-scale luma-contrast preservation (no download) or, given a local
               file, the paper's VGG-19 conv4_4 feature distance         (Eq. 6)
structure      |local variance(gray) - local variance(luma)|           (Eq. 7)
               plus hinges on the SSIM structure term the evaluation measures: on each
               crop's mean, and on each window (where the pattern shows, not on average)
quantisation   distance of 255*gray to the nearest integer              (Eq. 9)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from invgray_cli.metrics import gray_structure_map_torch

LIGHTNESS_THETA = 70.0 / 255.0


def lightness_loss(gray: Tensor, luma: Tensor, theta: float = LIGHTNESS_THETA) -> Tensor:
    return F.relu((gray - luma).abs() - theta).mean()


def _neighbour_differences(image: Tensor) -> tuple[Tensor, Tensor]:
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


def contrast_loss(gray: Tensor, luma: Tensor, levels: int = 4) -> Tensor:
    """L1 between neighbour differences of gray and luma on a 2x,4x,8x,16x average pyramid.

    Coarse-scale contrast must follow the luma, so the hidden pattern stays a fine,
    locally zero-mean texture and the gray keeps the photo's regional contrast.
    """
    total = gray.new_zeros(())
    for level in range(1, levels + 1):
        factor = 2**level
        if min(gray.shape[-2:]) < 2 * factor:
            break
        pooled_gray, pooled_luma = F.avg_pool2d(gray, factor), F.avg_pool2d(luma, factor)
        for dg, dl in zip(_neighbour_differences(pooled_gray), _neighbour_differences(pooled_luma)):
            total = total + (dg - dl).abs().mean()
    return total


def local_variance(image: Tensor, window: int = 5) -> Tensor:
    mean = F.avg_pool2d(image, window, stride=1, padding=window // 2, count_include_pad=False)
    mean_sq = F.avg_pool2d(image * image, window, stride=1, padding=window // 2, count_include_pad=False)
    return (mean_sq - mean * mean).clamp_min(0.0)


def local_structure_loss(gray: Tensor, luma: Tensor) -> Tensor:
    return (local_variance(gray) - local_variance(luma)).abs().mean()


def structure_map(gray: Tensor, luma: Tensor) -> Tensor:
    """SSIM structure term per window, exactly as `invgray eval` measures it (differentiable)."""
    return gray_structure_map_torch(gray, luma, data_range=1.0, eps=1e-12)


def structure_term(gray: Tensor, luma: Tensor) -> Tensor:
    """Per-image mean of `structure_map`: the gray structure `invgray eval` reports."""
    return structure_map(gray, luma).mean(dim=(1, 2, 3))


def window_structure_hinge(structure: Tensor, target: float) -> Tensor:
    """Mean shortfall of each window's structure term below ``target``.

    A hinge on the image mean lets the carrier shrink everywhere; this one acts only where the
    pattern shows (weak texture under a strong carrier), so textured areas keep their code.
    """
    return torch.relu(target - structure).mean()


def quantisation_loss(gray: Tensor) -> Tensor:
    scaled = gray * 255.0
    return (scaled - torch.round(scaled)).abs().mean() / 255.0


def quantise(gray: Tensor, mode: str) -> Tensor:
    """What the decoder sees in training: 8-bit rounding (straight-through), uniform noise, the
    gray exactly as the codec stores it (clamped and rounded, no gradient: for a frozen encoder), or nothing."""
    if mode == "stored":
        return (torch.round(gray.detach() * 255.0).clamp(0.0, 255.0) / 255.0)
    if mode == "round":
        return gray + (torch.round(gray * 255.0) / 255.0 - gray).detach()
    if mode == "noise":
        return gray + (torch.rand_like(gray) - 0.5) / 255.0
    return gray


@dataclass(frozen=True)
class LossWeights:
    invertibility: float = 10.0  # colour MSE on [0,1] values is tiny next to the L1 terms; lift it
    conformity: float = 1.0  # omega_1 in the paper's Eq. 3 (Table 1)
    quantisation: float = 0.0  # omega_2
    # alpha and beta: the paper's beta = 0.5 shrank the carrier gain (local variance is the
    # pattern's energy) until 8-bit noise cost 5 dB; the structure hinge below holds the measured
    # gray structure instead, and these proxies only shape the pattern.
    contrast: float = 0.05
    local_structure: float = 0.05
    # A hinge on the measured structure term, off by default: at weight 10 and target 0.97-0.978
    # it cost 2.5-3 dB of validation PSNR within 150 steps (it squeezes the carrier on colourful
    # flat crops) while the gray structure stayed above 0.98 without it.
    structure_hinge: float = 0.0
    structure_target: float = 0.978
    # The same measure per 11x11 window: the gray rule is per image (mean >= 0.98, no image
    # below 0.95), and the images that break it have smooth regions where the crosshatch shows.
    window_hinge: float = 0.0
    window_target: float = 0.97

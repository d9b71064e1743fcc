"""The gray rule, kept at encode time: the hidden pattern never shows more than a floor allows.

A trained encoder hides its pattern well on the content it was trained on; an unusual image (a
fine coloured texture at the carriers' own frequencies, say) can still give a gray whose
structure departs from the luma's. The encoder knows both, so it checks its own gray: when the
mean SSIM structure term against the luma falls below the floor, the residual gray - luma is
scaled down just enough to meet it. The colour of that image comes back a little less saturated;
every other image is left exactly as the network made it.

For a gray g = luma + a * r the local moments are closed-form in a (var_g = var_l + 2a cov_lr
+ a^2 var_r, cov_gl = var_l + a cov_lr), so one pass over the image measures the structure at
a = 1 and, only for an image that fails, two more passes find the strength on a 1/64 grid;
rows are processed in bands, so memory stays bounded for any image size.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .metrics import LUMA_WEIGHTS, SSIM_K2, SSIM_WINDOW, local_moments

ROUNDING_VARIANCE = 1.0 / 12.0  # of the 8-bit gray, in gray levels squared
BAND_ROWS = 512  # rows of window positions measured at a time


def _moments(luma: Tensor, residual: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """var_l, cov_lr, var_r at every window position, HxW float64 inputs on the 0-255 scale."""
    # centred, so float32 keeps the variances' digits (E[x^2] - E[x]^2 of 0-255 values cancels badly)
    _, _, var_l, var_r, cov = local_moments((luma - 128.0)[None, None], residual[None, None])
    return var_l.flatten(), cov.flatten(), var_r.flatten()


def _structure_sum(moments: tuple[Tensor, Tensor, Tensor], strength: float) -> float:
    var_l, cov_lr, var_r = moments
    c3 = (SSIM_K2 * 255.0) ** 2 / 2
    var_g = (var_l + 2 * strength * cov_lr + strength * strength * var_r).clamp_min(0) + ROUNDING_VARIANCE
    cov_gl = var_l + strength * cov_lr
    return float(((cov_gl + c3) / (torch.sqrt(var_g * var_l.clamp_min(0)) + c3)).sum())


def _bands(height: int) -> list[tuple[int, int]]:
    """Row ranges whose window positions tile the image's valid positions exactly once."""
    overlap = min(SSIM_WINDOW, height) - 1
    if height <= BAND_ROWS + overlap:
        return [(0, height)]
    starts = range(0, height - overlap, BAND_ROWS)
    return [(start, min(start + BAND_ROWS + overlap, height)) for start in starts]


def structure_at(luma: Tensor, residual: Tensor, strengths: list[float]) -> list[float]:
    """Mean structure term of round(luma + a * residual) against luma, for each a (HxW, 0-255)."""
    totals, count = [0.0] * len(strengths), 0
    for top, bottom in _bands(luma.shape[0]):
        moments = _moments(luma[top:bottom].float(), residual[top:bottom].float())
        count += moments[0].numel()
        for i, strength in enumerate(strengths):
            totals[i] += _structure_sum(moments, strength)
    return [total / count for total in totals]


def pattern_strength(luma: Tensor, residual: Tensor, floor: float) -> float:
    """The largest a <= 1 on a 1/64 grid at which luma + a * residual keeps a mean structure term
    of at least ``floor`` against the luma (the structure falls as a grows): eighths first, then
    the 64ths inside the bracket, three passes over the image in all."""
    if min(luma.shape) < 2 or structure_at(luma, residual, [1.0])[0] >= floor:
        return 1.0
    eighths = [1.0 - k / 8 for k in range(1, 9)]
    meets = [s >= floor for s in structure_at(luma, residual, eighths)]
    low = eighths[meets.index(True)] if True in meets else 0.0
    fine = [low + k / 64 for k in range(7, 0, -1)]  # strictly between low and low + 1/8
    return next((a for a, s in zip(fine, structure_at(luma, residual, fine)) if s >= floor), low)


def luma_of(rgb: np.ndarray) -> Tensor:
    """BT.601 luma of a uint8 HxWx3 array as float32 HxW on the 0-255 scale (one channel at a time)."""
    channels = torch.from_numpy(np.ascontiguousarray(rgb))
    luma = channels[..., 0].float().mul_(LUMA_WEIGHTS[0])
    for c in (1, 2):
        luma.add_(channels[..., c].float().mul_(LUMA_WEIGHTS[c]))
    return luma


def guarded_gray(rgb: np.ndarray, gray: Tensor, floor: float) -> Tensor:
    """The encoder's float gray (HxW, [0,1]) of ``rgb`` as uint8, its residual from the luma
    scaled down where needed so its mean structure term against the luma is at least ``floor``."""
    luma = luma_of(rgb)
    residual = gray.float().mul(255.0).sub_(luma)
    strength = pattern_strength(luma, residual, floor)
    if strength == 1.0:  # as the network made it, to the bit
        return gray.float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return residual.mul_(strength).add_(luma).round_().clamp_(0, 255).to(torch.uint8)

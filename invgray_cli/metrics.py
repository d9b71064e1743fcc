"""Base: image-quality measures used by evaluation and by training's validation.

SSIM follows Wang et al. 2004 as the paper's Table 2 uses it: an 11x11 Gaussian
window (sigma 1.5), K1 = 0.01, K2 = 0.03, population (not sample) covariances,
computed per channel and averaged over the positions where the whole window fits
(the same crop as ``skimage.metrics.structural_similarity``), then over channels.
``gray_structure`` is the SSIM *structure* term alone, s = (cov + C3) / (sd_x sd_y + C3)
with C3 = C2 / 2, between a gray and the BT.601 luma of its colour input (paper Sec. 7.2; the
luma itself is ``colour.luma_bt601``).

The numpy functions take uint8 or float arrays shaped HxW or HxWxC on the scale given by
``data_range`` (255 for uint8 photos). They compute in float64 through the torch
functions below, so the numpy and torch versions share one definition.
The torch functions take batches (B,C,H,W) and return one value per image, differentiable.
Images smaller than 11 pixels on a side use the largest odd window that fits.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


# ---------------------------------------------------------------- torch, batched


def _gaussian_taps(size: int, sigma: float) -> list[float]:
    offsets = [k - (size - 1) / 2 for k in range(size)]
    taps = [math.exp(-(o * o) / (2 * sigma * sigma)) for o in offsets]
    return [t / sum(taps) for t in taps]


def _window_size(height: int, width: int) -> int:
    """11, or the largest odd size that fits an image smaller than that."""
    size = min(SSIM_WINDOW, height, width)
    return size if size % 2 == 1 else size - 1


def _local_mean(x: Tensor, taps: list[float]) -> Tensor:
    """Separable Gaussian mean over each 'valid' window position of (..., H, W).

    Shifted slices summed with scalar weights: several times faster on CPU than a
    depthwise float64 conv2d, and the same on any device. The sums run in place, one scratch
    tensor per pass (half the time of a new tensor per term, the same bits).
    """
    size = len(taps)
    height, width = x.shape[-2] - size + 1, x.shape[-1] - size + 1
    rows = _weighted_sum([x[..., k : k + height, :] for k in range(size)], taps)
    return _weighted_sum([rows[..., k : k + width] for k in range(size)], taps)


def _weighted_sum(terms: list[Tensor], weights: list[float]) -> Tensor:
    """sum(w * t) term by term, left to right, into one output (no autograd: a fresh tensor per term)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in terms):
        return sum(w * t for w, t in zip(weights, terms))
    total = torch.mul(terms[0], weights[0])
    scratch = torch.empty_like(total)
    for term, weight in zip(terms[1:], weights[1:]):
        total.add_(torch.mul(term, weight, out=scratch))
    return total


def local_moments(x: Tensor, y: Tensor, x_moments: tuple[Tensor, Tensor] | None = None,
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Local means, variances and covariance of x and y (B,C,H,W) under the SSIM window.
    ``x_moments``: x's ``local_mean_variance``, when already measured (the same bits)."""
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(f"expected two (B,C,H,W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError("cannot measure an empty image")
    taps = _gaussian_taps(_window_size(x.shape[-2], x.shape[-1]), SSIM_SIGMA)
    mu_x, var_x = x_moments if x_moments is not None else _mean_variance(x, taps)
    mu_y, var_y = _mean_variance(y, taps)
    cov = _local_mean(x * y, taps) - mu_x * mu_y
    return mu_x, mu_y, var_x, var_y, cov


def local_mean_variance(x: Tensor) -> tuple[Tensor, Tensor]:
    """Local mean and variance of x (B,C,H,W) under the SSIM window, as ``local_moments`` makes them."""
    return _mean_variance(x, _gaussian_taps(_window_size(x.shape[-2], x.shape[-1]), SSIM_SIGMA))


def _mean_variance(x: Tensor, taps: list[float]) -> tuple[Tensor, Tensor]:
    mu = _local_mean(x, taps)
    return mu, _local_mean(x * x, taps) - mu * mu


def _float_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Both in x's float dtype (float32 for integer input)."""
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return x.to(dtype), y.to(dtype)


def ssim_torch(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean SSIM over channels and positions for each image of a (B,C,H,W) batch -> (B,)."""
    mu_x, mu_y, var_x, var_y, cov = local_moments(*_float_pair(x, y))
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))


def gray_structure_map_torch(gray: Tensor, luma: Tensor, data_range: float = 1.0, eps: float = 0.0) -> Tensor:
    """SSIM structure term at every valid window position of (B,1,H,W) batches -> (B,1,H',W').

    Training passes a tiny ``eps`` so the square root keeps a finite gradient in flat regions.
    """
    _, _, var_g, var_l, cov = local_moments(*_float_pair(gray, luma))
    c3 = (SSIM_K2 * data_range) ** 2 / 2
    # clamp: E[x^2] - E[x]^2 can dip a hair below zero in flat regions
    sd_product = torch.sqrt(var_g.clamp_min(0) * var_l.clamp_min(0) + eps)
    return (cov + c3) / (sd_product + c3)


def gray_structure_torch(gray: Tensor, luma: Tensor, data_range: float = 1.0, eps: float = 0.0) -> Tensor:
    """Mean SSIM structure term between gray and luma batches (B,1,H,W) -> (B,)."""
    return gray_structure_map_torch(gray, luma, data_range, eps).mean(dim=(1, 2, 3))


# ---------------------------------------------------------------- numpy, one image


def _as_batch(a: np.ndarray) -> Tensor:
    """HxW or HxWxC array -> float64 (1,C,H,W) tensor."""
    t = torch.from_numpy(np.asarray(a, dtype=np.float64))
    return t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"expected a non-empty HxW or HxWxC image, got shape {a.shape}")


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; inf for identical images."""
    _check_pair(a, b)
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in the arrays' own units (0-255 for uint8 photos)."""
    _check_pair(a, b)
    return float(np.mean(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM of two HxW or HxWxC images, averaged over channels (paper Table 2)."""
    _check_pair(a, b)
    return float(ssim_torch(_as_batch(a), _as_batch(b), data_range)[0])


def gray_structure(gray: np.ndarray, luma: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM structure term between a gray image and a luma image, both HxW."""
    _check_pair(gray, luma)
    if np.ndim(gray) != 2:
        raise ValueError(f"expected HxW gray and luma images, got shape {np.shape(gray)}")
    return float(gray_structure_torch(_as_batch(gray), _as_batch(luma), data_range)[0])


def gray_psnr(gray: np.ndarray, luma: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR of a gray image against the luma it should resemble."""
    return psnr(gray, luma, data_range)


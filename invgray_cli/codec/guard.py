"""The gray rule, kept at encode time: a floor under each gray's mean structure term.

A trained encoder hides its pattern well on the content it was trained on; an unusual image (a
fine coloured texture at the carriers' own frequencies, say) can still give a gray whose
structure departs from the luma's. The encoder knows both, so it checks its own gray: when the
mean SSIM structure term against the luma falls below the floor, the residual gray - luma is
scaled down just enough to meet it. The decoder never saw a scaled residual, so that image's
colour can come back wrong rather than paler (measured: scikit-image's coffee at floor 0.99
restores at 21.9 dB instead of 36.2); every other image is left exactly as the network made it. (The measure is the evaluation's: in
a perfectly flat luma window it is 1 whatever the gray does there, so a pattern on flat colour is
the network's to hide, not the guard's.)

For a gray g = luma + a * r the local moments are closed-form in a (var_g = var_l + 2a cov_lr
+ a^2 var_r, cov_gl = var_l + a cov_lr), so one pass over the image measures the structure at
a = 1 and, only for an image that fails, two more passes find the strength on a 1/64 grid (an
image of one band keeps its moments for them instead). The passes work on bands of rows computed from
the photo and the float gray, so the guard's memory is bounded by the band, not the image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from invgray_cli.codec.nets import as_tensor
from invgray_cli.colour import luma_plane
from invgray_cli.metrics import SSIM_K2, _window_size, local_mean_variance, local_moments

ROUNDING_VARIANCE = 1.0 / 12.0  # of the 8-bit gray, in gray levels squared
BAND_PIXELS = 2_000_000  # pixels measured at a time (about 100 MB of float32 temporaries)


def _bands(height: int, width: int, band_pixels: int | None = None) -> list[tuple[int, int]]:
    """Row ranges whose window positions tile the image's valid positions exactly once."""
    overlap = _window_size(height, width) - 1
    rows = max((band_pixels or BAND_PIXELS) // max(width, 1), 1)
    if height <= rows + overlap:
        return [(0, height)]
    return [(start, min(start + rows + overlap, height)) for start in range(0, height - overlap, rows)]


@dataclass(frozen=True)
class LumaWindows:
    """A photo's luma and its local mean and variance (of luma - 128) under the SSIM window: what
    every structure measure against that luma shares, kept for an image of one band."""

    luma: Tensor  # (H, W), 0-255
    mean: Tensor
    variance: Tensor


@torch.inference_mode()
def luma_windows(rgb: Tensor) -> LumaWindows | None:
    """``LumaWindows`` of a uint8 HxWx3 photo (on its device); None for an image of several bands."""
    if len(_bands(*rgb.shape[:2])) != 1 or min(rgb.shape[:2]) < 2:
        return None
    luma = luma_plane(rgb)
    return LumaWindows(luma, *local_mean_variance((luma - 128.0)[None, None]))


def _moments(rgb: Tensor, gray: Tensor, top: int, bottom: int,
             luma: LumaWindows | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The local variances of the luma and of the residual and their covariance, over the window
    positions of the band ``top:bottom`` (what the structure term at any strength is made of);
    ``luma``: the photo's ``luma_windows``, when kept (an image of one band)."""
    plane = luma_plane(rgb[top:bottom]) if luma is None else luma.luma
    residual = gray[top:bottom].float() * 255.0 - plane
    known = None if luma is None else (luma.mean, luma.variance)
    # centred: E[x^2] - E[x]^2 of 0-255 values in float32 keeps ~1e-3 of the term (errs low, the safe side)
    _, _, var_l, var_r, cov_lr = local_moments((plane - 128.0)[None, None], residual[None, None], known)
    return var_l, var_r, cov_lr


def _structure_sums(moments: tuple[Tensor, Tensor, Tensor], strengths: list[float]) -> tuple[list[float], int]:
    """Sums over a band's window positions of the structure term at each strength, and their count."""
    var_l, var_r, cov_lr = moments
    c3 = (SSIM_K2 * 255.0) ** 2 / 2
    sd_l = var_l.clamp_min(0)
    sums = []
    # (var_l + a cov_lr + c3) / (sqrt(var_g sd_l) + c3) with var_g = var_l + 2a cov_lr + a^2 var_r + rounding,
    # in place in two scratch tensors: the same operations in the same order as a new tensor per term
    var_g, term = torch.empty_like(var_l), torch.empty_like(var_l)
    for a in strengths:
        torch.mul(cov_lr, 2 * a, out=var_g).add_(var_l)
        var_g.add_(torch.mul(var_r, a * a, out=term)).clamp_min_(0).add_(ROUNDING_VARIANCE)
        denominator = var_g.mul_(sd_l).sqrt_().add_(c3)
        torch.mul(cov_lr, a, out=term).add_(var_l).add_(c3)
        sums.append(float(term.div_(denominator).sum()))
    return sums, var_l.numel()


def structure_at(rgb: Tensor, gray: Tensor, strengths: list[float], band_pixels: int | None = None,
                 moments: list[tuple[Tensor, Tensor, Tensor]] | None = None,
                 luma: LumaWindows | None = None) -> list[float]:
    """Mean structure term of round(luma + a * (255 gray - luma)) against the luma of ``rgb``
    (uint8 HxWx3) for each strength a; ``gray`` is the encoder's float HxW in [0, 1]. ``moments``:
    each band's ``_moments``, when already measured; ``luma``: the photo's ``luma_windows``."""
    totals, count = [0.0] * len(strengths), 0
    if luma is not None and moments is None and band_pixels is None:
        moments = [_moments(rgb, gray, 0, gray.shape[0], luma)]
    bands = moments or (_moments(rgb, gray, top, bottom) for top, bottom in _bands(*gray.shape, band_pixels))
    for band in bands:
        sums, n = _structure_sums(band, strengths)
        totals = [t + s for t, s in zip(totals, sums)]
        count += n
    return [total / count for total in totals]


Moments = list[tuple[Tensor, Tensor, Tensor]]


@torch.inference_mode()
def kept_moments(rgb: Tensor, gray: Tensor, luma: LumaWindows | None = None) -> Moments | None:
    """An image of one band's ``_moments``, measured once for every strength and floor asked of
    it; None for a larger image (its bands are measured again, to keep memory bounded)."""
    bands = _bands(*gray.shape)
    return [_moments(rgb, gray, *bands[0], luma)] if len(bands) == 1 and min(gray.shape) >= 2 else None


def pattern_strength(rgb: Tensor, gray: Tensor, floor: float, moments: Moments | None = None,
                     at_most: float = 1.0) -> float:
    """The largest a <= 1 on a 1/64 grid at which the scaled residual keeps a mean structure term
    of at least ``floor`` (the structure falls as a grows): eighths first, then the 64ths inside
    the bracket, three passes over the image in all. An image of one band measures its moments
    (which do not depend on a) once, and then each strength only until one meets the floor.
    ``at_most``: the strength found for a lower floor; the ones above it are known to fail and
    are not measured again (the answer is the same)."""
    if min(gray.shape) < 2:
        return 1.0
    kept = moments if moments is not None else kept_moments(rgb, gray)

    def first_meeting(candidates: list[float]) -> float | None:
        """The first of ``candidates`` whose structure meets the floor, or None."""
        strengths = [a for a in candidates if a <= at_most]
        if kept is None:  # one pass over the image for them all
            return next((a for a, s in zip(strengths, structure_at(rgb, gray, strengths)) if s >= floor), None)
        return next((a for a in strengths if structure_at(rgb, gray, [a], moments=kept)[0] >= floor), None)

    if first_meeting([1.0]) is not None:
        return 1.0
    low = first_meeting([1.0 - k / 8 for k in range(1, 9)])
    if low is None:
        return 0.0  # only the plain luma meets it
    fine = first_meeting([low + k / 64 for k in range(7, 0, -1)])  # strictly between low and low + 1/8
    return low if fine is None else fine


@torch.inference_mode()  # the tiler's output is an inference tensor, updated in place here
def guarded_gray(rgb: np.ndarray | Tensor, gray: Tensor, floor: float, moments: Moments | None = None,
                 at_most: float = 1.0, luma: LumaWindows | None = None) -> tuple[Tensor, float]:
    """The encoder's float gray (HxW, [0,1]) of ``rgb`` (uint8 HxWx3) as uint8, its residual from
    the luma scaled down where needed so its mean structure term against the luma is at least
    ``floor``, and the strength applied (1: the network's gray). Works in place on ``gray``, on its
    device (the photo is moved there). ``moments``: ``kept_moments`` of this photo and gray, when
    already measured; ``at_most``: see ``pattern_strength``; ``luma``: the photo's ``luma_windows``."""
    pixels = as_tensor(rgb).to(gray.device)
    strength = pattern_strength(pixels, gray, floor, moments, at_most)
    gray.mul_(255.0)
    if strength < 1.0:
        rows = max(BAND_PIXELS // gray.shape[1], 1)
        for top in range(0, gray.shape[0], rows):
            plane = luma_plane(pixels[top : top + rows]) if luma is None else luma.luma[top : top + rows]
            gray[top : top + rows].sub_(plane).mul_(strength).add_(plane)
    return gray.round_().clamp_(0, 255).to(torch.uint8), strength

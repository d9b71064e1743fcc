"""Stage colorize: the dominant colours of a photo, a palette for ``--reference`` and for training.

A small deterministic k-means in OKLab (Ottosson 2020, a perceptual colour space: equal distances
look about equally different), started from a median cut, so that the same photo always gives
the same palette. Pure numpy.
"""
from __future__ import annotations

import math

import numpy as np

from invgray_cli.colorize.palette import DEFAULT_PALETTE_SIZE, Rgb

MAX_SAMPLES = 16_384  # pixels k-means looks at: a regular subsample of larger photos
KMEANS_ROUNDS = 12

# OKLab: linear sRGB -> LMS, and the cube roots of LMS -> Lab; and back
LINEAR_TO_LMS = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                          [0.2119034982, 0.6806995451, 0.1073969566],
                          [0.0883024619, 0.2817188376, 0.6299787005]])
LMS_ROOT_TO_LAB = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                            [1.9779984951, -2.4285922050, 0.4505937099],
                            [0.0259040371, 0.7827717662, -0.8086757660]])
LAB_TO_LMS_ROOT = np.linalg.inv(LMS_ROOT_TO_LAB)
LMS_TO_LINEAR = np.linalg.inv(LINEAR_TO_LMS)


def srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in 0-255 -> (..., 3) OKLab (L in 0-1)."""
    unit = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(unit <= 0.04045, unit / 12.92, ((unit + 0.055) / 1.055) ** 2.4)
    return np.cbrt(linear @ LINEAR_TO_LMS.T) @ LMS_ROOT_TO_LAB.T


def oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) OKLab -> (..., 3) sRGB uint8, clipped to the RGB cube."""
    linear = ((np.asarray(lab, dtype=np.float64) @ LAB_TO_LMS_ROOT.T) ** 3) @ LMS_TO_LINEAR.T
    linear = np.clip(linear, 0.0, 1.0)
    unit = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(unit * 255.0).clip(0, 255).astype(np.uint8)


def dominant_colours(rgb: np.ndarray, count: int = DEFAULT_PALETTE_SIZE) -> list[Rgb]:
    """The ``count`` dominant colours of a uint8 HxWx3 photo, the most common first (fewer when the
    photo has fewer distinct colours). Deterministic: median cut, then k-means rounds, in OKLab."""
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size):
        raise ValueError(f"expected a non-empty uint8 HxWx3 photo, got {getattr(rgb, 'shape', type(rgb))}")
    if count <= 0:
        return []
    samples = srgb_to_oklab(subsample(rgb).reshape(-1, 3))
    centres = median_cut(samples, count)
    for _ in range(KMEANS_ROUNDS):
        moved = cluster_means(samples, nearest_centre(samples, centres), centres)
        if np.allclose(moved, centres, atol=1e-9):
            break
        centres = moved
    sizes = np.bincount(nearest_centre(samples, centres), minlength=len(centres))
    order = sorted((k for k in range(len(centres)) if sizes[k]), key=lambda k: (-sizes[k], k))
    colours: list[Rgb] = []
    for colour in oklab_to_srgb(centres[order]):
        rgb_tuple = tuple(int(v) for v in colour)
        if rgb_tuple not in colours:  # two centres that round to one colour are one palette colour
            colours.append(rgb_tuple)
    return colours


def subsample(rgb: np.ndarray, limit: int = MAX_SAMPLES) -> np.ndarray:
    """Every n-th pixel along each axis, so that at most about ``limit`` pixels remain."""
    step = max(1, math.ceil(math.sqrt(rgb.shape[0] * rgb.shape[1] / limit)))
    return rgb[::step, ::step]


def median_cut(samples: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` starting centres: the box with the largest squared spread is split at the
    median of its widest axis until there are ``count`` boxes (or no box can be split)."""
    boxes = [samples]
    while len(boxes) < count:
        spreads = [float(((box - box.mean(axis=0)) ** 2).sum()) if len(box) > 1 else 0.0 for box in boxes]
        widest = int(np.argmax(spreads))
        if spreads[widest] <= 0.0:
            break
        box = boxes.pop(widest)
        axis = int(np.argmax(box.var(axis=0)))
        order = np.argsort(box[:, axis], kind="stable")
        half = len(box) // 2
        boxes[widest:widest] = [box[order[:half]], box[order[half:]]]
    return np.stack([box.mean(axis=0) for box in boxes])


def nearest_centre(samples: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The index of each sample's nearest centre (squared Euclidean distance in OKLab)."""
    distances = (centres**2).sum(axis=1)[None, :] - 2.0 * samples @ centres.T
    return distances.argmin(axis=1)


def cluster_means(samples: np.ndarray, nearest: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Each cluster's mean; an empty cluster keeps its centre."""
    sizes = np.bincount(nearest, minlength=len(centres))
    sums = np.stack([np.bincount(nearest, weights=samples[:, axis], minlength=len(centres)) for axis in range(3)],
                    axis=1)
    return np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], centres)

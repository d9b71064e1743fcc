"""Training data: folders of colour photos held in memory, random crops, flips, colour augmentation."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..batch import IMAGE_SUFFIXES
from ..imageio import read_color


def find_images(folders: list[Path]) -> list[Path]:
    """Image files below the folders, recursively, in a stable order."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        candidates = [folder] if folder.is_file() else folder.rglob("*")
        found += [p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def load_all(paths: list[Path], min_side: int, workers: int = 2) -> list[np.ndarray]:
    """Decode every photo once; those smaller than a crop are dropped."""
    with ThreadPoolExecutor(workers) as pool:
        images = [image.rgb for image in pool.map(read_color, paths)]  # the codec's input policy
    return [im for im in images if min(im.shape[:2]) >= min_side]


def sample_crops(images: list[np.ndarray], batch: int, size: int, rng: np.random.Generator) -> Tensor:
    """A (batch,3,size,size) float batch in [0,1] of random crops with random flips/transposes."""
    crops = np.empty((batch, size, size, 3), dtype=np.uint8)
    for i in range(batch):
        image = images[rng.integers(len(images))]
        y = rng.integers(image.shape[0] - size + 1)
        x = rng.integers(image.shape[1] - size + 1)
        crop = image[y : y + size, x : x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        if rng.random() < 0.5:
            crop = crop.transpose(1, 0, 2)
        crops[i] = crop
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)


# YIQ: hue is a rotation of the (I, Q) plane, saturation its length.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def augment_colour(rgb: Tensor, generator: torch.Generator, probability: float = 0.5,
                   max_hue: float = math.pi, saturation: tuple[float, float] = (0.6, 1.4)) -> Tensor:
    """Random hue rotation and saturation scaling per sample: new, valid photos for a colour codec."""
    b = rgb.shape[0]
    apply = torch.rand(b, generator=generator) < probability
    angle = (torch.rand(b, generator=generator) * 2 - 1) * max_hue * apply
    scale = torch.where(apply, torch.empty(b).uniform_(*saturation, generator=generator), torch.ones(b))
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    chroma = torch.zeros(b, 3, 3)
    chroma[:, 0, 0] = 1.0
    chroma[:, 1, 1], chroma[:, 1, 2], chroma[:, 2, 1], chroma[:, 2, 2] = cos, -sin, sin, cos
    transform = _YIQ_TO_RGB @ chroma @ _RGB_TO_YIQ  # (b,3,3)
    return torch.einsum("bij,bjhw->bihw", transform, rgb).clamp_(0.0, 1.0)

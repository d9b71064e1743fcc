"""Stage train: the data, folders of colour photos held in memory, random crops, flips, colour augmentation."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from invgray_cli.colour import RGB_TO_YIQ, YIQ_TO_RGB
from invgray_cli.io.inputs import IMAGE_SUFFIXES, OWN_OUTPUTS
from invgray_cli.errors import InvgrayError
from invgray_cli.io.images import read_color


def find_images(folders: list[Path]) -> list[Path]:
    """Image files below the folders, recursively, in a stable order; invgray's own outputs found
    in folders are left out (a file named directly is always taken)."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            found.append(folder)
            continue
        found += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.lower().endswith(OWN_OUTPUTS)]
    return sorted(found)


def _read_or_none(path: Path) -> np.ndarray | None:
    try:
        return read_color(path).rgb  # the codec's input policy
    except InvgrayError:
        return None


def load_all(paths: list[Path], min_side: int, workers: int = 2,
             on_skip: Callable[[str], None] = lambda message: None) -> list[np.ndarray]:
    """Decode every photo once; those smaller than a crop are dropped, unreadable ones are
    skipped with a note through ``on_skip`` rather than ending the run."""
    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(_read_or_none, paths))
    for path, image in zip(paths, images):
        if image is None:
            on_skip(f"skipped {path}: not a readable image")
    return [im for im in images if im is not None and min(im.shape[:2]) >= min_side]


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
    transform = YIQ_TO_RGB @ chroma @ RGB_TO_YIQ  # (b,3,3): a rotation of YIQ's (I, Q) plane
    return torch.einsum("bij,bjhw->bihw", transform, rgb).clamp_(0.0, 1.0)


def disc_kernel(radius: float) -> Tensor:
    """Normalised flat disc (the defocus blur of a lens) of the given radius in pixels."""
    size = 2 * math.ceil(radius) + 1
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    disc = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius * radius + 1e-6).float()
    return disc / disc.sum()


def defocus(rgb: Tensor, radius: float) -> Tensor:
    """Disc-blur a (B,3,H,W) batch, mirrored at the border."""
    if radius < 0.5:
        return rgb
    kernel = disc_kernel(radius)
    pad = kernel.shape[-1] // 2
    padded = torch.nn.functional.pad(rgb, (pad, pad, pad, pad), mode="reflect")
    return torch.nn.functional.conv2d(padded, kernel.expand(rgb.shape[1], 1, *kernel.shape), groups=rgb.shape[1])


def scale_chroma(rgb: Tensor, factor: Tensor) -> Tensor:
    """Scale each sample's chroma (YIQ I and Q) by ``factor`` (B,), keeping its luma."""
    yiq = torch.einsum("ij,bjhw->bihw", RGB_TO_YIQ, rgb)
    yiq[:, 1:] *= factor.view(-1, 1, 1, 1)
    return torch.einsum("ij,bjhw->bihw", YIQ_TO_RGB, yiq).clamp_(0.0, 1.0)


def augment_smooth(rgb: Tensor, generator: torch.Generator, probability: float = 0.25,
                   max_radius: float = 7.0, chroma: tuple[float, float] = (1.0, 1.8)) -> Tensor:
    """Defocus some samples by a random disc and raise their chroma: smooth, saturated content
    (bokeh, skies, studio backdrops) where a hidden pattern has no texture to hide in."""
    out = rgb.clone()
    chosen = (torch.rand(rgb.shape[0], generator=generator) < probability).nonzero().flatten().tolist()
    for i in chosen:
        radius = float(torch.empty(()).uniform_(1.0, max_radius, generator=generator))
        boost = torch.empty(1).uniform_(*chroma, generator=generator)
        out[i : i + 1] = scale_chroma(defocus(rgb[i : i + 1], radius), boost)
    return out


def augment_scale(rgb: Tensor, generator: torch.Generator, probability: float,
                  max_factor: float = 3.0) -> Tensor:
    """Up-sample a window of some crops back to the crop's size, by a random factor from 1 to
    ``max_factor`` (bicubic): content as smooth per pixel as a camera-resolution photo, whose
    edges and textures span more pixels than those of the training photos."""
    out = rgb.clone()
    size = rgb.shape[-1]
    chosen = (torch.rand(rgb.shape[0], generator=generator) < probability).nonzero().flatten().tolist()
    for i in chosen:
        factor = float(torch.empty(()).uniform_(1.0, max_factor, generator=generator))
        side = max(4, round(size / factor))
        y, x = (int(torch.randint(0, size - side + 1, (1,), generator=generator)) for _ in range(2))
        window = rgb[i : i + 1, :, y : y + side, x : x + side]
        out[i : i + 1] = torch.nn.functional.interpolate(window, size=(size, size), mode="bicubic",
                                                         align_corners=False).clamp_(0.0, 1.0)
    return out


def synthetic_art(count: int, size: int, generator: torch.Generator, texture_probability: float = 0.5) -> Tensor:
    """(count,3,size,size) digital-art crops: a colour gradient at a random angle with a few
    anti-aliased flat discs or bands on it, and on some a fine periodic gray texture (hatching,
    halftone, pixel-art backgrounds) whose frequencies are the hidden carriers' own; the
    wallpapers and graphics photos never show."""

    def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
        return torch.empty(shape).uniform_(low, high, generator=generator)

    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    images = torch.empty(count, 3, size, size)
    for i in range(count):
        angle = float(uniform(1, high=2 * math.pi))
        ramp = (math.cos(angle) * xs + math.sin(angle) * ys) / size
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min() + 1e-6) * float(uniform(1, low=0.2, high=1.0))
        start, stop = uniform(3, 1, 1), uniform(3, 1, 1)
        image = start + (stop - start) * ramp
        for _ in range(int(torch.randint(0, 4, (1,), generator=generator))):
            colour = uniform(3, 1, 1)
            cy, cx, extent = (float(v) for v in uniform(3) * size)
            if float(uniform(1)) < 0.5:  # disc
                signed = extent / 2 - torch.sqrt((ys - cy) ** 2 + (xs - cx) ** 2)
            else:  # band across the crop
                theta = float(uniform(1, high=math.pi))
                signed = extent / 4 - ((xs - cx) * math.cos(theta) + (ys - cy) * math.sin(theta)).abs()
            softness = float(uniform(1, low=0.5, high=4.0))
            alpha = torch.sigmoid(signed / softness)
            image = image * (1 - alpha) + colour * alpha
        if texture_probability and float(uniform(1)) < texture_probability:
            theta = float(uniform(1, high=math.pi))
            period = float(uniform(1, low=2.0, high=8.0))
            wave = torch.sin(2 * math.pi * (xs * math.cos(theta) + ys * math.sin(theta)) / period)
            image = image + float(uniform(1, low=0.01, high=0.06)) * wave
        images[i] = image
    return images.clamp_(0.0, 1.0)

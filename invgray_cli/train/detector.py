"""Stage train: the code detector of one codec model (see ``models/detector.py``).

Each example is a crop of a training photo (some defocused and saturated, some synthetic digital
art, as the codec's own training sees them) turned into a gray in one of these ways:

- coded: encoded by the codec, then cropped anywhere (a gray cropped by a few pixels still carries
  the code);
- not coded: the plain luma; the coded gray re-saved as JPEG (quality 20-90) or resized (x0.4-2.0);
  the plain luma as JPEG; the coded gray blurred. The code is gone or broken in each.

Validation reads whole photos as ``decode`` does: coded, coded and cropped by 1-3 px, plain,
JPEG 75, a 50 % resize.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.nn import functional as F

from invgray_cli.codec.nets import Codec
from invgray_cli.colour import plain_gray
from invgray_cli.devices import reproducible, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.models.detector import CODE_THRESHOLD, CodeDetector, DetectorConfig, read_code
from invgray_cli.train.data import augment_smooth, find_images, load_all, sample_crops, synthetic_art
from invgray_cli.train.fit import CompanionTrainConfig, fit_best_validated
from invgray_cli.codec.encode import encode_array

KIND_SHARES = {"coded": 0.5, "plain": 0.15, "coded_jpeg": 0.15, "coded_resized": 0.1, "plain_jpeg": 0.05,
               "coded_blurred": 0.05}
SMOOTH_SHARE, ART_SHARE = 0.25, 0.15  # of the content, as in the codec's training
MIN_RESIZE = 0.4


@dataclass
class DetectorTrainConfig(CompanionTrainConfig):
    net: dict = field(default_factory=lambda: {"width": DetectorConfig().width})  # the period is the codec's


def _jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("L"))


def _resized(gray: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    height, width = gray.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    method = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS)[rng.integers(3)]
    return np.asarray(Image.fromarray(gray).resize(size, method))


def _content(images: list[np.ndarray], size: int, rng: np.random.Generator, generator: torch.Generator) -> np.ndarray:
    """One uint8 size x size x 3 crop: a photo, a defocused saturated photo, or synthetic art."""
    draw = rng.random()
    if draw < ART_SHARE:
        rgb = synthetic_art(1, size, generator)
    else:
        rgb = sample_crops(images, 1, size, rng)
        if draw < ART_SHARE + SMOOTH_SHARE:
            rgb = augment_smooth(rgb, generator, probability=1.0)
    return (rgb[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def make_example(codec: Codec, images: list[np.ndarray], crop: int, rng: np.random.Generator,
                 generator: torch.Generator) -> tuple[np.ndarray, bool]:
    """A crop x crop uint8 gray, and whether it carries the code."""
    period = codec.model.divisibility
    kind = rng.choice(list(KIND_SHARES), p=list(KIND_SHARES.values()))
    factor = 1.0
    if kind == "coded_resized":
        factor = float(np.exp(rng.uniform(math.log(MIN_RESIZE), math.log(2.0))))
        if abs(factor - 1.0) < 0.05:
            factor = 0.5
    size = math.ceil(crop / factor) + 2 * period
    rgb = _content(images, size, rng, generator)
    gray = encode_array(codec, rgb) if kind.startswith("coded") else plain_gray(rgb)
    if kind.endswith("jpeg"):
        gray = _jpeg(gray, int(rng.integers(20, 91)))
    elif kind == "coded_resized":
        gray = _resized(gray, factor, rng)
    elif kind == "coded_blurred":
        gray = np.asarray(Image.fromarray(gray).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.6, 2.0)))))
    y, x = (int(rng.integers(s - crop + 1)) for s in gray.shape)
    return np.ascontiguousarray(gray[y : y + crop, x : x + crop]), kind == "coded"


def validation_grays(codec: Codec, images: list[np.ndarray]) -> list[tuple[str, np.ndarray, bool]]:
    """(kind, gray, coded) for whole photos: coded, cropped by 1-3 px, plain, JPEG 75, halved."""
    examples = []
    for index, rgb in enumerate(images):
        coded = encode_array(codec, rgb)
        crop = 1 + index % 3
        rng = np.random.default_rng(index)
        examples += [("coded", coded, True), ("cropped", np.ascontiguousarray(coded[crop:, crop:]), True),
                     ("plain", plain_gray(rgb), False),
                     ("jpeg75", _jpeg(coded, 75), False), ("half", _resized(coded, 0.5, rng), False)]
    return examples


def validate_detector(detector: CodeDetector, examples: list[tuple[str, np.ndarray, bool]],
                      threshold: float = CODE_THRESHOLD) -> dict:
    """Per kind: the share read right (the code found in coded grays, not found in the others)."""
    right: dict[str, list[bool]] = {}
    confidence: dict[str, list[float]] = {}
    for kind, gray, coded in examples:
        reading = read_code(detector.eval(), gray)
        found = 0.0 if reading is None else reading.confidence  # too small to tell: not found
        right.setdefault(kind, []).append((found >= threshold) == coded)
        confidence.setdefault(kind, []).append(found)
    detector.train()
    result = {f"right_{k}": float(np.mean(v)) for k, v in right.items()}
    result.update({f"confidence_{k}": float(np.median(v)) for k, v in confidence.items()})
    result["score"] = float(np.mean(list(right and [result[f"right_{k}"] for k in right])))
    return result


def train_detector(cfg: DetectorTrainConfig, out: Path, log: Callable[[str], None] = print, log_every: int = 50) -> tuple[CodeDetector, Codec]:
    """Train (no resume: a run takes minutes) and return the best validated detector and its codec."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    reproducible(device)
    # the detector reads grays with the sync pattern taken out
    codec = Codec.load(cfg.model, cfg.weights, device="cpu", precision="fp32").with_sync_pattern(False)
    config = DetectorConfig(period=codec.model.divisibility, **cfg.net)
    detector = CodeDetector(config).to(device)
    optimizer = torch.optim.Adam(detector.parameters(), lr=cfg.lr)
    min_side = math.ceil(cfg.crop / MIN_RESIZE) + 2 * config.period
    images = load_all(find_images([Path(p) for p in cfg.data]), min_side, on_skip=log)
    if not images:
        raise InvgrayError(f"no training photos of at least {min_side} px on a side in {', '.join(cfg.data)}")
    val_images = load_all(find_images([Path(p) for p in cfg.val]), 16, on_skip=log) if cfg.val else []
    val_examples = validation_grays(codec, val_images)
    log(f"{len(images)} training photos, {len(val_examples)} validation grays; codec {codec.info.name}")

    def step_loss() -> torch.Tensor:
        examples = [make_example(codec, images, cfg.crop, rng, generator) for _ in range(cfg.batch)]
        grays = torch.from_numpy(np.stack([g for g, _ in examples])).float().div_(255.0)[:, None].to(device)
        labels = torch.tensor([float(coded) for _, coded in examples], device=device)
        return F.binary_cross_entropy_with_logits(detector.image_logit(grays), labels)

    validate = (lambda: validate_detector(detector, val_examples)) if val_examples else None
    history = fit_best_validated(detector, optimizer, cfg.steps, cfg.lr, step_loss, validate, cfg.val_every,
                                 log, log_every)
    torch.save({"model": detector.state_dict(), "history": history, "config": asdict(cfg)}, out)
    return detector.cpu().eval(), codec

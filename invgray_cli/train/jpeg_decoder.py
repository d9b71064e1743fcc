"""Stage train: the JPEG decoder of one codec model (see ``models/jpeg_decoder.py``).

Each example is a crop of a training photo (some defocused and saturated, some synthetic digital
art, as the codec's own training sees them), encoded by the codec as a whole image, given its block
code, and saved as a JPEG the way grays travel: written at quality 80-95, and half of them re-saved
at a lower quality (down to 70). The decoder learns the photo back from that JPEG's luma and block
code (and, for a decoder with ``fine_planes``, the codec's own decode of it). Validation does the
same to whole photos: written at quality 90, and that re-saved at 75.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from invgray_cli import metrics
from invgray_cli.codec.block_code import (MACROBLOCK, colour_from_block_code, decoder_inputs, embed_block_code, fine_planes,
                         read_block_code)
from invgray_cli.codec.nets import Codec, TiledJpegDecoder
from invgray_cli.devices import reproducible, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.io.jpeg import jpeg_saves
from invgray_cli.models.jpeg_decoder import JpegDecoder, JpegDecoderConfig
from invgray_cli.train.data import find_images, load_all
from invgray_cli.train.detector import _content
from invgray_cli.train.fit import CompanionTrainConfig, fit_best_validated, warm_start
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import fine_decode

WRITTEN_QUALITIES = (80, 95)  # the quality a gray is written at, drawn uniformly
RESAVE_SHARE, LOWEST_RESAVE = 0.5, 70
VALIDATION_JPEGS = ((90,), (90, 75))  # written at 90; written at 90 and re-saved at 75


@dataclass
class JpegDecoderTrainConfig(CompanionTrainConfig):
    steps: int = 3000
    batch: int = 16
    crop: int = 128  # a multiple of the macroblock
    net: dict = field(default_factory=lambda: JpegDecoderConfig().to_dict())
    init: str | None = None  # decoder weights (.safetensors or checkpoint) the run starts from (--init)


def random_qualities(rng: np.random.Generator) -> tuple[int, ...]:
    written = int(rng.integers(WRITTEN_QUALITIES[0], WRITTEN_QUALITIES[1] + 1))
    if rng.random() < RESAVE_SHARE:
        return written, int(rng.integers(LOWEST_RESAVE, written + 1))
    return (written,)


def make_example(codec: Codec, images: list[np.ndarray], crop: int, rng: np.random.Generator,
                 generator: torch.Generator, with_fine: bool) -> tuple[torch.Tensor, ...]:
    """(luma, coarse chroma, true RGB) of one crop, each (1,C,crop,crop); ``with_fine``: and the
    codec's decode of the received gray (1,3,crop,crop)."""
    rgb = _content(images, crop, rng, generator)
    gray = jpeg_saves(embed_block_code(encode_array(codec, rgb), rgb), random_qualities(rng))
    luma, chroma = decoder_inputs(gray, read_block_code(gray))
    target = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    return (luma, chroma, target) + ((fine_planes(fine_decode(codec, gray)),) if with_fine else ())


ValidationGray = tuple[str, np.ndarray, np.ndarray, np.ndarray | None]  # kind, received gray, photo, its fine decode


def validation_grays(codec: Codec, images: list[np.ndarray], with_fine: bool) -> list[ValidationGray]:
    """(kind, received gray, photo, codec's decode of the gray or None) for whole photos at each of
    VALIDATION_JPEGS."""
    examples = []
    for rgb in images:
        coded = embed_block_code(encode_array(codec, rgb), rgb)
        for qualities in VALIDATION_JPEGS:
            gray = jpeg_saves(coded, qualities)
            fine = fine_decode(codec, gray) if with_fine else None
            examples.append(("jpeg" + ">".join(map(str, qualities)), gray, rgb, fine))
    return examples


def validate_jpeg_decoder(decoder: JpegDecoder, examples: list[ValidationGray]) -> dict:
    """Mean restored PSNR per kind, beside the coarse colour alone on the gray; score: their mean."""
    decoder.eval()
    psnrs: dict[str, list[float]] = {}
    for kind, gray, rgb, fine in examples:
        reading = read_block_code(gray)
        psnrs.setdefault(kind, []).append(metrics.psnr(colour_from_block_code(gray, reading, TiledJpegDecoder(decoder), fine), rgb))
        psnrs.setdefault(kind + "_coarse", []).append(metrics.psnr(colour_from_block_code(gray, reading), rgb))
    decoder.train()
    result = {f"psnr_{k}": float(np.mean(np.minimum(v, 60.0))) for k, v in psnrs.items()}
    result["score"] = float(np.mean([result[f"psnr_{k}"] for k in psnrs if not k.endswith("_coarse")]))
    return result


def train_jpeg_decoder(cfg: JpegDecoderTrainConfig, out: Path, log: Callable[[str], None] = print,
                       log_every: int = 50) -> JpegDecoder:
    """Train (no resume) and return the best validated JPEG decoder; ``out`` keeps it with its history."""
    if cfg.crop % MACROBLOCK:
        raise InvgrayError(f"--crop must be a multiple of {MACROBLOCK} (the block code's macroblock)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    reproducible(device)
    codec = Codec.load(cfg.model, cfg.weights, device="cpu", precision="fp32")
    decoder = JpegDecoder(JpegDecoderConfig(**cfg.net))
    if cfg.init:
        warm_start(decoder, cfg.init)
        log(f"started from the weights in {cfg.init}")
    decoder = decoder.to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    images = load_all(find_images([Path(p) for p in cfg.data]), cfg.crop, on_skip=log)
    if not images:
        raise InvgrayError(f"no training photos of at least {cfg.crop} px on a side in {', '.join(cfg.data)}")
    val_images = load_all(find_images([Path(p) for p in cfg.val]), MACROBLOCK, on_skip=log) if cfg.val else []
    val_examples = validation_grays(codec, val_images, decoder.needs_fine)
    log(f"{len(images)} training photos, {len(val_examples)} validation grays; codec {codec.info.name}")

    def step_loss() -> torch.Tensor:
        luma, chroma, target, *fine = (torch.cat(parts).to(device) for parts in zip(
            *(make_example(codec, images, cfg.crop, rng, generator, decoder.needs_fine) for _ in range(cfg.batch))))
        return F.mse_loss(decoder(luma, chroma, *fine), target)

    validate = (lambda: validate_jpeg_decoder(decoder, val_examples)) if val_examples else None
    history = fit_best_validated(decoder, optimizer, cfg.steps, cfg.lr, step_loss, validate, cfg.val_every,
                                 log, log_every)
    torch.save({"model": decoder.state_dict(), "history": history, "config": asdict(cfg)}, out)
    return decoder.cpu().eval()

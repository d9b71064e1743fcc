"""Stage train: the colouriser, luma in, chroma out, with random single-pixel hints (Zhang et al. 2017).

Crops of the training photos with flips and transposes only: hue shifts would teach wrong
colours. Each crop gets no hint (a share of ``no_hint_share``) or a log-uniform number of hints
at uniformly random pixels with the crop's own colour, as `invgray eval --colorize --hints N`
samples them. A net with palette planes also gets, for a share ``palette_share`` of its crops, a
palette of 0-8 of the crop's dominant colours. Validation colourises whole photos at 0, 10 and
100 hints (and, with palette planes, with each photo's 5 dominant colours) and keeps the best mean.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from invgray_cli import metrics
from invgray_cli.colour import plain_gray, rgb_to_chroma, rgb_to_luma
from invgray_cli.devices import reproducible, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.colorize.dominant import dominant_colours
from invgray_cli.colorize.palette import DEFAULT_PALETTE_SIZE, MAX_PALETTE_COLOURS
from invgray_cli.models.colorizer import Colorizer, ColorizerConfig
from invgray_cli.train.data import find_images, load_all, sample_crops
from invgray_cli.train.fit import warm_start

VALIDATION_HINTS = (0, 10, 100)


@dataclass
class ColorizerTrainConfig:
    data: list[str]
    val: list[str] = field(default_factory=list)
    steps: int = 6000
    batch: int = 16
    crop: int = 128
    lr: float = 5e-4
    final_lr_fraction: float = 0.05
    seed: int = 0
    val_every: int = 1000
    checkpoint_every: int = 100
    no_hint_share: float = 0.3
    palette_share: float = 0.0  # crops given a palette of 0-MAX_PALETTE_COLOURS of their dominant colours
    max_hints: int = 64  # per crop: 100 hints on a 481x321 photo are ~11 on a 128^2 crop
    # chroma magnitude below the photo's costs this much extra: regression alone averages
    # ambiguous colours into browns (Zhang et al. 2016)
    colourfulness_weight: float = 0.1
    regression: str = "smooth-l1"  # or "mse": the PSNR's own loss, the conditional mean
    device: str = "auto"
    net: dict = field(default_factory=lambda: ColorizerConfig().to_dict())
    init: str | None = None  # weights (.safetensors or checkpoint) a fresh run starts from (--init)


def sample_hints(chroma: Tensor, config: ColorizerTrainConfig, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """Random single-pixel hints of each crop's true chroma: (B,2,H,W) chroma and (B,1,H,W) mask."""
    batch, _, height, width = chroma.shape
    mask = torch.zeros(batch, 1, height, width)
    for i in range(batch):
        if rng.random() < config.no_hint_share:
            continue
        count = int(math.exp(rng.uniform(0.0, math.log(config.max_hints + 1))))
        positions = torch.from_numpy(rng.choice(height * width, size=count, replace=False))
        mask[i, 0].view(-1)[positions] = 1.0
    return chroma * mask, mask


def sample_palettes(rgb: Tensor, share: float, rng: np.random.Generator) -> Tensor:
    """(B, MAX_PALETTE_COLOURS, 4) palettes (see ``palette_guess``): for a ``share`` of the crops
    (B,3,H,W) in [0, 1] a uniformly drawn 0-MAX_PALETTE_COLOURS of the crop's dominant colours, the
    others none."""
    from invgray_cli.colorize.session import palette_batch

    palettes = []
    for crop in rgb:
        count = int(rng.integers(0, MAX_PALETTE_COLOURS + 1)) if rng.random() < share else 0
        pixels = torch.round(crop.permute(1, 2, 0) * 255.0).to(torch.uint8).numpy()
        palettes.append(dominant_colours(pixels, count) if count else [])
    batch = palette_batch(palettes)
    return F.pad(batch, (0, 0, 0, MAX_PALETTE_COLOURS - batch.shape[1]))


REGRESSION_LOSSES = ("smooth-l1", "mse")


def colorizer_loss(predicted: Tensor, target: Tensor, colourfulness_weight: float,
                   regression_loss: str = "smooth-l1") -> tuple[Tensor, dict[str, float]]:
    """A regression on chroma (smooth L1, or MSE) plus a hinge on each image's chroma magnitude
    falling short of the truth."""
    if regression_loss == "mse":
        regression = F.mse_loss(predicted, target)
    elif regression_loss == "smooth-l1":
        regression = F.smooth_l1_loss(predicted, target, beta=0.02)
    else:
        raise InvgrayError(f"unknown regression loss '{regression_loss}' (one of {', '.join(REGRESSION_LOSSES)})")
    dullness = F.relu(_chroma_magnitude(target) - _chroma_magnitude(predicted)).mean()
    total = regression + colourfulness_weight * dullness
    return total, {"total": float(total.detach()), "regression": float(regression.detach()), "dull": float(dullness.detach())}


def _chroma_magnitude(chroma: Tensor) -> Tensor:
    """Each image's mean distance from gray in the chroma plane."""
    return chroma.norm(dim=1).mean(dim=(1, 2))


def validate_colorizer(model: Colorizer, images: list[np.ndarray], device: torch.device) -> dict:
    """Whole photos colourised from their luma at each of VALIDATION_HINTS (seeded hints) and, for
    a net with palette planes, with each photo's DEFAULT_PALETTE_SIZE dominant colours; the score
    is the mean PSNR of them all."""
    from invgray_cli.colorize.session import ColorizerCodec, colourfulness, measured_guidance

    codec = ColorizerCodec(model.eval(), "in-training", "", device)
    palette_sizes = (DEFAULT_PALETTE_SIZE,) if model.takes_palette else ()
    psnrs: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    for index, rgb in enumerate(images):
        gray = plain_gray(rgb)
        for guidance in measured_guidance(rgb, index, VALIDATION_HINTS, palette_sizes):
            out = codec.colorize_array(gray, guidance.hints, guidance.palette)
            psnrs.setdefault(guidance.key, []).append(metrics.psnr(out, rgb))
            ratios.setdefault(guidance.key, []).append(colourfulness(out) / max(colourfulness(rgb), 1e-6))
    result: dict = {}
    for key in psnrs:
        result[f"psnr_{key}"] = float(np.mean(psnrs[key]))
        result[f"colourfulness_{key}"] = float(np.mean(ratios[key]))
    model.train()
    result["score"] = float(np.mean([result[f"psnr_{key}"] for key in psnrs]))
    return result


def train_colorizer(cfg: ColorizerTrainConfig, out: Path, log: Callable[[str], None] = print,
                    log_every: int = 50) -> Colorizer:
    """Train (or resume from ``out``) and return the model; ``out.best`` holds the best validated one."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = resolve_device(cfg.device)
    reproducible(device)
    model = Colorizer(ColorizerConfig(**cfg.net)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best = out.with_name(out.stem + ".best" + out.suffix)
    out.parent.mkdir(parents=True, exist_ok=True)
    start, history = _resume_or_start(cfg, out, model, optimizer, rng, log)
    images = load_all(find_images([Path(p) for p in cfg.data]), cfg.crop, on_skip=log)
    if not images:
        raise InvgrayError(f"no training photos of at least {cfg.crop} px on a side in {', '.join(cfg.data)}")
    val_images = load_all(find_images([Path(p) for p in cfg.val]), 8, on_skip=log) if cfg.val else []
    log(f"{len(images)} training and {len(val_images)} validation photos")

    model.train()
    tick = time.perf_counter()
    for step in range(start, cfg.steps):
        lr = cfg.lr * (1.0 - step / cfg.steps * (1.0 - cfg.final_lr_fraction))
        for group in optimizer.param_groups:
            group["lr"] = lr
        terms = _colorizer_step(model, optimizer, images, cfg, rng, device)
        done = step + 1
        if done % log_every == 0:
            now = time.perf_counter()
            log(f"step {done}/{cfg.steps} loss {terms['total']:.4f} {cfg.regression} {terms['regression']:.4f} dull {terms['dull']:.4f} "
                f"lr {lr:.1e} {log_every * cfg.batch / (now - tick):.1f} img/s")
            tick = now
        if val_images and (done % cfg.val_every == 0 or done == cfg.steps):
            validation = validate_colorizer(model, val_images, device)
            history.append({"step": done, **validation})
            log(f"step {done}: " + " ".join(f"{k} {v:.3f}" for k, v in validation.items()))
            if validation["score"] >= max(h["score"] for h in history):
                torch.save({"model": model.state_dict(), "step": done, "validation": validation},
                           best.with_suffix(".tmp"))
                best.with_suffix(".tmp").replace(best)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            _save_checkpoint(out, model, optimizer, done, history, cfg, rng)
    return model.cpu().eval()


def _resume_or_start(cfg: ColorizerTrainConfig, out: Path, model: Colorizer, optimizer: torch.optim.Optimizer,
                     rng: np.random.Generator, log: Callable[[str], None]) -> tuple[int, list[dict]]:
    """Resume from the checkpoint ``out`` where there is one, else warm-start from ``--init`` where
    given; (the step to go on from, the validation history)."""
    if out.exists():
        state = torch.load(out, map_location="cpu", weights_only=False)
        if not same_net(state.get("config", {}).get("net"), cfg.net):
            raise InvgrayError(f"{out} is not a colouriser checkpoint with net {cfg.net}; pass the same --width "
                               "or a new --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed from {out} at step {state['step']}")
        return state["step"], state["history"]
    if cfg.init:
        warm_start(model, cfg.init)
        log(f"started from the weights in {cfg.init}")
    return 0, []


def same_net(saved: dict | None, wanted: dict) -> bool:
    """Whether a checkpoint's net config is ``wanted`` (fields added since it was saved at their defaults)."""
    return isinstance(saved, dict) and ColorizerConfig(**saved) == ColorizerConfig(**wanted)


def _colorizer_step(model: Colorizer, optimizer: torch.optim.Optimizer, images: list[np.ndarray],
                    cfg: ColorizerTrainConfig, rng: np.random.Generator, device: torch.device) -> dict[str, float]:
    """One optimiser step on a batch of crops, each colourised from its 8-bit luma and random hints."""
    rgb = sample_crops(images, cfg.batch, cfg.crop, rng)
    chroma = rgb_to_chroma(rgb)
    hints, mask = sample_hints(chroma, cfg, rng)
    palette = sample_palettes(rgb, cfg.palette_share, rng).to(device) if model.takes_palette else None
    luma = torch.round(rgb_to_luma(rgb) * 255.0) / 255.0  # the 8-bit gray a user has
    predicted = model(luma.to(device), hints.to(device), mask.to(device), palette)
    loss, terms = colorizer_loss(predicted, chroma.to(device), cfg.colourfulness_weight, cfg.regression)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return terms


def _save_checkpoint(out: Path, model: Colorizer, optimizer: torch.optim.Optimizer, step: int, history: list[dict],
                     cfg: ColorizerTrainConfig, rng: np.random.Generator) -> None:
    """The run at ``step`` into ``out`` (through a temporary file), resumable bit for bit."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "history": history,
             "config": asdict(cfg), "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
    torch.save(state, out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)

"""Stage train: the codec training loop. Two stages as the paper's Table 1, Adam with linear decay,
validation and checkpoints (``step``: one step's losses; ``validation``; ``checkpoints``; ``config``).
"""
from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from invgray_cli.codec.frames import orient
from invgray_cli.codec.sync_pattern import PERIOD, pattern_field
from invgray_cli.devices import exact_fp32, reproducible, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.models.net import InvertibleGray, NetConfig
from invgray_cli.train import losses
from invgray_cli.train.checkpoints import RunProgress, best_path, resume, save_best, save_checkpoint
from invgray_cli.train.config import TrainConfig
from invgray_cli.train.data import (augment_colour, augment_scale, augment_smooth, find_images, load_all, sample_crops,
                                    synthetic_art)
from invgray_cli.train.jpeg import BLOCK as JPEG_BLOCK
from invgray_cli.train.step import compute_losses
from invgray_cli.train.validation import is_best, validate_sets


@dataclass
class StepReport:
    step: int
    total_steps: int
    terms: dict[str, float]
    images_per_second: float
    lr: float
    stage: int
    validation: dict | None = None  # validate_sets' result on validation steps


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear decay from lr to lr * final_lr_fraction over the run (paper Sec. 6.2)."""
    progress = min(step / max(cfg.steps, 1), 1.0)
    return cfg.lr * (1.0 - progress * (1.0 - cfg.final_lr_fraction))


def parameter_groups(model: InvertibleGray, cfg: TrainConfig) -> list[dict]:
    """The linear carrier paths have weights of ~1e-2; Adam's ~lr-sized steps would wipe their
    analytic code out in a few steps, so they learn at a fraction of the trunks' rate."""
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    linear = [p for name, p in trained if "_linear" in name]
    trunks = [p for name, p in trained if "_linear" not in name]
    return [{"params": trunks, "lr_scale": 1.0}, {"params": linear, "lr_scale": cfg.linear_lr_scale}]


def stage_weights(step: int, cfg: TrainConfig) -> tuple[int, losses.LossWeights, str]:
    base = losses.LossWeights(**cfg.weights)
    if cfg.decoder_only:  # no gradient reaches the encoder, so the decoder can learn from the stored gray itself
        return 1, base, "stored"
    if step < cfg.steps - math.floor(cfg.steps * cfg.stage2_fraction + 1e-9):
        return 1, base, cfg.stage1_quantiser
    # Table 1, stage II: omega_1 0.5, omega_2 10 (relative to stage I's 1.0 / 0.0)
    stage2 = losses.LossWeights(**{**asdict(base), "conformity": 0.5 * base.conformity, "quantisation": 10.0})
    return 2, stage2, "round"


def train(cfg: TrainConfig, out: Path, on_report: Callable[[StepReport], None] = lambda r: None,
          log: Callable[[str], None] = print) -> InvertibleGray:
    """Train (or resume from `out` if it exists) and return the model; `out` holds the checkpoint."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    reproducible(device)
    exact_fp32(device)  # as validation's codec sets it, from the first step on

    model = _starting_net(cfg).to(device)
    edge_of = copy.deepcopy(model).eval() if cfg.edge_band else None  # the codec an edge decoder serves
    if cfg.decoder_only:
        model.encoder.requires_grad_(False)
        model.encoder_linear.requires_grad_(False)
    optimizer = torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.lr)
    start, history = 0, []
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        start, history = resume(out, cfg, model, optimizer, rng, generator, log)
    train_images, val_sets = _load_photos(cfg, model.divisibility, log)
    vgg = None
    if cfg.vgg19:
        from invgray_cli.train.vgg import VGGContrast

        vgg = VGGContrast(Path(cfg.vgg19)).to(device)

    use_amp = device.type == "cuda"  # bf16 autocast and channels_last only where they pay: on a GPU
    memory_format = torch.channels_last if use_amp else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    model.train()
    if start >= cfg.steps:
        log(f"{out} has already run {start} of {cfg.steps} steps; nothing to do (pass a larger --steps to go on)")
    progress = RunProgress(completed=start, saved=start)
    try:
        _run_steps(model, optimizer, cfg, out, progress, history, train_images, val_sets, rng, generator, vgg,
                   device, memory_format, on_report, edge_of)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM through the CLI
        # keep what was trained: the next run resumes from here instead of the last periodic checkpoint
        if progress.completed > progress.saved:
            if progress.rng_at_step_start is not None:  # stopped inside a step: its draws are not spent
                progress.restore_rng(rng, generator)
            save_checkpoint(out, model, optimizer, progress.completed, cfg, rng, generator, history)
            log(f"interrupted: saved step {progress.completed} to {out}")
        raise
    return model.cpu().eval()


def _starting_net(cfg: TrainConfig) -> InvertibleGray:
    """The net a fresh run starts from: the carrier code, or the ``--init`` weights (which an edge
    decoder needs: it serves that codec model)."""
    model = InvertibleGray(NetConfig(**cfg.net))
    if cfg.init:
        from invgray_cli.models.weights import load_weights

        start_from = load_weights(cfg.init).net
        if start_from.config != model.config:
            raise InvgrayError(f"--init {cfg.init} has net {start_from.config.to_dict()}, not {cfg.net}")
        model.load_state_dict(start_from.state_dict())
    elif cfg.edge_band:
        raise InvgrayError("an edge decoder (--edge-band) is trained from the codec model it serves: pass --init")
    return model


def _load_photos(cfg: TrainConfig, divisibility: int,
                 log: Callable[[str], None]) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """The training photos (at least a crop on a side) and the validation sets that hold any."""
    t0 = time.perf_counter()
    train_images = load_all(find_images([Path(p) for p in cfg.data]), cfg.crop, on_skip=log)
    if not train_images:
        raise InvgrayError(f"no training photos of at least {cfg.crop} px on a side in {', '.join(cfg.data)}")
    val_sets = {p: load_all(find_images([Path(p)]), divisibility, on_skip=log) for p in cfg.val}
    val_sets = {name: images for name, images in val_sets.items() if images}
    log(f"{len(train_images)} training and {sum(map(len, val_sets.values()))} validation photos loaded "
        f"in {time.perf_counter() - t0:.0f} s")
    return train_images, val_sets


def _run_steps(model: InvertibleGray, optimizer: torch.optim.Optimizer, cfg: TrainConfig, out: Path,
               progress: RunProgress, history: list[dict], train_images: list[np.ndarray],
               val_sets: dict[str, list[np.ndarray]], rng: np.random.Generator, generator: torch.Generator,
               vgg: torch.nn.Module | None, device: torch.device, memory_format: torch.memory_format,
               on_report: Callable[[StepReport], None], edge_of: InvertibleGray | None = None) -> None:
    use_amp = device.type == "cuda"
    tick = time.perf_counter()
    for step in range(progress.completed, cfg.steps):
        progress.step_starts(rng, generator)
        lr = learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        stage, weights, quantiser = stage_weights(step, cfg)
        rgb = draw_batch(cfg, train_images, rng, generator).to(device).contiguous(memory_format=memory_format)
        border_cut, qualities, edge_cut = draw_cuts(cfg, model.divisibility, rng)
        strengths = draw_strengths(cfg, rng, device)
        sync = draw_sync_patterns(cfg, rng, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss, terms = compute_losses(model, rgb, weights, quantiser, vgg, border_cut, qualities, edge_cut,
                                         cfg.edge_band, cfg.edge_all_cuts, strengths, sync)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        if torch.isfinite(grad_norm):  # a non-finite batch is skipped rather than poisoning Adam
            optimizer.step()
        done = step + 1
        progress.step_applied(done)
        validation = None
        if val_sets and (done % cfg.val_every == 0 or done == cfg.steps):
            validation = validate_sets(model, val_sets, cfg.val_jpeg, cut=cfg.cut_edges > 0, edge_of=edge_of,
                                       all_cuts=cfg.edge_all_cuts)
            history.append({"step": done, **validation})
            if is_best(validation, history[:-1], cfg):
                save_best(best_path(out), model, done, validation)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_checkpoint(out, model, optimizer, done, cfg, rng, generator, history)
            progress.saved = done
        now = time.perf_counter()
        report = StepReport(done, cfg.steps, terms, cfg.batch / max(now - tick, 1e-9), lr, stage, validation)
        tick = now
        on_report(report)


def draw_batch(cfg: TrainConfig, train_images: list[np.ndarray], rng: np.random.Generator,
               generator: torch.Generator) -> Tensor:
    """One step's crops (B,3,H,W) in [0,1] on the CPU: sampled, (some up-sampled,) colour- (and smooth-)
    augmented, some replaced by synthetic art."""
    rgb = sample_crops(train_images, cfg.batch, cfg.crop, rng)
    if cfg.upscale:
        rgb = augment_scale(rgb, generator, cfg.upscale, cfg.upscale_max)
    rgb = augment_colour(rgb, generator, probability=cfg.colour_augment)
    if cfg.smooth_augment:
        rgb = augment_smooth(rgb, generator, probability=cfg.smooth_augment)
    synthetic = round(cfg.batch * cfg.synthetic_fraction)
    if synthetic:
        rgb[:synthetic] = synthetic_art(synthetic, cfg.crop, generator, cfg.synthetic_texture)
    return rgb


def draw_cuts(cfg: TrainConfig, divisibility: int,
              rng: np.random.Generator) -> tuple[tuple[int, int], list[int | None] | None, tuple[int, ...]]:
    """One step's (border cut, JPEG qualities, edge cut), as ``compute_losses`` takes them: the partial
    border blocks of odd-sized photos, the JPEG each crop's gray goes through, and the lines cut off
    the gray's (top, left, bottom, right) after encoding."""
    border_cut = (0, 0)
    if cfg.border_emulation and rng.random() < cfg.border_emulation:
        border_cut = (int(rng.integers(divisibility)), int(rng.integers(divisibility)))
    qualities = jpeg_draws(cfg, rng)
    edge_cut = (0, 0, 0, 0)
    if cfg.cut_edges and rng.random() < cfg.cut_edges:
        most = 2 * divisibility if cfg.edge_all_cuts else divisibility  # lines cut per side, less than
        edge_cut = tuple(int(c) for c in rng.integers(most, size=4))
        sides = 4 if cfg.edge_all_cuts else 2  # the cut edges an edge decoder serves
        if cfg.edge_band and not any(edge_cut[:sides]):  # it learns from grays with such an edge cut
            side = int(rng.integers(sides))
            edge_cut = tuple(int(rng.integers(1, most)) if i == side else c for i, c in enumerate(edge_cut))
    return border_cut, qualities, edge_cut


def draw_strengths(cfg: TrainConfig, rng: np.random.Generator, device: torch.device) -> Tensor | None:
    """Each crop's pattern strength (1: as encoded; weaker for a ``cfg.weaken`` share, as the gray
    floor's guard makes it), or None when the run weakens none."""
    if not cfg.weaken:
        return None
    weakened = rng.random(cfg.batch) < cfg.weaken
    drawn = rng.uniform(cfg.weaken_min, 1.0, cfg.batch)
    return torch.tensor(np.where(weakened, drawn, 1.0), dtype=torch.float32, device=device)


def draw_sync_patterns(cfg: TrainConfig, rng: np.random.Generator, device: torch.device) -> Tensor | None:
    """(B,1,crop,crop) the sync pattern in gray units for a ``cfg.sync_aware`` share of the crops (zero
    for the rest), each at a random phase and orientation: the encoder cannot tell where it will lie,
    so it learns to leave room for it. None when the run adds none."""
    if not cfg.sync_aware:
        return None
    added = rng.random(cfg.batch) < cfg.sync_aware
    phases = rng.integers(PERIOD, size=(cfg.batch, 2))
    orientations = rng.integers(8, size=cfg.batch)
    side = cfg.crop + PERIOD  # a square the crop fits in whatever the orientation
    patterns = [orient(torch.from_numpy(pattern_field(side, side, (int(y), int(x)))), int(o))[: cfg.crop, : cfg.crop]
                if keep else torch.zeros(cfg.crop, cfg.crop, dtype=torch.int16)
                for keep, (y, x), o in zip(added, phases, orientations)]
    return (torch.stack(patterns)[:, None].float() / 255.0).to(device)


def jpeg_draws(cfg: TrainConfig, rng: np.random.Generator) -> list[int | None] | None:
    """A JPEG quality for each crop of the step (None: stored losslessly), or None without JPEG training."""
    if not cfg.jpeg_share:
        return None
    if cfg.crop % JPEG_BLOCK:
        raise InvgrayError(f"JPEG training needs a crop that is a multiple of {JPEG_BLOCK}, got {cfg.crop}")
    low, high = cfg.jpeg_qualities
    return [int(rng.integers(low, high + 1)) if rng.random() < cfg.jpeg_share else None for _ in range(cfg.batch)]

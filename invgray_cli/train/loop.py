"""The training loop: two stages as the paper's Table 1, Adam with linear decay, checkpoints."""
from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import EllipsisType
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from invgray_cli import metrics
from invgray_cli.devices import exact_fp32, reproducible, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.codec.frames import Frame, into_frame
from invgray_cli.models.net import EdgeDecoder, InvertibleGray, NetConfig, rgb_to_luma
from invgray_cli.codec.tiling import crop_padded
from invgray_cli.train import losses
from invgray_cli.train.jpeg import BLOCK as JPEG_BLOCK, jpeg_gray
from invgray_cli.train.data import augment_colour, augment_smooth, find_images, load_all, sample_crops, synthetic_art
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import decode_array
from invgray_cli.codec.edges import decode_in_frame


# An invisible gray: on every validation set a mean gray structure (SSIM structure term vs luma)
# of at least 0.98, the paper's level, and no image below 0.95.
GRAY_RULE = (0.98, 0.95)


@dataclass
class TrainConfig:
    data: list[str]
    val: list[str] = field(default_factory=list)
    steps: int = 7000
    batch: int = 16
    crop: int = 128
    lr: float = 3e-4
    final_lr_fraction: float = 0.01
    linear_lr_scale: float = 0.01
    # last part of the run with rounding in the loop + quantisation loss (paper Table 1, stage II);
    # off: with omega_1 halved it let the pattern grow, gray structure 0.981 -> 0.959 (weights/igray_s4w96.photos789_v1.md)
    stage2_fraction: float = 0.0
    stage1_quantiser: str = "noise"
    seed: int = 0
    val_every: int = 500
    checkpoint_every: int = 100
    max_grad_norm: float = 1.0  # clipping: one run at lr 1e-3 without it blew up after 2000 steps
    colour_augment: float = 0.5
    smooth_augment: float = 0.0  # share of crops defocused and made more saturated
    synthetic_fraction: float = 0.0  # share of each batch replaced by gradients and flat shapes
    synthetic_texture: float = 0.5  # share of those with a fine periodic texture on top
    border_emulation: float = 0.0  # share of steps whose crops end in partial 4-px blocks, as odd-sized photos
    jpeg_share: float = 0.0  # share of crops whose gray is decoded after a (differentiable) JPEG round trip
    jpeg_qualities: tuple[int, int] = (50, 95)  # their qualities, uniform in this range
    val_jpeg: int | None = None  # also validate after saving each gray as JPEG at this quality; selects on it
    cut_edges: float = 0.0  # share of steps whose gray is cut by 0-3 lines per side after encoding (a crop)
    decoder_only: bool = False  # train the decoder alone, the encoder (so every gray it made) kept as it is
    # an edge decoder (see Codec.decode_in_frame): every step cuts the top or left (any side with
    # edge_all_cuts), and only the lines within this many px of a cut edge are scored; 0: all lines
    edge_band: int = 0
    # ... and it serves every cut edge: each step cuts 0 to 2 blocks less a line off each side, at least one
    edge_all_cuts: bool = False
    device: str = "auto"  # as the codec's --device: auto, cpu, cuda, cuda:N
    init: str | None = None  # start from these .safetensors weights (fine-tuning) instead of the carrier code
    # the gray rule a kept checkpoint must meet on every validation set: mean and per-image minimum
    gray_mean_floor: float = GRAY_RULE[0]
    gray_image_floor: float = GRAY_RULE[1]
    net: dict = field(default_factory=lambda: NetConfig().to_dict())
    weights: dict = field(default_factory=lambda: asdict(losses.LossWeights()))
    vgg19: str | None = None


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


def remake_border(image: Tensor, cut: tuple[int, int]) -> Tensor:
    """Drop the last ``cut`` = (rows, columns) and mirror them back as the tiler pads: what the codec
    does to an image whose sides are not multiples of the block size."""
    height, width = image.shape[-2:]
    if not any(cut):
        return image
    return crop_padded(image[..., : height - cut[0], : width - cut[1]], 0, height, 0, width)


def received_gray(gray: Tensor, jpeg_qualities: list[int | None] | None) -> Tensor:
    """What decode reads: each crop's gray as stored, after a JPEG at its quality where one is given."""
    if not jpeg_qualities or not any(jpeg_qualities):
        return gray
    saved = jpeg_gray(gray, [q or 100 for q in jpeg_qualities])
    as_jpeg = torch.tensor([q is not None for q in jpeg_qualities], device=gray.device).view(-1, 1, 1, 1)
    return torch.where(as_jpeg, saved, gray)


def cut_after_encoding(gray: Tensor, cut: tuple[int, int, int, int],
                       divisibility: int) -> tuple[Tensor, tuple[int, int], tuple[EllipsisType, slice, slice]]:
    """A gray cut by ``cut`` = (top, left, bottom, right) lines after encoding (each less than two
    blocks), brought onto its grid as decode does: its top and left padded back to the grid
    (:func:`grid.into_frame`), its bottom and right mirrored to a whole block as the tiler pads.
    Returns it, the (rows, columns) of whole blocks the top and left cuts took (its first line is
    the encoded gray's line that far in), and the index of its lines that are real."""
    if not all(0 <= lines < 2 * divisibility for lines in cut):
        raise ValueError(f"cut {cut}: each side's lines must be less than two blocks of {divisibility}")
    top, left, bottom, right = cut
    height, width = gray.shape[-2:]
    kept = gray[..., top : height - bottom, left : width - right]
    framed = into_frame(kept, Frame(0, top % divisibility, left % divisibility), divisibility)
    rows, columns = framed.shape[-2:]
    whole = crop_padded(framed, 0, -(-rows // divisibility) * divisibility, 0, -(-columns // divisibility) * divisibility)
    return whole, (top - top % divisibility, left - left % divisibility), (..., slice(top % divisibility, rows),
                                                                          slice(left % divisibility, columns))


def near_cut_edges(size: tuple[int, int], cut: tuple[int, int, int, int], band: int,
                   scored: tuple[bool, bool, bool, bool] | None = None) -> Tensor:
    """(H,W) bool: the real lines (those ``cut`` = (top, left, bottom, right) lines from the sides
    leave) within ``band`` px of a ``scored`` edge (top, left, bottom, right; default: the top and
    the left when lines are cut there)."""
    top, left, bottom, right = cut
    height, width = size
    scored = scored if scored is not None else (top > 0, left > 0, False, False)
    rows = torch.arange(height)[:, None]
    columns = torch.arange(width)[None, :]
    real = (rows >= top) & (rows < height - bottom) & (columns >= left) & (columns < width - right)
    near = torch.zeros(height, width, dtype=torch.bool)
    for side_scored, lines_near in zip(scored, (rows < top + band, columns < left + band,
                                                rows >= height - bottom - band, columns >= width - right - band)):
        if side_scored:
            near = near | lines_near
    return real & near


def compute_losses(model: InvertibleGray, rgb: Tensor, weights: losses.LossWeights, quantiser: str,
                   vgg: torch.nn.Module | None = None, border_cut: tuple[int, int] = (0, 0),
                   jpeg_qualities: list[int | None] | None = None,
                   edge_cut: tuple[int, int, int, int] = (0, 0, 0, 0),
                   edge_band: int = 0, edge_all_cuts: bool = False) -> tuple[Tensor, dict[str, float]]:
    """The weighted loss and its terms. ``border_cut`` trains the partial edge blocks as the codec
    path makes them: the gray is stored at the image's size and its padding re-made at decode.
    ``jpeg_qualities`` (one per crop, None = lossless) put a JPEG round trip between the nets.
    ``edge_cut`` (top, left, bottom, right) cuts the stored gray as a crop after encoding would, and
    scores the colour of the lines left; with ``edge_band`` only those within that many px of a cut
    top or left edge (with ``edge_all_cuts`` of any cut edge)."""
    rgb = remake_border(rgb, border_cut)
    gray = model.encode(rgb)
    stored = received_gray(losses.quantise(gray, quantiser), jpeg_qualities)
    inside = (..., slice(0, rgb.shape[-2] - border_cut[0]), slice(0, rgb.shape[-1] - border_cut[1]))
    top, left, bottom, right = edge_cut
    cut = (top, left, max(bottom, border_cut[0]), max(right, border_cut[1]))
    target = rgb
    if any(edge_cut):  # its bottom and right lines are mirrored back: as border_cut's, or more
        stored, (shift_y, shift_x), inside = cut_after_encoding(stored, cut, model.divisibility)
        target = rgb[..., shift_y : shift_y + stored.shape[-2], shift_x : shift_x + stored.shape[-1]]
    else:
        stored = remake_border(stored, border_cut)
    restored = model.decode(stored)
    if edge_band and any(edge_cut):
        height, width = target.shape[-2:]
        beyond = (inside[1].start, inside[2].start, height - inside[1].stop, width - inside[2].stop)
        scored = tuple(lines > 0 for lines in edge_cut) if edge_all_cuts else None
        near = near_cut_edges((height, width), beyond, edge_band, scored).to(rgb.device)
        invertibility = ((restored - target) ** 2).mean(dim=1)[:, near].mean()
    else:
        invertibility = torch.mean((restored[inside] - target[inside]) ** 2)
    # the gray terms see the whole crop, its re-made border too (a few mirrored lines; the shipped
    # weights were trained so)
    luma = rgb_to_luma(rgb)
    lightness = losses.lightness_loss(gray, luma)
    contrast = vgg(gray, rgb) if vgg is not None else losses.contrast_loss(gray, luma)
    local_structure = losses.local_structure_loss(gray, luma)
    structure_windows = losses.structure_map(gray, luma)
    structure = structure_windows.mean(dim=(1, 2, 3))
    structure_hinge = torch.relu(weights.structure_target - structure).mean()
    window_hinge = losses.window_structure_hinge(structure_windows, weights.window_target)
    quantisation = losses.quantisation_loss(gray)
    conformity = (lightness + weights.contrast * contrast + weights.local_structure * local_structure
                  + weights.structure_hinge * structure_hinge + weights.window_hinge * window_hinge)
    total = weights.invertibility * invertibility + weights.conformity * conformity + weights.quantisation * quantisation
    terms = {"total": total, "mse": invertibility, "light": lightness, "contrast": contrast,
             "locvar": local_structure, "struct": structure.mean(), "window": window_hinge,
             "quant": quantisation}
    return total, {k: float(v.detach()) for k, v in terms.items()}


def _validation_codec(model: InvertibleGray, edge_of: InvertibleGray | None = None, all_cuts: bool = False):
    """The codec path around the nets being trained; with ``edge_of``, ``model`` is an edge decoder
    (of every cut edge with ``all_cuts``) and the codec is ``edge_of``'s with
    it. Nets are copied (the copies go to eval mode)."""
    from invgray_cli.codec.nets import Codec
    from invgray_cli.models.zoo import ModelInfo

    device = next(model.parameters()).device
    info = ModelInfo("in-training", "", model.divisibility, model.receptive_field)
    # the nets alone: the sync pattern (sync_pattern.py) is added and taken out exactly around them
    if edge_of is not None:
        codec = Codec.from_model(copy.deepcopy(edge_of), info, device=str(device))
        return replace(codec, edge_decoder=EdgeDecoder(copy.deepcopy(model).eval(), all_cuts)).with_sync_pattern(False)
    return Codec.from_model(copy.deepcopy(model), info, device=str(device)).with_sync_pattern(False)


# (top, left, bottom, right) lines cut off the validation grays in turn when training on cut edges;
# the second list for an edge decoder of every cut edge
VAL_CUTS = ((1, 0, 0, 0), (0, 2, 0, 0), (3, 3, 0, 0), (2, 1, 0, 0))
VAL_CUTS_ALL_SIDES = ((1, 0, 0, 0), (0, 0, 1, 2), (3, 3, 0, 0), (0, 0, 3, 3), (4, 0, 0, 5), (1, 1, 1, 1), (0, 6, 4, 0))


def _score(codec, images: list[np.ndarray], jpeg_quality: int | None = None, cut: bool = False) -> dict[str, float]:
    """``cut``: also the PSNR decoded in the true frame after cutting lines off the gray's edges."""
    from invgray_cli.io.images import jpeg_round_trip

    psnrs, structures, jpeg_psnrs, cut_psnrs = [], [], [], []
    for index, image in enumerate(images):
        gray = encode_array(codec, image)
        psnrs.append(metrics.psnr(decode_in_frame(codec, gray, Frame()), image))  # with an edge decoder's bands
        structures.append(metrics.gray_structure(gray, metrics.luma_bt601(image)))
        if jpeg_quality is not None:
            jpeg_psnrs.append(metrics.psnr(decode_array(codec, jpeg_round_trip(gray, jpeg_quality)), image))
        if cut:
            all_sides = codec.edge_decoder is not None and codec.edge_decoder.all_cuts
            cuts = VAL_CUTS_ALL_SIDES if all_sides else VAL_CUTS
            top, left, bottom, right = cuts[index % len(cuts)]
            kept = (slice(top, gray.shape[0] - bottom), slice(left, gray.shape[1] - right))
            d = codec.model.divisibility
            frame = Frame(0, top % d, left % d, (top > 0, left > 0, bottom > 0, right > 0))
            cut_psnrs.append(metrics.psnr(decode_in_frame(codec, np.ascontiguousarray(gray[kept]), frame), image[kept]))
    score = {"psnr": float(np.mean(psnrs)), "gray_structure": float(np.mean(structures)),
             "gray_structure_min": float(np.min(structures))}
    if jpeg_psnrs:
        score["psnr_jpeg"] = float(np.mean(jpeg_psnrs))
    if cut_psnrs:
        score["psnr_cut"] = float(np.mean(cut_psnrs))
    return score


def validate(model: InvertibleGray, images: list[np.ndarray], jpeg_quality: int | None = None) -> dict[str, float]:
    """The photos through the codec path as `invgray eval` runs it (whole photos at their own
    sizes, tiled, 8-bit gray, 8-bit colour): mean PSNR, mean and minimum gray structure; with
    ``jpeg_quality`` also the mean PSNR after saving each gray as a JPEG (``psnr_jpeg``)."""
    return _score(_validation_codec(model), images, jpeg_quality)


def validate_sets(model: InvertibleGray, sets: dict[str, list[np.ndarray]], jpeg_quality: int | None = None,
                  cut: bool = False, edge_of: InvertibleGray | None = None, all_cuts: bool = False) -> dict:
    """`validate` on each named set (one copy of the net for all); the top level holds the means
    over sets and the worst minimum, so no one kind of content (textured photos, smooth photos,
    digital art) outweighs the others."""
    codec = _validation_codec(model, edge_of, all_cuts)
    per_set = {name: _score(codec, images, jpeg_quality, cut) for name, images in sets.items()}
    result = {"psnr": float(np.mean([v["psnr"] for v in per_set.values()])),
              "gray_structure": float(np.mean([v["gray_structure"] for v in per_set.values()])),
              "gray_structure_min": float(min(v["gray_structure_min"] for v in per_set.values())),
              "sets": per_set}
    for key in ("psnr_jpeg", "psnr_cut"):
        if all(key in v for v in per_set.values()) and per_set:
            result[key] = float(np.mean([v[key] for v in per_set.values()]))
    return result


def meets_gray_rule(validation: dict, cfg: TrainConfig) -> bool:
    """Every validation set keeps its mean gray structure and its worst image above the floors.
    (Histories of older checkpoints have no per-set or per-image figures: their mean stands in.)"""
    per_set = validation.get("sets") or {"all": validation}
    return all(v["gray_structure"] >= cfg.gray_mean_floor
               and v.get("gray_structure_min", v["gray_structure"]) >= cfg.gray_image_floor
               for v in per_set.values())


def selection_score(validation: dict) -> float:
    """What a kept checkpoint maximises: PSNR after the validation JPEG when there is one; else the
    mean of the clean and the cut PSNR when there is a cut one; else PSNR."""
    if "psnr_jpeg" in validation:
        return validation["psnr_jpeg"]
    return (validation["psnr"] + validation["psnr_cut"]) / 2 if "psnr_cut" in validation else validation["psnr"]


def is_best(validation: dict, earlier: list[dict], cfg: TrainConfig) -> bool:
    """Highest validation score so far among results that meet the gray rule. With ``decoder_only``
    the grays are the --init model's, already judged, so the rule is not asked again."""
    def allowed(result: dict) -> bool:
        return cfg.decoder_only or meets_gray_rule(result, cfg)

    if not allowed(validation):
        return False
    # only like with like: a run resumed with --val-jpeg added must not weigh JPEG PSNR against lossless
    same_kind = [h for h in earlier if all((k in h) == (k in validation) for k in ("psnr_jpeg", "psnr_cut"))]
    eligible = [selection_score(h) for h in same_kind if allowed(h)]
    return not eligible or selection_score(validation) > max(eligible)


def best_path(out: Path) -> Path:
    return out.with_name(out.stem + ".best" + out.suffix)


def save_best(path: Path, model: InvertibleGray, step: int, validation: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"model": model.state_dict(), "net": model.config.to_dict(), "step": step,
                "validation": validation}, tmp)
    tmp.replace(path)


def save_checkpoint(path: Path, model: InvertibleGray, optimizer: torch.optim.Optimizer, step: int,
                    cfg: TrainConfig, rng: np.random.Generator, generator: torch.Generator,
                    history: list[dict]) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "config": asdict(cfg), "numpy_rng": rng.bit_generator.state,
             "torch_rng": generator.get_state(), "torch_global_rng": torch.get_rng_state(),
             "history": history}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)  # our own file: holds RNG states


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

    model = InvertibleGray(NetConfig(**cfg.net))
    if cfg.init:
        from invgray_cli.models.weights import load_weights

        start_from = load_weights(cfg.init).net
        if start_from.config != model.config:
            raise InvgrayError(f"--init {cfg.init} has net {start_from.config.to_dict()}, not {cfg.net}")
        model.load_state_dict(start_from.state_dict())
    elif cfg.edge_band:
        raise InvgrayError("an edge decoder (--edge-band) is trained from the codec model it serves: pass --init")
    model = model.to(device)
    edge_of = copy.deepcopy(model).eval() if cfg.edge_band else None  # the codec an edge decoder serves
    if cfg.decoder_only:
        model.encoder.requires_grad_(False)
        model.encoder_linear.requires_grad_(False)
    optimizer = torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.lr)
    start, history = 0, []
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        state = load_checkpoint(out)
        if state["config"]["net"] != cfg.net:
            raise InvgrayError(f"checkpoint {out} was trained with net {state['config']['net']}; "
                               "pass the same --scale/--width/--blocks or a new --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["step"], state.get("history", [])
        rng.bit_generator.state = state["numpy_rng"]
        generator.set_state(state["torch_rng"])
        torch.set_rng_state(state["torch_global_rng"])
        log(f"resumed from {out} at step {start}")

    t0 = time.perf_counter()
    train_images = load_all(find_images([Path(p) for p in cfg.data]), cfg.crop, on_skip=log)
    if not train_images:
        raise InvgrayError(f"no training photos of at least {cfg.crop} px on a side in {', '.join(cfg.data)}")
    val_sets = {p: load_all(find_images([Path(p)]), model.divisibility, on_skip=log) for p in cfg.val}
    val_sets = {name: images for name, images in val_sets.items() if images}
    log(f"{len(train_images)} training and {sum(map(len, val_sets.values()))} validation photos loaded "
        f"in {time.perf_counter() - t0:.0f} s")
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


@dataclass
class RunProgress:
    """Where a run stands, so an interrupt can save a checkpoint that resumes bit for bit."""

    completed: int  # optimiser steps applied to the model
    saved: int  # the step of the checkpoint on disk
    rng_at_step_start: tuple | None = None  # RNG states before the step in flight drew its batch

    def step_starts(self, rng: np.random.Generator, generator: torch.Generator) -> None:
        self.rng_at_step_start = (rng.bit_generator.state, generator.get_state(), torch.get_rng_state())

    def step_applied(self, step: int) -> None:
        self.completed, self.rng_at_step_start = step, None

    def restore_rng(self, rng: np.random.Generator, generator: torch.Generator) -> None:
        numpy_state, torch_state, global_state = self.rng_at_step_start
        rng.bit_generator.state = numpy_state
        generator.set_state(torch_state)
        torch.set_rng_state(global_state)


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
        rgb = sample_crops(train_images, cfg.batch, cfg.crop, rng)
        rgb = augment_colour(rgb, generator, probability=cfg.colour_augment)
        if cfg.smooth_augment:
            rgb = augment_smooth(rgb, generator, probability=cfg.smooth_augment)
        synthetic = round(cfg.batch * cfg.synthetic_fraction)
        if synthetic:
            rgb[:synthetic] = synthetic_art(synthetic, cfg.crop, generator, cfg.synthetic_texture)
        rgb = rgb.to(device).contiguous(memory_format=memory_format)
        border_cut = (0, 0)
        if cfg.border_emulation and rng.random() < cfg.border_emulation:
            border_cut = (int(rng.integers(model.divisibility)), int(rng.integers(model.divisibility)))
        qualities = jpeg_draws(cfg, rng)
        edge_cut = (0, 0, 0, 0)
        if cfg.cut_edges and rng.random() < cfg.cut_edges:
            most = 2 * model.divisibility if cfg.edge_all_cuts else model.divisibility  # lines cut per side, less than
            edge_cut = tuple(int(c) for c in rng.integers(most, size=4))
            sides = 4 if cfg.edge_all_cuts else 2  # the cut edges an edge decoder serves
            if cfg.edge_band and not any(edge_cut[:sides]):  # it learns from grays with such an edge cut
                side = int(rng.integers(sides))
                edge_cut = tuple(int(rng.integers(1, most)) if i == side else c for i, c in enumerate(edge_cut))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss, terms = compute_losses(model, rgb, weights, quantiser, vgg, border_cut, qualities, edge_cut,
                                         cfg.edge_band, cfg.edge_all_cuts)
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


def jpeg_draws(cfg: TrainConfig, rng: np.random.Generator) -> list[int | None] | None:
    """A JPEG quality for each crop of the step (None: stored losslessly), or None without JPEG training."""
    if not cfg.jpeg_share:
        return None
    if cfg.crop % JPEG_BLOCK:
        raise InvgrayError(f"JPEG training needs a crop that is a multiple of {JPEG_BLOCK}, got {cfg.crop}")
    low, high = cfg.jpeg_qualities
    return [int(rng.integers(low, high + 1)) if rng.random() < cfg.jpeg_share else None for _ in range(cfg.batch)]


def config_json(cfg: TrainConfig) -> str:
    return json.dumps(asdict(cfg), indent=2)

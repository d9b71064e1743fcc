"""Stage cli: ``invgray train``, the encoder and decoder trained on folders of photos, a shell over
``train.loop.train``; and the options every training command shares (:func:`training_options`).

The options come in small groups (the run, where it runs, the data, edge training, the objective),
each one frozen value, so the command reads as the TrainConfig it builds.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from invgray_cli.cli.options import Decorator, NetOptions, RenamedOptions, net_options, option_group

if TYPE_CHECKING:
    from torch import nn

    from invgray_cli.train.config import TrainConfig
    from invgray_cli.train.loop import StepReport


def log(message: str) -> None:
    """Training progress and notes go to stderr."""
    click.echo(message, err=True)


@dataclass(frozen=True)
class TrainRun:
    """What every training command is given: its photos, checkpoint and export, the run's length
    and size, and how often it validates and logs. ``crop`` None: the command takes no crops."""

    data_dirs: tuple[Path, ...]
    out: Path
    val_dirs: tuple[Path, ...]
    steps: int
    batch: int
    lr: float
    width: int
    seed: int
    val_every: int
    export_path: Path | None
    log_every: int
    crop: int | None = None

    def config_fields(self) -> dict[str, Any]:
        """The fields every training config takes from the run."""
        fields = {"data": [str(p) for p in self.data_dirs], "val": [str(p) for p in self.val_dirs],
                  "steps": self.steps, "batch": self.batch, "lr": self.lr, "seed": self.seed,
                  "val_every": self.val_every}
        return fields if self.crop is None else {**fields, "crop": self.crop}


def training_options(*, steps: int, batch: int, lr: float, width: int, width_help: str, val_help: str,
                     export_help: str, crop: int | None = None, crop_min: int = 16, val_every: int = 500,
                     log_every: int = 50, out_help: str = "Checkpoint file; an existing one is resumed.") -> Decorator:
    """The photos, checkpoint, export and run-size options of a training command, with its defaults,
    passed as ``run: TrainRun``."""
    crop_option = [click.option("--crop", default=crop, type=click.IntRange(min=crop_min), show_default=True,
                                help="Edge of the square crops trained on.")] if crop is not None else []
    return option_group("run", TrainRun, [
        click.argument("data_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)),
        click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help=out_help),
        click.option("--val", "val_dirs", multiple=True, type=click.Path(exists=True, path_type=Path), help=val_help),
        click.option("--steps", default=steps, type=click.IntRange(min=1), show_default=True,
                     help="Total optimiser steps of the run."),
        click.option("--batch", default=batch, type=click.IntRange(min=1), show_default=True),
        *crop_option,
        click.option("--lr", default=lr, type=click.FloatRange(min=0.0), show_default=True,
                     help="Learning rate at the start."),
        click.option("--width", default=width, type=click.IntRange(min=1), show_default=True, help=width_help),
        click.option("--seed", default=0, type=int, show_default=True),
        click.option("--val-every", default=val_every, type=click.IntRange(min=1), show_default=True,
                     help="Steps between validations."),
        click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help=export_help),
        click.option("--log-every", default=log_every, type=click.IntRange(min=1), show_default=True,
                     help="Steps between log lines on stderr (train: when stderr is no terminal)."),
    ])


def init_option(help_text: str) -> Decorator:
    """``--init FILE``: the weights a training run starts from (every trainer that can start from some)."""
    return click.option("--init", "init", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                        metavar="FILE", help=help_text)


def export_weights(net: nn.Module, path: Path, model_sha256: str | None = None) -> None:
    """Write ``net`` as shippable .safetensors weights (of the codec model ``model_sha256``) and say so."""
    from invgray_cli.models.weights import save_weights

    log(f"wrote {path} (sha256 {save_weights(net, path, model_sha256=model_sha256)})")


# ---------------------------------------------------------------- invgray train: its option groups


@dataclass(frozen=True)
class DataShaping:
    """What the crops of each step go through (TrainConfig's fields of the same names)."""

    smooth_augment: float
    synthetic_fraction: float
    synthetic_texture: float
    upscale: float
    upscale_max: float
    weaken: float
    weaken_min: float
    sync_aware: float
    border_emulation: float
    jpeg_share: float
    jpeg_qualities: tuple[int, int]


@dataclass(frozen=True)
class EdgeTraining:
    """An edge decoder for cropped grays: steps whose gray is cut, the decoder alone trained."""

    cut_edges: float
    decoder_only: bool
    edge_band: int
    edge_all_cuts: bool

    def config_fields(self) -> dict[str, Any]:
        if self.edge_all_cuts and not self.edge_band:
            raise click.BadParameter("needs --edge-band", param_hint="--edge-all-cuts")
        band = bool(self.edge_band)  # an edge band implies --decoder-only and --cut-edges 1
        return {"cut_edges": 1.0 if band else self.cut_edges, "decoder_only": self.decoder_only or band,
                "edge_band": self.edge_band, "edge_all_cuts": self.edge_all_cuts}


@dataclass(frozen=True)
class Objective:
    """What the run minimises and which checkpoint it keeps, and where it starts."""

    loss_terms: dict[str, float]
    stage2_fraction: float
    vgg19: str | None
    val_jpeg: int | None
    gray_mean_floor: float
    gray_image_floor: float
    init: Path | None


def parse_range(text: str) -> tuple[int, int]:
    """``"50-95"`` -> (50, 95): a JPEG quality range; a single number is a range of one."""
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise click.BadParameter(f"'{text}' is not LOW-HIGH (e.g. 50-95)", param_hint="--jpeg-quality") from None
    if not 1 <= bounds[0] <= bounds[1] <= 100:
        raise click.BadParameter(f"'{text}' must satisfy 1 <= LOW <= HIGH <= 100", param_hint="--jpeg-quality")
    return bounds


def parse_loss_terms(terms: tuple[str, ...]) -> dict[str, float]:
    """``("window_hinge=1", ...)`` -> LossWeights fields as a dict; unknown names are usage errors."""
    from dataclasses import fields

    from invgray_cli.train.losses import LossWeights

    known = {f.name for f in fields(LossWeights)}
    weights = asdict(LossWeights())
    for term in terms:
        name, _, value = term.partition("=")
        if name not in known:
            raise click.BadParameter(f"unknown loss term '{name}' (known: {', '.join(sorted(known))})", param_hint="--loss")
        try:
            weights[name] = float(value)
        except ValueError:
            raise click.BadParameter(f"'{term}' needs a number after '='", param_hint="--loss") from None
    return weights


def share(flag: str, default: float, help_text: str, dest: str | None = None) -> Decorator:
    """An option that is a share of the crops or steps, 0 to 1."""
    return click.option(flag, *([dest] if dest else []), default=default, show_default=True,
                        type=click.FloatRange(0.0, 1.0), help=help_text)


data_shaping_options = option_group("shaping", DataShaping, [
    share("--smooth-augment", 0.0, "Share of crops defocused by a random disc and made more saturated."),
    share("--synthetic", 0.0, "Share of each batch replaced by synthetic gradients and flat shapes.", "synthetic_fraction"),
    share("--synthetic-texture", 0.5, "Share of the synthetic crops with a fine periodic gray texture on top."),
    share("--upscale", 0.0, "Share of crops cut smaller and up-sampled to the crop size (smooth per pixel as a "
                            "camera-resolution photo)."),
    click.option("--upscale-max", default=3.0, show_default=True, type=click.FloatRange(1.0, 8.0),
                 help="Largest of those up-sampling factors (drawn uniformly from 1)."),
    share("--weaken", 0.0, "Share of crops decoded from a gray whose pattern is scaled down, as the gray floor "
                           "does, and scored against the photo's colours."),
    click.option("--weaken-min", default=0.5, show_default=True, type=click.FloatRange(0.0, 1.0),
                 help="Weakest of those pattern strengths (drawn uniformly up to 1)."),
    share("--sync-aware", 0.0, "Share of crops whose gray is judged with the sync pattern added, as encode "
                               "stores it (at a random phase and orientation)."),
    share("--border-emulation", 0.0,
          "Share of steps whose crops end in partial blocks, with the gray's padding re-made as decode does."),
    share("--jpeg-share", 0.0, "Share of crops whose gray goes through a differentiable JPEG before decoding."),
    click.option("--jpeg-quality", "jpeg_qualities", default="50-95", show_default=True,
                 callback=lambda c, p, v: parse_range(v), help="Range of those JPEG qualities, LOW-HIGH (drawn uniformly)."),
])
edge_training_options = option_group("edges", EdgeTraining, [
    share("--cut-edges", 0.0, "Share of steps whose gray is cut by 0-3 lines per side after encoding, as a crop "
                              "would (validation then also scores crops decoded on their grid)."),
    click.option("--decoder-only", is_flag=True,
                 help="Train the decoder alone; the encoder, and so every gray it makes, stays."),
    click.option("--edge-band", default=0, show_default=True, type=click.IntRange(0, 64), metavar="PX",
                 help="Train an edge decoder for cropped grays (implies --decoder-only and --cut-edges 1): every "
                      "step cuts the top or left (any side with --edge-all-cuts), and only the colour within PX "
                      "px of a cut edge is scored."),
    click.option("--edge-all-cuts", is_flag=True,
                 help="With --edge-band: the edge decoder serves every cut edge, by any number of lines (each "
                      "step cuts 0-7 lines off each side, at least one side; the bands of the cut ones are scored)."),
])
objective_options = option_group("objective", Objective, [
    click.option("--loss", "loss_terms", multiple=True, metavar="NAME=VALUE", callback=lambda c, p, v: parse_loss_terms(v),
                 help="Set a loss weight or target, e.g. window_hinge=1 (repeatable; see train/losses.py LossWeights)."),
    share("--stage2", 0.0, "Final share of the run with 8-bit rounding in the loop and the quantisation loss.",
          "stage2_fraction"),
    click.option("--vgg19", type=click.Path(exists=True, dir_okay=False), default=None,
                 help="Local VGG-19 state dict (torchvision layout) for the paper's conv4_4 contrast term."),
    click.option("--val-jpeg", default=None, type=click.IntRange(1, 100),
                 help="Also validate after saving each gray as a JPEG of this quality, and keep the best by that PSNR."),
    click.option("--rule-mean", "gray_mean_floor", default=0.98, show_default=True,
                 help="The gray rule of kept checkpoints: at least this mean gray structure on every --val set ..."),
    click.option("--rule-image", "gray_image_floor", default=0.95, show_default=True,
                 help="... and no --val image below this gray structure."),
    init_option("Start from these .safetensors weights (fine-tune) instead of the analytic carrier code."),
])


# ---------------------------------------------------------------- invgray train


@click.command("train", cls=RenamedOptions, renamed={"--jpeg": "--jpeg-share"})
@training_options(steps=7000, batch=16, crop=128, crop_min=1, lr=3e-4, width=96, width_help="Feature channels of both nets.",
                  val_help="Validation photos (whole images, 8-bit rounding), repeatable.",
                  export_help="When the run ends, write shippable .safetensors weights here (the best validated).")
@net_options(precision=False, tile=False)
@click.option("--blocks", default=4, type=click.IntRange(min=1), show_default=True, help="Residual blocks of each net.")
@click.option("--scale", default=4, type=click.IntRange(min=1), show_default=True,
              help="Pixel-unshuffle factor the nets work at.")
@data_shaping_options
@edge_training_options
@objective_options
def train_command(run: TrainRun, net: NetOptions, blocks: int, scale: int, shaping: DataShaping, edges: EdgeTraining,
                  objective: Objective) -> None:
    """Train the encoder/decoder on folders of colour photos (resumable from --out)."""
    from invgray_cli.train.config import config_json
    from invgray_cli.train.loop import train

    if run.crop is not None and run.crop % scale:
        raise click.BadParameter(f"{run.crop} is not a multiple of --scale {scale}", param_hint="--crop")
    cfg = train_config(run, net, blocks, scale, shaping, edges, objective)
    net.use_threads()
    click.echo(config_json(cfg), err=True)
    with TrainLog(run.steps, run.log_every) as on_report:
        model = train(cfg, run.out, on_report=on_report, log=log)
    if run.export_path is not None:
        export_best(model, cfg, run)


def train_config(run: TrainRun, net: NetOptions, blocks: int, scale: int, shaping: DataShaping, edges: EdgeTraining,
                 objective: Objective) -> TrainConfig:
    from invgray_cli.models.net import NetConfig
    from invgray_cli.train.config import TrainConfig

    shape = NetConfig(scale=scale, width=run.width, encoder_blocks=blocks, decoder_blocks=blocks).to_dict()
    goal = asdict(objective)
    return TrainConfig(**run.config_fields(), net=shape, device=net.device or "auto", **asdict(shaping),
                       **edges.config_fields(), weights=goal.pop("loss_terms"),
                       **{**goal, "init": objective.init and str(objective.init)})


def export_best(model: nn.Module, cfg: TrainConfig, run: TrainRun) -> None:
    """Export the best validated weights (those that met the gray rule), else the last ones."""
    import torch

    from invgray_cli.train.checkpoints import best_path

    best = best_path(run.out)
    if best.exists():
        state = torch.load(best, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        log(f"exporting the best validated weights: step {state['step']}, {state['validation']}")
    elif run.val_dirs:
        log(f"warning: no validation met the gray rule (mean >= {cfg.gray_mean_floor}, every image >= "
            f"{cfg.gray_image_floor} on each --val set); exporting the last weights")
    export_weights(model, run.export_path)


class TrainLog:
    """What `invgray train` shows of a run: on a terminal a progress bar, with each validation logged
    above it; otherwise a log line every ``log_every`` steps. Used as ``with TrainLog(...) as on_report``."""

    def __init__(self, steps: int, log_every: int) -> None:
        self.log_every, self.last_val, self.progress = log_every, "", None
        if sys.stderr.isatty():
            from rich.console import Console

            self.progress = progress_bar(Console(stderr=True))
            self.task = self.progress.add_task("train", total=steps, terms="")

    def __enter__(self) -> TrainLog:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, report: StepReport) -> None:
        if report.validation:
            v = report.validation
            cut = f" cut {v['psnr_cut']:.2f}" if "psnr_cut" in v else ""
            self.last_val = f"val psnr {v['psnr']:.2f}{cut} struct {v['gray_structure']:.4f} min {v['gray_structure_min']:.3f}"
            per_set = "; ".join(f"{name} {s['psnr']:.2f} dB{extra_scores(s)} {s['gray_structure']:.4f} "
                                f"(min {s['gray_structure_min']:.3f})" for name, s in v.get("sets", {}).items())
            log(f"step {report.step}: {self.last_val} | {per_set}")
        if self.progress is not None:  # the bar's line stays short (80 columns); validations are logged above it
            self.progress.update(self.task, completed=report.step, terms=brief_terms(report))
        elif report.step % self.log_every == 0:
            t = report.terms
            log(f"step {report.step}/{report.total_steps} stage {report.stage} mse {t['mse']:.2e} "
                f"struct {t['struct']:.4f} locvar {t['locvar']:.2e} contrast {t['contrast']:.2e} quant {t['quant']:.2e} "
                f"lr {report.lr:.1e} {report.images_per_second:.1f} img/s {self.last_val}")


def extra_scores(score: dict) -> str:
    """The JPEG and cut PSNR of a set's validation, where there are."""
    jpeg = f" (JPEG {score['psnr_jpeg']:.2f})" if "psnr_jpeg" in score else ""
    return jpeg + (f" (cut {score['psnr_cut']:.2f})" if "psnr_cut" in score else "")


def brief_terms(report: StepReport) -> str:
    """What the progress bar shows beside itself: the loss and the gray structure of the batch."""
    t = report.terms
    return f"mse {t['mse']:.1e} struct {t['struct']:.3f} {report.images_per_second:.0f} img/s"


def progress_bar(console: Any) -> Any:
    """The training bar, sized to fit one 80-column line with `brief_terms`."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(bar_width=20),
                    TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                    TextColumn("{task.fields[terms]}"), console=console)

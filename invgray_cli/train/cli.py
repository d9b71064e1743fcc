"""`invgray train`: the click front of the training loop."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from invgray_cli.cli.options import device_option, model_option


def log(message: str) -> None:
    """Training progress and notes go to stderr."""
    click.echo(message, err=True)


@click.command("train")
@click.argument("data_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint file; an existing one is resumed.")
@click.option("--val", "val_dirs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Validation photos (whole images, 8-bit rounding), repeatable.")
@click.option("--steps", default=7000, type=click.IntRange(min=1), show_default=True, help="Total optimiser steps of the run.")
@click.option("--batch", default=16, type=click.IntRange(min=1), show_default=True)
@click.option("--crop", default=128, type=click.IntRange(min=1), show_default=True)
@click.option("--lr", default=3e-4, show_default=True)
@click.option("--width", default=96, show_default=True, help="Feature channels of both nets.")
@click.option("--blocks", default=4, show_default=True, help="Residual blocks of each net.")
@click.option("--scale", default=4, show_default=True, help="Pixel-unshuffle factor the nets work at.")
@click.option("--seed", default=0, show_default=True)
@click.option("--val-every", default=500, show_default=True)
@click.option("--vgg19", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local VGG-19 state dict (torchvision layout) for the paper's conv4_4 contrast term.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch.")
@device_option
@click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="When the run ends, write shippable .safetensors weights here.")
@click.option("--log-every", default=50, show_default=True, help="Log line interval when stderr is no terminal.")
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Start from these .safetensors weights (fine-tune) instead of the analytic carrier code.")
@click.option("--loss", "loss_terms", multiple=True, metavar="NAME=VALUE",
              help="Set a loss weight or target, e.g. window_hinge=1 (repeatable; see train/losses.py LossWeights).")
@click.option("--stage2", "stage2_fraction", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Final share of the run with 8-bit rounding in the loop and the quantisation loss.")
@click.option("--smooth-augment", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of crops defocused by a random disc and made more saturated.")
@click.option("--synthetic", "synthetic_fraction", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of each batch replaced by synthetic gradients and flat shapes.")
@click.option("--synthetic-texture", default=0.5, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of the synthetic crops with a fine periodic gray texture on top.")
@click.option("--border-emulation", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of steps whose crops end in partial blocks, with the gray's padding re-made as decode does.")
@click.option("--jpeg", "jpeg_share", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of crops whose gray goes through a differentiable JPEG before decoding.")
@click.option("--jpeg-quality", "jpeg_qualities", default="50-95", show_default=True, callback=lambda c, p, v: parse_range(v),
              help="Range of those JPEG qualities, LOW-HIGH (drawn uniformly).")
@click.option("--val-jpeg", default=None, type=click.IntRange(1, 100),
              help="Also validate after saving each gray as a JPEG of this quality, and keep the best by that PSNR.")
@click.option("--cut-edges", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of steps whose gray is cut by 0-3 lines per side after encoding, as a crop would "
                   "(validation then also scores crops decoded on their grid).")
@click.option("--decoder-only", is_flag=True, help="Train the decoder alone; the encoder, and so every gray it makes, stays.")
@click.option("--edge-band", default=0, show_default=True, type=click.IntRange(0, 64), metavar="PX",
              help="Train an edge decoder for cropped grays (implies --decoder-only and --cut-edges 1): every "
                   "step cuts the top or left (any side with --edge-all-cuts), and only the colour within PX "
                   "px of a cut edge is scored.")
@click.option("--edge-all-cuts", is_flag=True,
              help="With --edge-band: the edge decoder serves every cut edge, by any number of lines (each "
                   "step cuts 0-7 lines off each side, at least one side; the bands of the cut ones are scored).")
@click.option("--rule-mean", "gray_mean_floor", default=0.98, show_default=True,
              help="The gray rule of kept checkpoints: at least this mean gray structure on every --val set ...")
@click.option("--rule-image", "gray_image_floor", default=0.95, show_default=True,
              help="... and no --val image below this gray structure.")
def train_command(data_dirs: tuple[Path, ...], out: Path, val_dirs: tuple[Path, ...], steps: int, batch: int,
                  crop: int, lr: float, width: int, blocks: int, scale: int, seed: int, val_every: int, vgg19: str | None,
                  threads: int | None, export_path: Path | None, log_every: int, init: str | None,
                  loss_terms: tuple[str, ...], stage2_fraction: float, smooth_augment: float,
                  synthetic_fraction: float, gray_mean_floor: float, gray_image_floor: float,
                  border_emulation: float, synthetic_texture: float, device: str, jpeg_share: float,
                  jpeg_qualities: tuple[int, int], val_jpeg: int | None, cut_edges: float,
                  decoder_only: bool, edge_band: int, edge_all_cuts: bool) -> None:
    """Train the encoder/decoder on folders of colour photos (resumable from --out)."""
    import torch

    from invgray_cli.models.net import NetConfig
    from invgray_cli.train.loop import StepReport, TrainConfig, config_json, train

    if edge_all_cuts and not edge_band:
        raise click.BadParameter("needs --edge-band", param_hint="--edge-all-cuts")
    if crop % scale:
        raise click.BadParameter(f"{crop} is not a multiple of --scale {scale}", param_hint="--crop")
    if threads:
        torch.set_num_threads(threads)
    net = NetConfig(scale=scale, width=width, encoder_blocks=blocks, decoder_blocks=blocks).to_dict()
    cfg = TrainConfig(data=[str(p) for p in data_dirs], val=[str(p) for p in val_dirs], steps=steps, batch=batch,
                      crop=crop, lr=lr, seed=seed, val_every=val_every, net=net, vgg19=vgg19, init=init,
                      weights=parse_loss_terms(loss_terms), stage2_fraction=stage2_fraction,
                      smooth_augment=smooth_augment, synthetic_fraction=synthetic_fraction,
                      gray_mean_floor=gray_mean_floor, gray_image_floor=gray_image_floor,
                      border_emulation=border_emulation, synthetic_texture=synthetic_texture, device=device,
                      jpeg_share=jpeg_share, jpeg_qualities=jpeg_qualities, val_jpeg=val_jpeg,
                      cut_edges=1.0 if edge_band else cut_edges,
                      decoder_only=decoder_only or bool(edge_band), edge_band=edge_band,
                      edge_all_cuts=edge_all_cuts)
    interactive = sys.stderr.isatty()
    click.echo(config_json(cfg), err=True)

    if interactive:
        from rich.console import Console

        progress = progress_bar(Console(stderr=True))
        task = progress.add_task("train", total=steps, terms="")
        progress.start()
    last_val = ""

    def on_report(report: StepReport) -> None:
        nonlocal last_val
        if report.validation:
            v = report.validation
            cut = f" cut {v['psnr_cut']:.2f}" if "psnr_cut" in v else ""
            last_val = f"val psnr {v['psnr']:.2f}{cut} struct {v['gray_structure']:.4f} min {v['gray_structure_min']:.3f}"
            per_set = "; ".join(f"{name} {s['psnr']:.2f} dB{_extra_part(s)} {s['gray_structure']:.4f} "
                                f"(min {s['gray_structure_min']:.3f})" for name, s in v.get("sets", {}).items())
            log(f"step {report.step}: {last_val} | {per_set}")
        t = report.terms
        terms = (f"stage {report.stage} mse {t['mse']:.2e} struct {t['struct']:.4f} locvar {t['locvar']:.2e} "
                 f"contrast {t['contrast']:.2e} quant {t['quant']:.2e} lr {report.lr:.1e} "
                 f"{report.images_per_second:.1f} img/s {last_val}")
        if interactive:  # the bar's line stays short (80 columns); validations are logged above it
            progress.update(task, completed=report.step, terms=brief_terms(report))
        elif report.step % log_every == 0:
            log(f"step {report.step}/{report.total_steps} {terms}")

    try:
        model = train(cfg, out, on_report=on_report, log=log)
    finally:
        if interactive:
            progress.stop()
    if export_path is not None:
        from invgray_cli.models.weights import save_weights
        from invgray_cli.train.loop import best_path

        best = best_path(out)
        if best.exists():  # the best validated weights, not merely the last ones
            state = torch.load(best, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            log(f"exporting the best validated weights: step {state['step']}, {state['validation']}")
        elif val_dirs:
            log(f"warning: no validation met the gray rule (mean >= {gray_mean_floor}, every image >= "
                f"{gray_image_floor} on each --val set); exporting the last weights")

        digest = save_weights(model, export_path)
        log(f"wrote {export_path} (sha256 {digest})")


def _extra_part(score: dict) -> str:
    """The JPEG and cut PSNR of a set's validation, where there are."""
    jpeg = f" (JPEG {score['psnr_jpeg']:.2f})" if "psnr_jpeg" in score else ""
    return jpeg + (f" (cut {score['psnr_cut']:.2f})" if "psnr_cut" in score else "")


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


def parse_loss_terms(terms: tuple[str, ...]) -> dict:
    """``("window_hinge=1", ...)`` -> LossWeights fields as a dict; unknown names are usage errors."""
    from dataclasses import asdict, fields

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


def brief_terms(report) -> str:
    """What the progress bar shows beside itself: the loss and the gray structure of the batch."""
    t = report.terms
    return f"mse {t['mse']:.1e} struct {t['struct']:.3f} {report.images_per_second:.0f} img/s"


def progress_bar(console):
    """The training bar, sized to fit one 80-column line with `brief_terms`."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(bar_width=20),
                    TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                    TextColumn("{task.fields[terms]}"), console=console)


@click.command("train-colorizer")
@click.argument("data_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint file; an existing one is resumed.")
@click.option("--val", "val_dirs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Validation photos (colourised whole at 0, 10 and 100 hints), repeatable.")
@click.option("--steps", default=6000, type=click.IntRange(min=1), show_default=True)
@click.option("--batch", default=16, type=click.IntRange(min=1), show_default=True)
@click.option("--crop", default=128, type=click.IntRange(min=16), show_default=True)
@click.option("--lr", default=5e-4, show_default=True)
@click.option("--width", default=32, show_default=True, help="Channels at full resolution (doubled per level).")
@click.option("--colourfulness", "colourfulness_weight", default=0.1, show_default=True,
              help="Weight of the hinge on chroma magnitude below the photo's.")
@click.option("--loss", "regression", default="smooth-l1", show_default=True, type=click.Choice(["smooth-l1", "mse"]),
              help="Regression on chroma: smooth L1 (a median: bolder colours) or MSE (the mean: what PSNR rewards).")
@click.option("--seed", default=0, show_default=True)
@click.option("--val-every", default=1000, show_default=True)
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start a new run from these colouriser weights (new input planes start at zero).")
@click.option("--threads", type=int, default=None, help="CPU threads for torch.")
@device_option
@click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="When the run ends, write the best validated (else the last) weights here as .safetensors.")
@click.option("--log-every", default=50, show_default=True)
def train_colorizer_command(data_dirs: tuple[Path, ...], out: Path, val_dirs: tuple[Path, ...], steps: int, batch: int,
                            crop: int, lr: float, width: int, colourfulness_weight: float, regression: str, seed: int,
                            val_every: int, init_from: Path | None, threads: int | None, device: str, export_path: Path | None, log_every: int) -> None:
    """Train the colouriser for grays without a hidden code (resumable from --out)."""
    import torch

    from invgray_cli.models.colorizer import ColorizerConfig
    from invgray_cli.models.weights import save_weights
    from invgray_cli.train.colorizer import ColorizerTrainConfig, train_colorizer

    if threads:
        torch.set_num_threads(threads)
    cfg = ColorizerTrainConfig(data=[str(p) for p in data_dirs], val=[str(p) for p in val_dirs], steps=steps,
                               batch=batch, crop=crop, lr=lr, seed=seed, val_every=val_every, device=device,
                               colourfulness_weight=colourfulness_weight, regression=regression,
                               init_from=init_from and str(init_from),
                               net=ColorizerConfig(width=width).to_dict())

    model = train_colorizer(cfg, out, log=log, log_every=log_every)
    if export_path is not None:
        best = out.with_name(out.stem + ".best" + out.suffix)
        if best.exists():
            state = torch.load(best, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            log(f"exporting the best validated weights: step {state['step']}")
        log(f"wrote {export_path} (sha256 {save_weights(model, export_path)})")


def companion_training_options(name: str, val_help: str, steps: int, batch: int, crop: int, width: int,
                               width_help: str, export_help: str):
    """The options of a companion net's training command (``invgray NAME``): its data, the codec
    model it serves, the run's size, and where the best validated net is written."""
    options = [
        click.command(name),
        click.argument("data_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)),
        click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Checkpoint file of the run (with its validation history)."),
        click.option("--val", "val_dirs", multiple=True, type=click.Path(exists=True, path_type=Path), help=val_help),
        model_option("The codec model it serves (default: the default model)."),
        click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Or a codec weights file."),
        click.option("--steps", default=steps, type=click.IntRange(min=1), show_default=True),
        click.option("--batch", default=batch, type=click.IntRange(min=1), show_default=True),
        click.option("--crop", default=crop, type=click.IntRange(min=16), show_default=True),
        click.option("--lr", default=1e-3, show_default=True),
        click.option("--width", default=width, show_default=True, help=width_help),
        click.option("--seed", default=0, show_default=True),
        click.option("--val-every", default=500, show_default=True),
        click.option("--threads", type=int, default=None, help="CPU threads for torch."),
        device_option,
        click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help=export_help),
        click.option("--log-every", default=50, show_default=True),
    ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@companion_training_options("train-detector", "Validation photos (coded, cropped, plain, JPEG 75, halved), repeatable.",
                            steps=1500, batch=32, crop=96, width=32, width_help="Channels of the detector.",
                            export_help="Write the best validated detector here as .safetensors.")
def train_detector_command(data_dirs: tuple[Path, ...], out: Path, val_dirs: tuple[Path, ...], model_name: str | None,
                           weights: str | None, steps: int, batch: int, crop: int, lr: float, width: int, seed: int,
                           val_every: int, threads: int | None, device: str, export_path: Path | None,
                           log_every: int) -> None:
    """Train the detector that tells decode whether a gray carries its model's colour code."""
    import torch

    from invgray_cli.models.weights import save_weights
    from invgray_cli.train.detector import DetectorTrainConfig, train_detector

    if threads:
        torch.set_num_threads(threads)
    cfg = DetectorTrainConfig(data=[str(p) for p in data_dirs], val=[str(p) for p in val_dirs], model=model_name,
                              weights=weights, steps=steps, batch=batch, crop=crop, lr=lr, seed=seed,
                              val_every=val_every, device=device, net={"width": width})

    out.parent.mkdir(parents=True, exist_ok=True)
    detector, codec = train_detector(cfg, out, log=log, log_every=log_every)
    if export_path is not None:
        log(f"wrote {export_path} (sha256 {save_weights(detector, export_path, model_sha256=codec.info.sha256)})")


@click.command("train-frames")
@click.argument("data_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint file of the run (with its validation history).")
@click.option("--val", "val_dirs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Validation photos (one turned-and-cropped and one as-encoded case each), repeatable.")
@model_option("The codec model whose frames it judges (default: the default model).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None, help="Or a codec weights file.")
@click.option("--cases-per-photo", default=1, type=click.IntRange(min=1), show_default=True)
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keep the training cases here (.npz) and reuse them on the next run.")
@click.option("--steps", default=2500, type=click.IntRange(min=1), show_default=True)
@click.option("--batch", default=8, type=click.IntRange(min=1), show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--width", default=32, show_default=True, help="Channels of the judge.")
@click.option("--seed", default=0, show_default=True)
@click.option("--val-every", default=500, show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads for torch.")
@click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the best validated judge here as .safetensors.")
@click.option("--log-every", default=100, show_default=True)
def train_frames_command(data_dirs: tuple[Path, ...], out: Path, val_dirs: tuple[Path, ...], model_name: str | None,
                         weights: str | None, cases_per_photo: int, cache: Path | None, steps: int, batch: int,
                         lr: float, width: int, seed: int, val_every: int, threads: int | None,
                         export_path: Path | None, log_every: int) -> None:
    """Train the judge that picks the frame of a cropped, mirrored or turned gray."""
    import torch

    from invgray_cli.models.weights import save_weights
    from invgray_cli.train.frame_judge import FrameTrainConfig, train_frame_judge

    if threads:
        torch.set_num_threads(threads)
    cfg = FrameTrainConfig(data=[str(p) for p in data_dirs], val=[str(p) for p in val_dirs], model=model_name,
                           weights=weights, cases_per_photo=cases_per_photo, steps=steps, batch=batch, lr=lr,
                           seed=seed, val_every=val_every, cache=str(cache) if cache else None,
                           net={"width": width})
    out.parent.mkdir(parents=True, exist_ok=True)
    judge, codec = train_frame_judge(cfg, out, log=log, log_every=log_every)
    if export_path is not None:
        log(f"wrote {export_path} (sha256 {save_weights(judge, export_path, model_sha256=codec.info.sha256)})")


@companion_training_options("train-jpeg-decoder", "Validation photos (JPEG 90, and that re-saved at 75), repeatable.",
                            steps=3000, batch=16, crop=128, width=24,
                            width_help="Channels at full resolution (doubled per level).",
                            export_help="Write the best validated decoder here as .safetensors.")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from these decoder weights (.safetensors or checkpoint) of the same --width "
                   "(with --fine-planes, from one without: the new planes start at zero).")
@click.option("--fine-planes", is_flag=True, help="Also give the decoder the codec decoder's colour of the gray.")
def train_jpeg_decoder_command(data_dirs: tuple[Path, ...], out: Path, val_dirs: tuple[Path, ...],
                               model_name: str | None, weights: str | None, steps: int, batch: int, crop: int,
                               lr: float, width: int, seed: int, val_every: int, threads: int | None, device: str,
                               export_path: Path | None, log_every: int, init_from: Path | None,
                               fine_planes: bool) -> None:
    """Train the decoder of JPEG grays: colour from the gray's luma and its block code."""
    import torch

    from invgray_cli.codec.nets import Codec
    from invgray_cli.models.jpeg_decoder import JpegDecoderConfig
    from invgray_cli.models.weights import save_weights
    from invgray_cli.train.jpeg_decoder import JpegDecoderTrainConfig, train_jpeg_decoder

    if threads:
        torch.set_num_threads(threads)
    cfg = JpegDecoderTrainConfig(data=[str(p) for p in data_dirs], val=[str(p) for p in val_dirs], model=model_name,
                                 weights=weights, steps=steps, batch=batch, crop=crop, lr=lr, seed=seed,
                                 val_every=val_every, device=device, net=JpegDecoderConfig(width=width, fine_planes=fine_planes).to_dict(),
                                 init_from=init_from and str(init_from))
    out.parent.mkdir(parents=True, exist_ok=True)
    decoder = train_jpeg_decoder(cfg, out, log=log, log_every=log_every)
    if export_path is not None:
        model_sha256 = Codec.load(model_name, weights, device="cpu").info.sha256
        log(f"wrote {export_path} (sha256 {save_weights(decoder, export_path, model_sha256=model_sha256)})")

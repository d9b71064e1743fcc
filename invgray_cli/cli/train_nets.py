"""Stage cli: the training commands of the other nets: ``train-colorizer`` (the colouriser) and a
codec model's companions, ``train-detector``, ``train-frames`` and ``train-jpeg-decoder``; shells
over ``train.colorizer``, ``train.detector``, ``train.frame_judge`` and ``train.jpeg_decoder``,
with the options every training command shares (``cli/train.py``)."""
from __future__ import annotations

from pathlib import Path

import click

from invgray_cli.cli.options import ModelChoice, NetOptions, RenamedOptions, model_options, net_options
from invgray_cli.cli.train import TrainRun, export_weights, init_option, log, training_options
from invgray_cli.colorize.palette import MAX_PALETTE_COLOURS

served_model_options = model_options(gray_floor=False, model_help="The codec model it serves (default: the default model).",
                                     weights_help="Or a codec weights file.")
COMPANION_OUT = "Checkpoint file of the run (with its validation history)."


def codec_fields(choice: ModelChoice) -> dict[str, str | None]:
    """The codec model a companion's training config names (as text: the config is saved with it)."""
    return {"model": choice.model_name, "weights": None if choice.weights is None else str(choice.weights)}


@click.command("train-colorizer", cls=RenamedOptions, renamed={"--loss": "--regression", "--init-from": "--init"})
@training_options(steps=6000, batch=16, crop=128, lr=5e-4, val_every=1000, width=32,
                  width_help="Channels at full resolution (doubled per level).",
                  val_help="Validation photos (colourised whole at 0, 10 and 100 hints), repeatable.",
                  export_help="When the run ends, write the best validated (else the last) weights here as .safetensors.")
@net_options(precision=False, tile=False)
@click.option("--colourfulness", "colourfulness_weight", default=0.1, show_default=True,
              help="Weight of the hinge on chroma magnitude below the photo's.")
@click.option("--regression", default="smooth-l1", show_default=True, type=click.Choice(["smooth-l1", "mse"]),
              help="Regression on chroma: smooth L1 (a median: bolder colours) or MSE (the mean: what PSNR rewards).")
@init_option("Start a new run from these colouriser weights (new input planes start at zero).")
@click.option("--follow-edges", is_flag=True,
              help="A net whose hint spreads stop at the gray's edges (geodesic, not box, spreads).")
@click.option("--palette-share", default=0.0, type=click.FloatRange(0.0, 1.0), show_default=True,
              help=f"A net that takes a palette: this share of crops gets 0-{MAX_PALETTE_COLOURS} of its "
                   "dominant colours.")
def train_colorizer_command(run: TrainRun, net: NetOptions, colourfulness_weight: float, regression: str,
                            init: Path | None, follow_edges: bool, palette_share: float) -> None:
    """Train the colouriser for grays without a hidden code (resumable from --out)."""
    import torch

    from invgray_cli.models.colorizer import ColorizerConfig
    from invgray_cli.train.colorizer import ColorizerTrainConfig, train_colorizer
    from invgray_cli.train.checkpoints import best_path

    net.use_threads()
    shape = ColorizerConfig(width=run.width, follow_edges=follow_edges, palette_planes=palette_share > 0)
    cfg = ColorizerTrainConfig(**run.config_fields(), device=net.device or "auto", regression=regression,
                               colourfulness_weight=colourfulness_weight, init=init and str(init),
                               palette_share=palette_share, net=shape.to_dict())
    model = train_colorizer(cfg, run.out, log=log, log_every=run.log_every)
    if run.export_path is not None:
        best = best_path(run.out)
        if best.exists():
            state = torch.load(best, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            log(f"exporting the best validated weights: step {state['step']}")
        export_weights(model, run.export_path)


@click.command("train-detector")
@training_options(steps=1500, batch=32, crop=96, lr=1e-3, width=32, width_help="Channels of the detector.",
                  out_help=COMPANION_OUT,
                  val_help="Validation photos (coded, cropped, plain, JPEG 75, halved), repeatable.",
                  export_help="Write the best validated detector here as .safetensors.")
@served_model_options
@net_options(precision=False, tile=False)
def train_detector_command(run: TrainRun, choice: ModelChoice, net: NetOptions) -> None:
    """Train the detector that tells decode whether a gray carries its model's colour code."""
    from invgray_cli.train.detector import DetectorTrainConfig, train_detector

    net.use_threads()
    cfg = DetectorTrainConfig(**run.config_fields(), **codec_fields(choice), device=net.device or "auto",
                              net={"width": run.width})
    run.out.parent.mkdir(parents=True, exist_ok=True)
    detector, codec = train_detector(cfg, run.out, log=log, log_every=run.log_every)
    if run.export_path is not None:
        export_weights(detector, run.export_path, codec.info.sha256)


@click.command("train-frames")
@training_options(steps=2500, batch=8, lr=1e-3, width=32, width_help="Channels of the judge.", log_every=100,
                  out_help=COMPANION_OUT,
                  val_help="Validation photos (one turned-and-cropped and one as-encoded case each), repeatable.",
                  export_help="Write the best validated judge here as .safetensors.")
@served_model_options
@net_options(precision=False, tile=False)
@click.option("--cases-per-photo", default=1, type=click.IntRange(min=1), show_default=True)
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keep the training cases here (.npz) and reuse them on the next run.")
def train_frames_command(run: TrainRun, choice: ModelChoice, net: NetOptions, cases_per_photo: int,
                         cache: Path | None) -> None:
    """Train the judge that picks the frame of a cropped, mirrored or turned gray. The cases are made
    on the CPU (the codec's fp32 decode, as decode's search runs it); the judge trains on --device."""
    from invgray_cli.train.frame_judge import FrameTrainConfig, train_frame_judge

    net.use_threads()
    cfg = FrameTrainConfig(**run.config_fields(), **codec_fields(choice), device=net.device or "auto",
                           cases_per_photo=cases_per_photo, cache=str(cache) if cache else None,
                           net={"width": run.width})
    run.out.parent.mkdir(parents=True, exist_ok=True)
    judge, codec = train_frame_judge(cfg, run.out, log=log, log_every=run.log_every)
    if run.export_path is not None:
        export_weights(judge, run.export_path, codec.info.sha256)


@click.command("train-jpeg-decoder", cls=RenamedOptions, renamed={"--init-from": "--init"})
@training_options(steps=3000, batch=16, crop=128, lr=1e-3, width=24, out_help=COMPANION_OUT,
                  width_help="Channels at full resolution (doubled per level).",
                  val_help="Validation photos (JPEG 90, and that re-saved at 75), repeatable.",
                  export_help="Write the best validated decoder here as .safetensors.")
@served_model_options
@net_options(precision=False, tile=False)
@init_option("Start from these decoder weights (.safetensors or checkpoint) of the same --width "
             "(with --fine-planes, from one without: the new planes start at zero).")
@click.option("--fine-planes", is_flag=True, help="Also give the decoder the codec decoder's colour of the gray.")
def train_jpeg_decoder_command(run: TrainRun, choice: ModelChoice, net: NetOptions, init: Path | None,
                               fine_planes: bool) -> None:
    """Train the decoder of JPEG grays: colour from the gray's luma and its block code."""
    from invgray_cli.models.jpeg_decoder import JpegDecoderConfig
    from invgray_cli.train.jpeg_decoder import JpegDecoderTrainConfig, train_jpeg_decoder

    net.use_threads()
    cfg = JpegDecoderTrainConfig(**run.config_fields(), **codec_fields(choice), device=net.device or "auto",
                                 net=JpegDecoderConfig(width=run.width, fine_planes=fine_planes).to_dict(),
                                 init=init and str(init))
    run.out.parent.mkdir(parents=True, exist_ok=True)
    decoder = train_jpeg_decoder(cfg, run.out, log=log, log_every=run.log_every)
    if run.export_path is not None:
        export_weights(decoder, run.export_path, choice.load(NetOptions(device="cpu")).info.sha256)

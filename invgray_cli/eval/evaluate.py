"""``invgray eval``: quality of the real codec path on folders of photos.

Each photo goes the way a user's does: read by the input policy, encoded (tiled), written
as an 8-bit PNG (in memory), read back, decoded. We report restored-colour PSNR, SSIM
(mean over R, G, B as the paper's Table 2) and MAE, and how the gray conforms to the
BT.601 luma of the input: the SSIM structure term (paper Sec. 7.2) and PSNR.
An input's alpha channel, if any, is left out: only colour is measured.
This module imports torch lazily so the CLI starts fast.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from invgray_cli.io.paths import EVAL_SUFFIX, OWN_OUTPUTS
from invgray_cli.errors import InvgrayError
from invgray_cli.report import envelope, model_facts
from invgray_cli.cli.options import device_option, gray_floor_option, model_option, precision_option, tile_option, with_floor

if TYPE_CHECKING:
    import numpy as np

    from invgray_cli.codec.nets import Codec
    from invgray_cli.io.images import GrayImage

METRIC_NAMES = ("psnr", "ssim", "mae", "gray_structure", "gray_psnr")
# Xia et al. 2018 on VOC2012 (abstract, Sec. 7.2); the paper gives no gray PSNR.
PAPER_FIGURES = {"psnr": 36.02, "ssim": 0.9681, "mae": 3.083, "gray_structure": 0.9799, "gray_psnr": None}
DIFF_RANGE = 32.0  # difference maps show |error| in [0, 32] over the full range, as the paper's figures
PATTERN_GAIN = 16  # the hidden-pattern panel shows |gray - luma| x 16: 16 gray levels of pattern = white

ImageCallback = Callable[[int, int, dict], None]  # (index, total, per-image record)


def png_round_trip(gray: np.ndarray, text: dict[str, str] | None = None) -> GrayImage:
    """The gray as decode reads it from a file: written as an 8-bit PNG with ``text`` and read back."""
    from invgray_cli.io.images import read_gray, write_gray_png

    buffer = io.BytesIO()
    write_gray_png(gray, None, text or {}, buffer)
    return read_gray(buffer.getvalue())


def jpeg_file_round_trip(gray: np.ndarray, saves: tuple[int, ...]) -> GrayImage:
    """The gray as decode reads it after Pillow JPEG saves at each of ``saves`` in turn (no
    invgray comment, as another tool writes it)."""
    from PIL import Image

    from invgray_cli.io.images import jpeg_saves, read_gray

    buffer = io.BytesIO()
    Image.fromarray(jpeg_saves(gray, saves[:-1]), "L").save(buffer, "JPEG", quality=saves[-1])
    return read_gray(buffer.getvalue())


def score_image(rgb: np.ndarray, gray: np.ndarray, restored: np.ndarray) -> dict[str, float]:
    """The five measures for one photo, its gray and its restored colour (all uint8)."""
    from invgray_cli import metrics

    luma = metrics.luma_bt601(rgb)
    return {
        "psnr": metrics.psnr(restored, rgb),
        "ssim": metrics.ssim(restored, rgb),
        "mae": metrics.mae(restored, rgb),
        "gray_structure": metrics.gray_structure(gray, luma),
        "gray_psnr": metrics.gray_psnr(gray, luma),
    }


def difference_map(rgb: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """Per-pixel mean |RGB error| with [0, 32] stretched over 0..255, as uint8 HxW."""
    import numpy as np

    error = np.abs(rgb.astype(np.float32) - restored.astype(np.float32)).mean(axis=2)
    return np.round(np.clip(error / DIFF_RANGE, 0.0, 1.0) * 255.0).astype(np.uint8)


def pattern_map(rgb: np.ndarray, gray: np.ndarray, gain: int = PATTERN_GAIN) -> np.ndarray:
    """|gray - BT.601 luma| x gain as uint8 HxW, its scale written in the top-left corner:
    the hidden pattern made visible, so one sees where it would show."""
    import numpy as np
    from PIL import Image, ImageDraw

    from invgray_cli.metrics import luma_bt601

    amplified = np.abs(gray.astype(np.float64) - luma_bt601(rgb)) * gain
    panel = Image.fromarray(np.round(np.clip(amplified, 0.0, 255.0)).astype(np.uint8))
    ImageDraw.Draw(panel).text((2, 1), f"|gray-luma| x{gain}", fill=255)
    return np.asarray(panel)


def comparison_strip(rgb: np.ndarray, gray: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """input | gray | restored | difference map | hidden pattern, side by side, as one uint8 HxWx3 image."""
    import numpy as np

    def as_rgb(plane: np.ndarray) -> np.ndarray:
        return np.repeat(plane[:, :, None], 3, axis=2)

    # edge to edge, so the strip is exactly 5 x the input's width
    panels = [rgb, as_rgb(gray), restored, as_rgb(difference_map(rgb, restored)), as_rgb(pattern_map(rgb, gray))]
    return np.concatenate(panels, axis=1)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def jpeg_key(saves: int | tuple[int, ...]) -> str:
    """The record field of the PSNR restored from the gray saved as a JPEG at ``saves``
    (``psnr_jpeg75``; ``psnr_jpeg90_75`` for a save at 90 re-saved at 75)."""
    return "psnr_jpeg" + "_".join(map(str, _as_saves(saves)))


def _as_saves(saves: int | tuple[int, ...]) -> tuple[int, ...]:
    return (saves,) if isinstance(saves, int) else tuple(saves)


def parse_jpeg_saves(text: str) -> int | tuple[int, ...]:
    """``"75"`` -> 75; ``"90,75"`` -> (90, 75): saved at 90, then re-saved at 75."""
    try:
        qualities = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a JPEG quality or a list of them (e.g. 75 or 90,75)",
                                 param_hint="--jpeg") from None
    if not all(1 <= q <= 100 for q in qualities):
        raise click.BadParameter(f"'{text}': JPEG qualities are 1-100", param_hint="--jpeg")
    return qualities[0] if len(qualities) == 1 else qualities


def _measure_names(records: Sequence[dict]) -> list[str]:
    extra = [key for key in (records[0] if records else {}) if key.startswith("psnr_jpeg")]
    return [*METRIC_NAMES, *extra]


def summarise(records: Sequence[dict]) -> dict:
    """Means of the measures over ``records``, with the worst and 5th-percentile gray structure:
    the gray rule is about the images where the pattern shows, which a mean hides."""
    structures = [r["gray_structure"] for r in records]
    return {
        "count": len(records),
        "mean": {name: _finite(_mean([r[name] for r in records])) for name in _measure_names(records)},
        "gray_structure_min": min(structures) if structures else None,
        "gray_structure_p5": _percentile(structures, 5),
    }


def _finite(value: float | None) -> float | None:
    """JSON has no inf: a perfect PSNR is reported as null."""
    return value if value is not None and math.isfinite(value) else None


def _strip_path(save_dir: Path, rel: Path, taken: set[Path]) -> Path:
    """``x.eval.png``, else ``x.jpg.eval.png``, else numbered: never over another image's strip."""
    candidates = [rel.with_name(rel.stem + EVAL_SUFFIX), rel.with_name(rel.name + EVAL_SUFFIX)]
    candidates += [rel.with_name(f"{rel.name}.{n}{EVAL_SUFFIX}") for n in range(2, len(taken) + 3)]
    return next(save_dir / c for c in candidates if save_dir / c not in taken)


def evaluate_folder(
    paths: Sequence[str | Path],
    codec: Codec,
    save_dir: str | Path | None = None,
    on_image: ImageCallback | None = None,
    limit: int | None = None,
    jpeg_qualities: Sequence[int | tuple[int, ...]] = (),
    block_code: bool = False,
) -> dict:
    """Run every image under ``paths`` (files or folders, recursive, sorted) through ``codec``.

    Returns the ``invgray eval --json`` document. Unreadable files are listed under
    ``results.failed`` and do not stop the rest; non-image names met in folders under
    ``results.skipped``. ``on_image(index, total, record)`` is
    called after each image (for progress). ``save_dir`` gets one comparison strip per image,
    its subfolder tree mirroring the inputs'. Each of ``jpeg_qualities`` (a quality, or qualities
    of saves in turn) adds the PSNR decode restores from the gray saved as a JPEG by Pillow
    (``psnr_jpegQ``, see :func:`jpeg_key`). ``block_code``: the grays carry the JPEG-safe block
    code, as `encode --jpeg-safe` (and every JPEG gray) writes them.
    """
    from invgray_cli import metrics
    from invgray_cli.codec.decode import restore
    from invgray_cli.codec.encode import encode_photos
    from invgray_cli.io.images import read_color, write_color

    save_dir = Path(save_dir) if save_dir is not None else None
    items, notes = _eval_items(paths, limit, exclude=save_dir)

    per_image: list[dict] = []
    failed: list[dict] = []
    written: set[Path] = set()
    for index, (set_name, item) in enumerate(items):
        try:
            rgb = read_color(item.source).rgb
            encoded = encode_photos(codec, [rgb], block_code)[0]
            stored = png_round_trip(encoded.gray, codec.chunk_text())
            gray, restored = stored.gray, restore(codec, stored).rgb
        except InvgrayError as exc:
            failed.append({"input": str(item.source), "error": str(exc)})
            if on_image is not None:
                on_image(index, len(items), failed[-1])
            continue
        scores = score_image(rgb, gray, restored)
        for saves in jpeg_qualities:
            restored_jpeg = restore(codec, jpeg_file_round_trip(gray, _as_saves(saves))).rgb
            scores[jpeg_key(saves)] = metrics.psnr(restored_jpeg, rgb)
        record = {"input": str(item.source), "set": set_name, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                  **scores, "pattern_strength": encoded.strength}
        per_image.append(record)
        if save_dir is not None:
            target = _strip_path(save_dir, item.rel, written)
            written.add(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_color(comparison_strip(rgb, gray, restored), None, target)
        if on_image is not None:
            on_image(index, len(items), record)

    overall = summarise(per_image)
    sets = {name: summarise([r for r in per_image if r["set"] == name]) for name in dict.fromkeys(s for s, _ in items)}
    for record in per_image:
        for key in ("psnr", "gray_psnr", *map(jpeg_key, jpeg_qualities)):
            record[key] = _finite(record[key])
    info = codec.info
    return envelope(
        "invgray-eval",
        "restored colour (PSNR, SSIM mean over RGB, MAE on 0-255) and gray conformity "
        "(SSIM structure term and PSNR vs BT.601 luma) through the real 8-bit PNG codec path"
        + ("; psnr_jpegQ: PSNR decode restores from the gray re-saved as a Pillow JPEG of quality Q "
           "(psnr_jpegQ1_Q2: saved at Q1, then re-saved at Q2)" if jpeg_qualities else "")
        + ("; the grays carry the JPEG-safe block code" if block_code else ""),
        model_facts(info.name, info.sha256),
        str(codec.device),
        tile=codec.tile,
        precision=codec.precision,
        gray_floor=info.gray_floor,
        jpeg_qualities=[q if isinstance(q, int) else list(q) for q in jpeg_qualities],
        block_code=block_code,
        paper=dict(PAPER_FIGURES),
        results={
            "per_image": per_image,
            **overall,
            "sets": sets,
            "failed": failed,
            "skipped": notes,
        },
    )


def _eval_items(paths: Sequence[str | Path], limit: int | None, exclude: Path | None = None) -> tuple[list, list[str]]:
    """(set name, item) for every image under ``paths`` (one set per argument, reported apart as
    well as together), and the notes; files under ``exclude`` (the strips' folder) are left out."""
    from invgray_cli.io.paths import expand_inputs

    items, notes = [], []
    for path in paths:
        expansion = expand_inputs([str(path)], skip_suffixes=OWN_OUTPUTS, exclude=exclude)
        if expansion.missing:
            raise InvgrayError(expansion.missing[0][1])
        if any(item.source is None for item in expansion.items):
            raise InvgrayError("eval reads files and folders, not stdin ('-')")
        items += [(str(path), item) for item in expansion.items]
        notes += expansion.notes
    items = items[:limit] if limit is not None else items
    if not items:
        raise InvgrayError(f"no images found in {', '.join(map(str, paths))}")
    return items, notes


def evaluate_colorization(paths: Sequence[str | Path], colorizer: Any, hint_counts: Sequence[int] = (0,),
                          limit: int | None = None, on_image: ImageCallback | None = None) -> dict:
    """Colourise each photo's BT.601 luma with N random true-colour single-pixel hints for each N
    in ``hint_counts`` (seeded by the image's index, so runs repeat), against the photo:
    PSNR, SSIM and colourfulness (Hasler-Süsstrunk) relative to the photo's."""
    import numpy as np

    from invgray_cli import metrics
    from invgray_cli.colorize.session import colourfulness, random_hints
    from invgray_cli.io.images import read_color

    items, notes = _eval_items(paths, limit)
    per_image, failed = [], []
    for index, (set_name, item) in enumerate(items):
        try:
            rgb = read_color(item.source).rgb
        except InvgrayError as exc:
            failed.append({"input": str(item.source), "error": str(exc)})
            continue
        gray = np.round(metrics.luma_bt601(rgb)).astype(np.uint8)
        record: dict = {"input": str(item.source), "set": set_name, "gray_psnr": _finite(metrics.psnr(np.repeat(gray[:, :, None], 3, 2), rgb))}
        original = max(colourfulness(rgb), 1e-6)
        for count in hint_counts:
            out = colorizer.colorize_array(gray, random_hints(rgb, count, np.random.default_rng(index)))
            record[f"psnr_{count}"] = _finite(metrics.psnr(out, rgb))
            record[f"ssim_{count}"] = metrics.ssim(out, rgb)
            record[f"colourfulness_{count}"] = colourfulness(out) / original
        per_image.append(record)
        if on_image is not None:
            on_image(index, len(items), record)

    def means(records: list[dict]) -> dict:
        keys = [k for k in (records[0] if records else {}) if k not in ("input", "set")]
        return {"count": len(records), "mean": {k: _finite(_mean([r[k] for r in records if r[k] is not None])) for k in keys}}

    sets = {name: means([r for r in per_image if r["set"] == name]) for name in dict.fromkeys(s for s, _ in items)}
    return envelope(
        "invgray-eval-colorize",
        "colourisation of each photo's BT.601 luma with N random single-pixel true-colour hints: PSNR and SSIM "
        "against the photo, colourfulness (Hasler-Susstrunk) as a share of the photo's; gray_psnr: the luma alone",
        model_facts(colorizer.info.name, colorizer.info.sha256), str(colorizer.device),
        hint_counts=list(hint_counts),
        results={"per_image": per_image, **means(per_image), "sets": sets, "failed": failed, "skipped": notes},
    )


def _fmt(name: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if "psnr" in name else f"{value:.3f}" if name == "mae" else f"{value:.4f}"


def render_table(report: dict, per_image: bool = True) -> Any:
    """A rich table: one row per image (optional), our mean, and the paper's figures."""
    from rich.table import Table

    results = report["results"]
    table = Table(title=f"invgray eval — {report['model']['name']} on {report['device']}")
    table.add_column("image", overflow="fold")
    jpeg_names = [jpeg_key(q) for q in report.get("jpeg_qualities", [])]
    headers = ("PSNR dB", "SSIM", "MAE", "gray structure", "gray PSNR dB",
               *(f"JPEG {n[9:].replace('_', '>')} dB" for n in jpeg_names))
    for header in headers:
        table.add_column(header, justify="right")
    table.add_column("gray structure min / p5", justify="right")
    names = (*METRIC_NAMES, *jpeg_names)
    if per_image:
        for record in results["per_image"]:
            table.add_row(Path(record["input"]).name, *(_fmt(n, record[n]) for n in names), "")
        table.add_section()

    def summary_row(label: str, summary: dict, style: str = "") -> None:
        worst = f"{_fmt('gray_structure', summary['gray_structure_min'])} / {_fmt('gray_structure', summary['gray_structure_p5'])}"
        table.add_row(f"{style}{label}", *(f"{style}{_fmt(n, summary['mean'].get(n))}" for n in names), f"{style}{worst}")

    if len(results["sets"]) > 1:
        for name, summary in results["sets"].items():
            summary_row(f"{name} (mean of {summary['count']})", summary)
    summary_row(f"mean of {results['count']}", results, "[bold]")
    table.add_row("[dim]paper (VOC2012)", *(f"[dim]{_fmt(n, report['paper'].get(n))}" for n in names), "")
    return table


@click.command("eval")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("--save-dir", type=click.Path(file_okay=False), help="Write input | gray | restored | difference per image here.")
@click.option("--weights", type=click.Path(dir_okay=False), help="A weights file of your own instead of a shipped model.")
@model_option()
@device_option
@tile_option
@precision_option
@gray_floor_option
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N images.")
@click.option("--colorize", "colorize", is_flag=True,
              help="Measure the colouriser instead: each photo's luma colourised with --hints N random hints.")
@click.option("--hints", "hint_counts", multiple=True, type=click.IntRange(min=0), metavar="N",
              help="With --colorize: random true-colour hints per image (repeatable; default 0).")
@click.option("--colorizer-weights", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="With --colorize: a colouriser weights file instead of the shipped one.")
@click.option("--jpeg", "jpeg_qualities", multiple=True, metavar="Q[,Q2...]",
              callback=lambda ctx, param, values: tuple(parse_jpeg_saves(v) for v in values),
              help="Also restore from the gray re-saved as a JPEG of quality Q, or saved at Q and re-saved "
                   "at Q2... (repeatable).")
@click.option("--jpeg-safe", "block_code", is_flag=True,
              help="Encode with the JPEG-safe block code, as every JPEG gray (and `encode --jpeg-safe`) is.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or table on stderr.")
def eval_command(
    paths: tuple[str, ...],
    as_json: bool,
    save_dir: str | None,
    weights: str | None,
    model_name: str | None,
    device: str,
    tile: int | None,
    precision: str,
    gray_floor: float | None,
    limit: int | None,
    quiet: bool,
    colorize: bool,
    hint_counts: tuple[int, ...],
    colorizer_weights: str | None,
    jpeg_qualities: tuple[int | tuple[int, ...], ...],
    block_code: bool,
) -> None:
    """Measure restored-colour and gray quality on PATHS (images or folders, recursive)."""
    import json

    if hint_counts and not colorize:
        raise click.UsageError("--hints counts colourisation hints; it needs --colorize")
    if colorize and (jpeg_qualities or block_code or save_dir or weights or model_name or gray_floor is not None):
        raise click.UsageError("--colorize measures the colouriser: --jpeg, --jpeg-safe, --save-dir, --weights, --model and "
                               "--gray-floor are for the codec (use --colorizer-weights)")
    if colorize:
        _eval_colorize(paths, hint_counts or (0,), colorizer_weights, device, limit, quiet, as_json)
        return

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from invgray_cli.codec.nets import Codec

    console = Console(stderr=True, quiet=quiet)
    codec = with_floor(Codec.load(model=model_name, weights=weights, device=device, tile=tile, precision=precision),
                       gray_floor)
    progress = Progress(
        TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
        console=console, transient=True, disable=quiet or not console.is_terminal,
    )
    with progress:
        task = progress.add_task("", total=None)

        def on_image(index: int, total: int, record: dict) -> None:
            progress.update(task, completed=index + 1, total=total, description=Path(record["input"]).name)

        report = evaluate_folder(paths, codec, save_dir=save_dir, on_image=on_image, limit=limit,
                                 jpeg_qualities=jpeg_qualities, block_code=block_code)
    results = report["results"]
    console.print(render_table(report, per_image=results["count"] <= 100))
    for note in results["skipped"]:
        console.print(f"note: {note}", highlight=False, markup=False)
    for failure in results["failed"]:  # shown even with -q
        click.echo(f"invgray: error: {failure['error']}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2, allow_nan=False))
    if results["failed"]:
        click.get_current_context().exit(1)


def _eval_colorize(paths: Sequence[str], hint_counts: Sequence[int], weights: str | None, device: str,
                   limit: int | None, quiet: bool, as_json: bool) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from invgray_cli.colorize.session import ColorizerCodec

    console = Console(stderr=True, quiet=quiet)
    colorizer = ColorizerCodec.load(weights=weights, device=device)
    report = evaluate_colorization(paths, colorizer, hint_counts, limit=limit)
    results = report["results"]
    table = Table(title=f"invgray eval --colorize — {report['model']['name']} on {report['device']}")
    for header in ("set", "hints", "PSNR dB", "SSIM", "colourfulness vs photo", "gray alone dB"):
        table.add_column(header, justify="right")
    for name, summary in {**results["sets"], f"mean of {results['count']}": results}.items():
        mean = summary["mean"]
        if not summary["count"]:
            continue
        for count in hint_counts:
            table.add_row(name, str(count), _fmt("psnr", mean[f"psnr_{count}"]), _fmt("ssim", mean[f"ssim_{count}"]),
                          f"{mean[f'colourfulness_{count}']:.0%}", _fmt("psnr", mean["gray_psnr"]))
    console.print(table)
    for failure in results["failed"]:
        click.echo(f"invgray: error: {failure['error']}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2, allow_nan=False))
    if results["failed"]:
        click.get_current_context().exit(1)

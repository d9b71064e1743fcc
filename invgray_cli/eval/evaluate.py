"""Stage eval: quality of the real codec path on folders of photos (the command is ``cli/eval.py``).

Each photo goes the way a user's does: read by the input policy, encoded (tiled), written
as an 8-bit PNG (in memory), read back, decoded, and measured (``scoring.py``); ``--save-dir``
gets a comparison strip per photo (``figures.py``). ``evaluate_colorization`` measures the
colouriser the same way. An input's alpha channel, if any, is left out: only colour is measured.
This module imports torch lazily so the CLI starts fast.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invgray_cli.errors import InvgrayError
from invgray_cli.eval.figures import comparison_strip
from invgray_cli.eval.scoring import (METRIC_NAMES, PAPER_FIGURES, as_saves, finite_or_none, jpeg_file_round_trip, jpeg_key,
                                      mean_of, png_round_trip, score_image, summarise)
from invgray_cli.io.inputs import EVAL_SUFFIX, OWN_OUTPUTS
from invgray_cli.report import envelope, model_facts

if TYPE_CHECKING:
    import numpy as np

    from invgray_cli.codec.nets import Codec

ImageCallback = Callable[[int, int, dict], None]  # (index, total, per-image record)


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
    from invgray_cli.codec.decode import restore
    from invgray_cli.codec.encode import encode_photos
    from invgray_cli.io.images import read_color
    from invgray_cli.io.writing import write_color

    save_dir = Path(save_dir) if save_dir is not None else None
    items, notes = _eval_items(paths, limit, exclude=save_dir)

    per_image: list[dict] = []
    failed: list[dict] = []
    written: set[Path] = set()
    for index, (set_name, item) in enumerate(items):
        try:
            rgb = read_color(item.source).rgb
            encoded = encode_photos(codec, [rgb], block_code)[0]
            stored = png_round_trip(encoded.gray, codec.chunk_text(encoded.strength))
            gray, restored = stored.gray, restore(codec, stored).rgb
        except InvgrayError as exc:
            failed.append({"input": str(item.source), "error": str(exc)})
            if on_image is not None:
                on_image(index, len(items), failed[-1])
            continue
        record = {"input": str(item.source), "set": set_name, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                  **_codec_scores(codec, rgb, gray, restored, jpeg_qualities), "pattern_strength": encoded.strength}
        per_image.append(record)
        if save_dir is not None:
            target = _strip_path(save_dir, item.rel, written)
            written.add(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_color(comparison_strip(rgb, gray, restored), None, target)
        if on_image is not None:
            on_image(index, len(items), record)
    return _folder_report(codec, items, per_image, failed, notes, jpeg_qualities, block_code)


def _codec_scores(codec: Codec, rgb: np.ndarray, gray: np.ndarray, restored: np.ndarray,
                  jpeg_qualities: Sequence[int | tuple[int, ...]]) -> dict[str, float]:
    """``score_image``'s measures, and the PSNR restored from the gray after each of ``jpeg_qualities``."""
    from invgray_cli import metrics
    from invgray_cli.codec.decode import restore

    scores = score_image(rgb, gray, restored)
    for saves in jpeg_qualities:
        restored_jpeg = restore(codec, jpeg_file_round_trip(gray, as_saves(saves))).rgb
        scores[jpeg_key(saves)] = metrics.psnr(restored_jpeg, rgb)
    return scores


def _folder_report(codec: Codec, items: list, per_image: list[dict], failed: list[dict], notes: list[str],
                   jpeg_qualities: Sequence[int | tuple[int, ...]], block_code: bool) -> dict:
    """The ``invgray eval --json`` document: the per-image records, their summary overall and per set."""
    overall = summarise(per_image)
    sets = {name: summarise([r for r in per_image if r["set"] == name]) for name in dict.fromkeys(s for s, _ in items)}
    for record in per_image:
        for key in ("psnr", "gray_psnr", *map(jpeg_key, jpeg_qualities)):
            record[key] = finite_or_none(record[key])
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
    from invgray_cli.io.inputs import expand_inputs

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
                          limit: int | None = None, on_image: ImageCallback | None = None,
                          palette_sizes: Sequence[int] = ()) -> dict:
    """Colourise each photo's BT.601 luma with N random true-colour single-pixel hints for each N
    in ``hint_counts`` (seeded by the image's index, so runs repeat), and with the photo's own N
    dominant colours as a palette for each N in ``palette_sizes``, against the photo: PSNR, SSIM
    and colourfulness (Hasler-Süsstrunk) relative to the photo's."""
    import numpy as np

    from invgray_cli import metrics
    from invgray_cli.colorize.session import colourfulness, measured_guidance
    from invgray_cli.colour import plain_gray
    from invgray_cli.io.images import read_color

    if palette_sizes:
        colorizer.check_takes_palette()
    items, notes = _eval_items(paths, limit)
    per_image, failed = [], []
    for index, (set_name, item) in enumerate(items):
        try:
            rgb = read_color(item.source).rgb
        except InvgrayError as exc:
            failed.append({"input": str(item.source), "error": str(exc)})
            continue
        gray = plain_gray(rgb)
        record: dict = {"input": str(item.source), "set": set_name, "gray_psnr": finite_or_none(metrics.psnr(np.repeat(gray[:, :, None], 3, 2), rgb))}
        original = max(colourfulness(rgb), 1e-6)
        for guidance in measured_guidance(rgb, index, hint_counts, palette_sizes):
            out = colorizer.colorize_array(gray, guidance.hints, guidance.palette)
            record[f"psnr_{guidance.key}"] = finite_or_none(metrics.psnr(out, rgb))
            record[f"ssim_{guidance.key}"] = metrics.ssim(out, rgb)
            record[f"colourfulness_{guidance.key}"] = colourfulness(out) / original
        per_image.append(record)
        if on_image is not None:
            on_image(index, len(items), record)

    def means(records: list[dict]) -> dict:
        keys = [k for k in (records[0] if records else {}) if k not in ("input", "set")]
        return {"count": len(records), "mean": {k: finite_or_none(mean_of([r[k] for r in records if r[k] is not None])) for k in keys}}

    sets = {name: means([r for r in per_image if r["set"] == name]) for name in dict.fromkeys(s for s, _ in items)}
    return envelope(
        "invgray-eval-colorize",
        "colourisation of each photo's BT.601 luma with N random single-pixel true-colour hints: PSNR and SSIM "
        "against the photo, colourfulness (Hasler-Susstrunk) as a share of the photo's; gray_psnr: the luma alone"
        + ("; _paletteN: with the photo's own N dominant colours as a palette (no hints)" if palette_sizes else ""),
        model_facts(colorizer.info.name, colorizer.info.sha256), str(colorizer.device),
        hint_counts=list(hint_counts),
        palette_sizes=list(palette_sizes),
        results={"per_image": per_image, **means(per_image), "sets": sets, "failed": failed, "skipped": notes},
    )


def _fmt(name: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if "psnr" in name else f"{value:.3f}" if name == "mae" else f"{value:.4f}"


def render_eval_table(report: dict, per_image: bool = True) -> Any:
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


def render_colorize_table(report: dict) -> Any:
    """A rich table of `eval --colorize`: per set and overall, each hint count's (and palette
    size's) PSNR, SSIM, colourfulness against the photo's, and the luma alone's PSNR."""
    from rich.table import Table

    from invgray_cli.colorize.session import palette_key

    results = report["results"]
    table = Table(title=f"invgray eval --colorize — {report['model']['name']} on {report['device']}")
    guided_by = "hints / palette" if report.get("palette_sizes") else "hints"
    for header in ("set", guided_by, "PSNR dB", "SSIM", "colourfulness vs photo", "gray alone dB"):
        table.add_column(header, justify="right")
    for name, summary in {**results["sets"], f"mean of {results['count']}": results}.items():
        mean = summary["mean"]
        if not summary["count"]:
            continue
        guides = [(str(count), str(count)) for count in report["hint_counts"]]
        guides += [(palette_key(size), f"palette of {size}") for size in report.get("palette_sizes", [])]
        for key, label in guides:
            table.add_row(name, label, _fmt("psnr", mean[f"psnr_{key}"]), _fmt("ssim", mean[f"ssim_{key}"]),
                          f"{mean[f'colourfulness_{key}']:.0%}", _fmt("psnr", mean["gray_psnr"]))
    return table

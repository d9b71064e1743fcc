"""Stage eval: the measures of one photo through the codec path, and their summaries.

A gray is measured as decode reads it from a file (an 8-bit PNG written and read back, or a JPEG
re-saved by another tool); a photo's restored colour by PSNR, SSIM (mean over R, G, B as the
paper's Table 2) and MAE, its gray against the BT.601 luma by the SSIM structure term (paper
Sec. 7.2) and PSNR. This module imports torch lazily so the CLI starts fast.
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from invgray_cli.io.images import GrayImage

METRIC_NAMES = ("psnr", "ssim", "mae", "gray_structure", "gray_psnr")
# Xia et al. 2018 on VOC2012 (abstract, Sec. 7.2); the paper gives no gray PSNR.
PAPER_FIGURES = {"psnr": 36.02, "ssim": 0.9681, "mae": 3.083, "gray_structure": 0.9799, "gray_psnr": None}


def png_round_trip(gray: np.ndarray, text: dict[str, str] | None = None) -> GrayImage:
    """The gray as decode reads it from a file: written as an 8-bit PNG with ``text`` and read back."""
    from invgray_cli.io.images import read_gray
    from invgray_cli.io.writing import write_gray_png

    buffer = io.BytesIO()
    write_gray_png(gray, None, text or {}, buffer)
    return read_gray(buffer.getvalue())


def jpeg_file_round_trip(gray: np.ndarray, saves: tuple[int, ...]) -> GrayImage:
    """The gray as decode reads it after Pillow JPEG saves at each of ``saves`` in turn (no
    invgray comment, as another tool writes it)."""
    from PIL import Image

    from invgray_cli.io.images import read_gray
    from invgray_cli.io.jpeg import jpeg_saves

    buffer = io.BytesIO()
    Image.fromarray(jpeg_saves(gray, saves[:-1]), "L").save(buffer, "JPEG", quality=saves[-1])
    return read_gray(buffer.getvalue())


def score_image(rgb: np.ndarray, gray: np.ndarray, restored: np.ndarray) -> dict[str, float]:
    """The five measures for one photo, its gray and its restored colour (all uint8)."""
    from invgray_cli import metrics
    from invgray_cli.colour import luma_bt601

    luma = luma_bt601(rgb)
    return {
        "psnr": metrics.psnr(restored, rgb),
        "ssim": metrics.ssim(restored, rgb),
        "mae": metrics.mae(restored, rgb),
        "gray_structure": metrics.gray_structure(gray, luma),
        "gray_psnr": metrics.gray_psnr(gray, luma),
    }


def mean_of(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def jpeg_key(saves: int | tuple[int, ...]) -> str:
    """The record field of the PSNR restored from the gray saved as a JPEG at ``saves``
    (``psnr_jpeg75``; ``psnr_jpeg90_75`` for a save at 90 re-saved at 75)."""
    return "psnr_jpeg" + "_".join(map(str, as_saves(saves)))


def as_saves(saves: int | tuple[int, ...]) -> tuple[int, ...]:
    return (saves,) if isinstance(saves, int) else tuple(saves)


def _measure_names(records: Sequence[dict]) -> list[str]:
    extra = [key for key in (records[0] if records else {}) if key.startswith("psnr_jpeg")]
    return [*METRIC_NAMES, *extra]


def summarise(records: Sequence[dict]) -> dict:
    """Means of the measures over ``records``, with the worst and 5th-percentile gray structure:
    the gray rule is about the images where the pattern shows, which a mean hides."""
    structures = [r["gray_structure"] for r in records]
    return {
        "count": len(records),
        "mean": {name: finite_or_none(mean_of([r[name] for r in records])) for name in _measure_names(records)},
        "gray_structure_min": min(structures) if structures else None,
        "gray_structure_p5": _percentile(structures, 5),
    }


def finite_or_none(value: float | None) -> float | None:
    """JSON has no inf: a perfect PSNR is reported as null."""
    return value if value is not None and math.isfinite(value) else None

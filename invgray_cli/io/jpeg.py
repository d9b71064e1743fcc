"""Stage 1 (io): JPEG facts. libjpeg's quantisation tables, whether a JPEG gray is too coarse for
the nets' fine code, and a gray as it reads back after JPEG saves.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

FINE_CODE_JPEG_QUALITY = 98  # from here up a JPEG gray's fine code restores better than its block code (README)
_BASE_TABLE = np.array([  # the JPEG standard's luminance quantisation table (Annex K), quality 50
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64).reshape(8, 8)


def jpeg_table(quality: int) -> np.ndarray:
    """libjpeg's luminance quantisation steps at ``quality`` (what Pillow and most tools write)."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((_BASE_TABLE * scale + 50) / 100), 1, 255)


def loses_fine_code(image: Image.Image) -> bool:
    """Whether ``image`` is a JPEG quantised more coarsely than libjpeg at FINE_CODE_JPEG_QUALITY,
    judged by its luminance table's sum (so other encoders' tables are judged too)."""
    if image.format != "JPEG":
        return False
    luminance = (getattr(image, "quantization", None) or {}).get(0)
    return luminance is None or bool(sum(luminance) > jpeg_table(FINE_CODE_JPEG_QUALITY).sum())


def jpeg_round_trip(gray: np.ndarray, quality: int) -> np.ndarray:
    """A uint8 HxW gray as Pillow reads it back after saving it as a JPEG at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8), "L").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("L"))


def jpeg_saves(gray: np.ndarray, qualities: tuple[int, ...]) -> np.ndarray:
    """The gray as read back after JPEG saves at each of ``qualities`` in turn (a re-saved gray)."""
    for quality in qualities:
        gray = jpeg_round_trip(gray, quality)
    return gray

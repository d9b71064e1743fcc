"""Stage 1 (io): writing images by a stated policy.

Grays are PNG (8-bit L or LA + a text chunk), or lossless TIFF or WebP (the text in the
ImageDescription tag), or JPEG (the text in its comment); colour is written in the format of the
extension, and formats without alpha (JPEG, BMP, ...) get the colour flattened onto white.
Writes to a path are atomic (``filesystem.atomic_write``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from invgray_cli.errors import InvgrayError
from invgray_cli.io.filesystem import atomic_write

ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "TGA", "JPEG2000"})
JPEG_QUALITY = 95
# zlib level of every PNG written. Pillow's default, 6, took 2-3x as long for a file within 2 % of
# this size (1024² photos: a colour PNG 345 -> 145 ms, 1.65 -> 1.69 MB; a gray 106 -> 58 ms, the
# same size; desktop wallpapers 4-5 % larger); at 1024² a colour PNG's writing was 40 % of a decode
PNG_COMPRESS_LEVEL = 4
# grays besides PNG and JPEG: lossless, the chunk's text in the ImageDescription tag (270)
LOSSLESS_GRAY_FORMATS = {".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
IMAGE_DESCRIPTION = 270
WEBP_MAX_SIDE = 16383


def format_for_path(path: str | Path) -> str:
    """Pillow format name for an output path's extension, or a one-line error."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise InvgrayError(f"{path}: cannot tell the image format from '{suffix or 'no extension'}'; use .png, .jpg, .webp, .tiff or .bmp")
    return fmt


def format_keeps_alpha(fmt: str) -> bool:
    return fmt.upper() in ALPHA_FORMATS


def _write(image: Image.Image, dest: str | Path | BinaryIO, fmt: str, **params) -> None:
    if isinstance(dest, (str, Path)):
        atomic_write(dest, lambda handle: image.save(handle, format=fmt, **params))
    else:
        image.save(dest, format=fmt, **params)


def _with_alpha(base: Image.Image, alpha: np.ndarray | None, mode: str) -> Image.Image:
    if alpha is None:
        return base
    return Image.merge(mode, (*base.split(), Image.fromarray(alpha, "L")))


def write_gray_png(gray: np.ndarray, alpha: np.ndarray | None, text: dict[str, str], dest: str | Path | BinaryIO) -> None:
    """An 8-bit L (or LA with alpha) PNG carrying ``text`` as tEXt/iTXt chunks."""
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    image = _with_alpha(Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8), "L"), alpha, "LA")
    _write(image, dest, "PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)


def write_gray_jpeg(gray: np.ndarray, text: dict[str, str], dest: str | Path | BinaryIO, quality: int) -> None:
    """A baseline 8-bit gray JPEG at ``quality`` carrying ``text`` as JSON in its comment segment."""
    image = Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8), "L")
    _write(image, dest, "JPEG", quality=quality, comment=json.dumps(text, separators=(",", ":")).encode())


def write_gray_lossless(gray: np.ndarray, alpha: np.ndarray | None, text: dict[str, str],
                        dest: str | Path | BinaryIO, fmt: str) -> None:
    """An 8-bit gray (and alpha) as a lossless TIFF (deflate) or WebP, carrying ``text`` as JSON in
    its ImageDescription tag (a WebP's in its EXIF block). A WebP stores the gray as three equal
    channels, which decode reads back as the same gray."""
    image = _with_alpha(Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8), "L"), alpha, "LA")
    description = json.dumps(text, separators=(",", ":"))
    if fmt == "TIFF":
        _write(image, dest, "TIFF", compression="tiff_adobe_deflate", tiffinfo={IMAGE_DESCRIPTION: description})
    elif fmt == "WEBP":
        if max(gray.shape) > WEBP_MAX_SIDE:
            raise InvgrayError(f"a WebP holds at most {WEBP_MAX_SIDE} px a side, this gray is "
                               f"{gray.shape[1]}x{gray.shape[0]}; write .png or .tif")
        exif = Image.Exif()
        exif[IMAGE_DESCRIPTION] = description
        _write(image, dest, "WEBP", lossless=True, exact=True, exif=exif.tobytes())
    else:
        raise ValueError(f"{fmt} is not a lossless gray format ({', '.join(sorted(set(LOSSLESS_GRAY_FORMATS.values())))})")


def lossless_gray_format(path: str | Path) -> str | None:
    """TIFF or WEBP when ``path`` names a gray written by :func:`write_gray_lossless`, else None."""
    return LOSSLESS_GRAY_FORMATS.get(Path(path).suffix.lower())


def is_jpeg_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".jpg", ".jpeg")


def flatten_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.uint16)[:, :, None]
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def alpha_loss_warning(alpha: np.ndarray | None, fmt: str) -> str | None:
    """What the user should hear when an output format cannot keep the image's transparency."""
    if alpha is None or format_keeps_alpha(fmt):
        return None
    return f"{fmt} has no transparency: the colour is flattened onto white; write .png to keep the alpha"


def write_color(rgb: np.ndarray, alpha: np.ndarray | None, dest: str | Path | BinaryIO, format: str | None = None) -> None:
    """RGB(A) in ``format`` (default: from the extension of a path, PNG for a stream).

    Formats without alpha get the colour flattened onto white; JPEG is written at quality 95.
    """
    fmt = (format or (format_for_path(dest) if isinstance(dest, (str, Path)) else "PNG")).upper()
    if alpha is not None and not format_keeps_alpha(fmt):
        rgb, alpha = flatten_on_white(rgb, alpha), None
    image = _with_alpha(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB"), alpha, "RGBA")
    params = {"JPEG": {"quality": JPEG_QUALITY}, "PNG": {"compress_level": PNG_COMPRESS_LEVEL}}.get(fmt, {})
    _write(image, dest, fmt, **params)

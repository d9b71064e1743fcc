"""Stage 1 (io): reading images by a stated policy, with one-line errors for bad input.

Input policy (encode):
- any Pillow-readable file (the first frame of an animation or a multi-page file); EXIF orientation
  is applied (a damaged EXIF block is ignored);
- alpha (RGBA, LA, PA, palette transparency) is kept as a separate 8-bit channel;
- palette -> RGB(A); CMYK, YCbCr, LAB, HSV -> RGB by Pillow's conversion (ICC profiles are ignored);
- gray (L, 1) -> RGB with R = G = B (its gray output stays close to the input's luma);
- 16-bit (I;16*, I) -> 8-bit by rounding value * 255 / 65535; 32-bit float (F) is refused;
- images over ``max_pixels`` are refused before decoding (decompression-bomb guard).
Gray policy (decode): L/LA/1/16-bit gray are read as gray; an RGB(A) file is accepted only
when its channels agree (a gray saved as RGB by another tool), otherwise it is a colour photo.
The text invgray wrote (a PNG's chunks, a JPEG's comment, a TIFF's or WebP's ImageDescription) is
read back as data. Writing is ``writing.py``; opening files and atomic writes ``filesystem.py``;
JPEG tables and round trips ``jpeg.py``.
"""
from __future__ import annotations

import io
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from invgray_cli.errors import InvgrayError
from invgray_cli.io.chunk import MAX_CHUNK_BYTES
from invgray_cli.io.filesystem import open_input
from invgray_cli.io.jpeg import loses_fine_code
from invgray_cli.io.writing import IMAGE_DESCRIPTION, LOSSLESS_GRAY_FORMATS
from invgray_cli.untrusted import parse_json

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default decompression-bomb limit (~89.5 MP); 8K (33 MP) passes
# an RGB file counts as gray when at most this share of pixels has channels further apart than the tolerance
GRAY_CHANNEL_TOLERANCE = 8
GRAY_OUTLIER_SHARE = 0.001
Source = str | Path | bytes | BinaryIO
_PILLOW_GUARD_LOCK = threading.Lock()


@dataclass(frozen=True)
class ColorImage:
    rgb: np.ndarray  # uint8 HxWx3
    alpha: np.ndarray | None  # uint8 HxW
    pages: int = 1  # frames of an animation (pages of a multi-page file); only the first is read
    text: dict[str, str] = field(default_factory=dict)  # as GrayImage's: invgray's chunk if a gray was read


@dataclass(frozen=True)
class GrayImage:
    gray: np.ndarray  # uint8 HxW
    alpha: np.ndarray | None  # uint8 HxW
    text: dict[str, str] = field(default_factory=dict)
    jpeg: bool = False  # read from a JPEG: decoded with the model for JPEG grays
    lossy: bool = False  # a JPEG coarser than FINE_CODE_JPEG_QUALITY: the nets' fine code is gone


def source_name(source: Source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return getattr(source, "name", None) or "<stream>"


def _open_source(source: Source) -> BinaryIO:
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise InvgrayError("<bytes>: input is empty")
        return io.BytesIO(source)
    if isinstance(source, (str, Path)):
        return open_input(Path(source))
    return source


def _pixel_count_text(count: int) -> str:
    return f"{count / 1e6:.0f} MP" if count >= 10**7 else f"{count / 1e6:.1f} MP" if count >= 10**5 else f"{count} pixels"


@contextmanager
def _reading(source: Source) -> Iterator[tuple[str, BinaryIO]]:
    """(name, open handle) with Pillow's process-wide bomb guard lifted under a lock, Pillow's
    errors turned into one-line InvgrayErrors, and the handle closed if we opened it."""
    name = source_name(source)
    handle = _open_source(source)
    try:
        with _PILLOW_GUARD_LOCK, warnings.catch_warnings():  # callers apply their own limit from the header
            warnings.filterwarnings("ignore", category=UserWarning, module="PIL")  # damaged-tag chatter
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                yield name, handle
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        raise InvgrayError(f"{name}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvgrayError(f"{name}: truncated or corrupt image ({reason})") from None
    finally:
        if handle is not source:
            handle.close()


def _load(source: Source, max_pixels: int | None) -> tuple[Image.Image, dict[str, str], int]:
    """Open, guard against decompression bombs, decode and apply EXIF orientation (in place).

    Returns the image, its PNG text chunks (read before the orientation is applied) and the
    number of frames in the file (only the first is decoded)."""
    with _reading(source) as (name, handle):
        image = Image.open(handle)
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise InvgrayError(
                f"{name}: {width}x{height} ({_pixel_count_text(width * height)}) is over the {_pixel_count_text(max_pixels)} "
                f"decompression-bomb limit; if you trust it, pass --max-pixels {width * height}"
            )
        pages = int(getattr(image, "n_frames", 1) or 1)  # while the file is open: counting may seek
        image.load()
        text = png_text(image) or jpeg_comment_text(image) or description_text(image)
        apply_orientation(image)
    return image, text, pages


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    mode: str
    format: str
    text: dict[str, str]  # text chunks before the pixel data (where invgray writes its own)


def read_header(source: Source) -> ImageHeader:
    """Size, mode, format and text chunks from the header; the file's structure is verified
    but no pixel is decoded, so there is no decompression bomb to fear."""
    with _reading(source) as (_, handle):
        with Image.open(handle) as image:
            text = ({str(k): v for k, v in image.info.items() if isinstance(v, str)} | jpeg_comment_text(image)
                    | description_text(image))
            header = ImageHeader(image.width, image.height, image.mode, str(image.format), text)
            image.verify()
    return header


def apply_orientation(image: Image.Image) -> None:
    """Apply the EXIF orientation in place; a damaged EXIF block leaves the image as stored."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError, struct.error):
        pass


def _sixteen_to_eight(image: Image.Image) -> np.ndarray:
    values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)  # mode I is signed 32-bit
    return ((values * 255 + 32767) // 65535).astype(np.uint8)


def _split_alpha(image: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    """(image without alpha, alpha or None), palette transparency included."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    elif image.mode in ("RGBa", "La"):  # premultiplied
        image = image.convert(image.mode[:-1] + "A")
    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"))
        return image.convert("RGB" if image.mode == "RGBA" else "L"), alpha
    return image, None


def _convert(image: Image.Image, mode: str, name: str) -> Image.Image:
    if image.mode == mode:
        return image
    try:
        return image.convert(mode)
    except (ValueError, OSError):
        raise InvgrayError(f"{name}: images in colour mode {image.mode} are not supported; convert to RGB first") from None


def normalise_color(image: Image.Image, name: str = "<image>") -> ColorImage:
    """A loaded PIL image as 8-bit RGB plus optional alpha, by the module's input policy."""
    image, alpha = _split_alpha(image)
    if image.mode == "F":
        raise InvgrayError(f"{name}: 32-bit float images are not supported; convert to 8 or 16 bit first")
    if image.mode.startswith("I"):
        gray = _sixteen_to_eight(image)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        rgb = np.asarray(_convert(image, "RGB", name))
    return ColorImage(np.ascontiguousarray(rgb, dtype=np.uint8), alpha)


def is_effectively_gray(rgb: np.ndarray) -> bool:
    """Whether an RGB uint8 HxWx3 image is a gray (its channels agree, a few outliers aside)."""
    spread = np.max(rgb, axis=2).astype(np.int16) - np.min(rgb, axis=2)
    return np.count_nonzero(spread > GRAY_CHANNEL_TOLERANCE) <= GRAY_OUTLIER_SHARE * spread.size


def normalise_gray(image: Image.Image, text: dict[str, str] | None = None, name: str = "<image>") -> GrayImage:
    """A loaded PIL image as an 8-bit gray plus optional alpha, and whether it came from a JPEG (and
    one that lost the fine code); refuses colour photos."""
    jpeg, lossy = image.format == "JPEG", loses_fine_code(image)
    image, alpha = _split_alpha(image)
    if image.mode == "F":
        raise InvgrayError(f"{name}: 32-bit float images are not supported")
    if image.mode.startswith("I"):
        gray = _sixteen_to_eight(image)
    elif image.mode in ("L", "1"):
        gray = np.asarray(_convert(image, "L", name))
    else:
        rgb = np.asarray(_convert(image, "RGB", name))
        if not is_effectively_gray(rgb):
            raise InvgrayError(
                f"{name}: is a colour image, not an invgray gray; decode expects the grayscale PNG written by `invgray encode`"
            )
        gray = np.asarray(image.convert("L"))
    return GrayImage(np.ascontiguousarray(gray, dtype=np.uint8), alpha, dict(text or {}), jpeg, lossy)


def read_color(source: Source, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ColorImage:
    """Read a photo for encoding: 8-bit RGB (HxWx3), alpha (HxW) or None, and its text chunks."""
    image, text, pages = _load(source, max_pixels)
    return replace(normalise_color(image, source_name(source)), pages=pages, text=text)


def png_text(image: Image.Image) -> dict[str, str]:
    """The tEXt/iTXt/zTXt chunks of a loaded PNG ({} for other formats)."""
    text = getattr(image, "text", None)
    return {str(k): str(v) for k, v in text.items()} if isinstance(text, dict) else {}


def jpeg_comment_text(image: Image.Image) -> dict[str, str]:
    """The text invgray wrote into a JPEG's comment segment (a JSON object of strings), else {}:
    any other comment (not JSON, nested deep, too long) is another tool's, and the photo is read as usual."""
    comment = image.info.get("comment") if image.format == "JPEG" else None
    return _text_object(comment, "the JPEG comment")


def description_text(image: Image.Image) -> dict[str, str]:
    """The text invgray wrote into a TIFF's or WebP's ImageDescription tag (a JSON object of
    strings), else {}: another tool's description is not invgray's."""
    if image.format not in LOSSLESS_GRAY_FORMATS.values():
        return {}
    try:
        description = image.getexif().get(IMAGE_DESCRIPTION)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError, struct.error):  # a damaged EXIF block
        return {}
    return _text_object(description, "the image description")


def _text_object(raw: str | bytes | None, what: str) -> dict[str, str]:
    """``raw`` parsed as the JSON object of strings invgray writes, else {}."""
    try:
        text = parse_json(raw, what, max_bytes=MAX_CHUNK_BYTES) if raw else None
    except InvgrayError:
        return {}  # another tool's text
    if not isinstance(text, dict):
        return {}
    return {str(k): str(v) for k, v in text.items() if isinstance(v, str)}


def read_gray(source: Source, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> GrayImage:
    """Read an invgray gray for decoding: 8-bit gray, alpha or None, and the text invgray wrote
    into it (PNG text chunks, or a JPEG's comment)."""
    image, text, _ = _load(source, max_pixels)
    return normalise_gray(image, text, source_name(source))

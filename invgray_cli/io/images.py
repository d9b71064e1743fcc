"""Reading and writing images by a stated policy, with one-line errors for bad input.

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
Output policy: PNG for grays (8-bit L or LA + a text chunk), or lossless TIFF or WebP (the text
in the ImageDescription tag), or JPEG (the text in its comment); colour in the format of the
extension; formats without alpha (JPEG, BMP, ...) get the colour flattened onto white.
Writes to a path are atomic: a temporary file in the same folder, then ``os.replace`` (or, where
nothing may be overwritten, a hard link that fails if the name is taken).
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import stat
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no locks, so temporary files of killed runs stay where they are
    fcntl = None

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from invgray_cli.errors import InvgrayError, OutputExists
from invgray_cli.io.chunk import MAX_CHUNK_BYTES
from invgray_cli.untrusted import parse_json

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default decompression-bomb limit (~89.5 MP); 8K (33 MP) passes
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "TGA", "JPEG2000"})
JPEG_QUALITY = 95
# grays besides PNG and JPEG: lossless, the chunk's text in the ImageDescription tag (270)
LOSSLESS_GRAY_FORMATS = {".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
IMAGE_DESCRIPTION = 270
WEBP_MAX_SIDE = 16383
FINE_CODE_JPEG_QUALITY = 98  # from here up a JPEG gray's fine code restores better than its block code (README)
# an RGB file counts as gray when at most this share of pixels has channels further apart than the tolerance
GRAY_CHANNEL_TOLERANCE = 8
GRAY_OUTLIER_SHARE = 0.001

Source = str | Path | bytes | BinaryIO
_PILLOW_GUARD_LOCK = threading.Lock()
PART_SUFFIX = ".part"  # temporary files: .NAME.XXXXXXXX.part beside the output NAME
NEW_PART_GRACE_S = 5.0  # an empty temporary file this young may be a live run's that has not locked it yet
# whether atomic_write may replace an existing file; a context variable, so threads and tasks each
# keep their own (see keeping_existing_files)
_REPLACE_EXISTING: ContextVar[bool] = ContextVar("invgray_replace_existing", default=True)
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK})


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


# what a path is when it is not a regular file, as the user is told
_NOT_A_FILE = ((stat.S_ISDIR, "is a directory, expected an image file"),
               (stat.S_ISFIFO, "is a named pipe (FIFO), not a file; to read a stream, pipe it to stdin and give '-'"),
               (stat.S_ISCHR, "is a character device, not an image file"),
               (stat.S_ISBLK, "is a block device, not an image file"),
               (stat.S_ISSOCK, "is a socket, not an image file"))


def open_failure(path: Path, exc: OSError) -> str:
    """Why ``path`` could not be opened, in the user's words (``exc`` is what ``open`` raised)."""
    if exc.errno == errno.ENOENT:
        return "no such file" + (" (a symbolic link to a missing file)" if os.path.islink(path) else "")
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop (the link leads back to itself); fix or remove the link"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot open ({exc.strerror or exc})"


def open_input(path: Path) -> BinaryIO:
    """``path`` opened for reading, or a one-line error saying why not. Opened without blocking (a
    FIFO with no writer would wait for ever) and judged by the open handle, so the file read is the
    file checked."""
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, os.O_RDONLY | nonblocking)
    except OSError as exc:
        raise InvgrayError(f"{path}: {open_failure(path, exc)}") from None
    try:
        facts = os.fstat(fd)
        problem = next((why for test, why in _NOT_A_FILE if test(facts.st_mode)), None)
        if problem is None and facts.st_size == 0:
            problem = "file is empty"
        if problem is not None:
            raise InvgrayError(f"{path}: {problem}")
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _pixels(count: int) -> str:
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
                f"{name}: {width}x{height} ({_pixels(width * height)}) is over the {_pixels(max_pixels)} "
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


def format_for_path(path: str | Path) -> str:
    """Pillow format name for an output path's extension, or a one-line error."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise InvgrayError(f"{path}: cannot tell the image format from '{suffix or 'no extension'}'; use .png, .jpg, .webp, .tiff or .bmp")
    return fmt


def format_keeps_alpha(fmt: str) -> bool:
    return fmt.upper() in ALPHA_FORMATS


@contextmanager
def keeping_existing_files() -> Iterator[None]:
    """Within it (in this thread or task), writes to a path never replace a file: :func:`atomic_write`
    claims the name in one step or raises OutputExists. The CLI's promise without --force, kept
    where the name is finally taken, whichever codec function writes the file."""
    token = _REPLACE_EXISTING.set(False)
    try:
        yield
    finally:
        _REPLACE_EXISTING.reset(token)


def atomic_write(dest: str | Path, write_fn: Callable[[BinaryIO], None], replace: bool | None = None) -> None:
    """Call ``write_fn`` on a temporary file beside ``dest``, then put it in place: with ``replace``
    renamed over whatever is there; without, ``dest`` is claimed only while no file has that name, in
    one step (OutputExists otherwise), so of two runs racing for one name exactly one writes. ``replace``
    None: False inside :func:`keeping_existing_files`, else True.

    An error or interrupt leaves ``dest`` untouched and no temporary file behind; the temporary files
    for ``dest`` that killed runs left (SIGKILL, a power cut) are removed first.
    """
    replace = _REPLACE_EXISTING.get() if replace is None else replace
    dest = Path(dest)
    folder = dest.parent
    if not folder.is_dir():
        raise InvgrayError(f"{dest}: output folder {folder} does not exist")
    remove_stale_parts(dest)
    tmp, fd = _create_part(dest)
    try:
        _lock(fd, wait=True)  # held until the file is in place: a live run's file is never stale
        with os.fdopen(fd, "wb") as handle:
            write_fn(handle)
            handle.flush()
            os.fsync(handle.fileno())
            _put_in_place(tmp, dest, replace)
    except OSError as e:  # a full disk, a vanished folder
        tmp.unlink(missing_ok=True)
        raise InvgrayError(f"{dest}: cannot write ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_part(dest: Path) -> tuple[Path, int]:
    """A new temporary file ``.NAME.XXXXXXXX.part`` beside ``dest``: (its path, an open descriptor)."""
    while True:
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}{PART_SUFFIX}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except PermissionError:
            raise InvgrayError(f"{dest}: cannot write into {dest.parent} (permission denied)") from None
        except OSError as e:  # a read-only file system, ...: the user's to fix, not a bug
            raise InvgrayError(f"{dest}: cannot write ({e.strerror or e})") from None


def _put_in_place(tmp: Path, dest: Path, replace: bool) -> None:
    """Rename ``tmp`` onto ``dest``; without ``replace`` only where no file has that name, in one step
    (a hard link, or on file systems without them an O_EXCL claim of the name, then the rename)."""
    if replace:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise OutputExists(dest) from None
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        try:
            os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise OutputExists(dest) from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


def _lock(fd: int, wait: bool) -> bool:
    """Whether an exclusive lock on ``fd`` is now held: False where another process holds it (when
    not waiting) or the file system has no locks."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:  # held elsewhere, or no locks here (ENOLCK, EOPNOTSUPP)
        return False
    return True


def remove_stale_parts(dest: str | Path) -> list[Path]:
    """Remove the temporary files of ours for ``dest`` that no live run holds (their writer was
    killed); returns them. A live run locks its file from creation until it is in place."""
    dest = Path(dest)
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.[0-9a-f]{{8}}{re.escape(PART_SUFFIX)}")
    try:
        with os.scandir(dest.parent) as entries:
            candidates = [dest.parent / e.name for e in entries if pattern.fullmatch(e.name)]
    except OSError:
        return []
    return [path for path in candidates if _remove_if_stale(path)]


def _remove_if_stale(path: Path) -> bool:
    """Unlink ``path`` when it is a regular file nobody holds locked and not one just created (its
    writer may not have locked it yet); whether it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        facts = os.fstat(fd)
        just_created = facts.st_size == 0 and time.time() - facts.st_mtime < NEW_PART_GRACE_S
        if not stat.S_ISREG(facts.st_mode) or just_created or not _lock(fd, wait=False):
            return False
        if os.lstat(path).st_ino != facts.st_ino:
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


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
    _write(image, dest, "PNG", pnginfo=info)


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
    params = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    _write(image, dest, fmt, **params)


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

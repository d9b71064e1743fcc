"""Stage api: the Python API, rembg-style: ``encode``/``decode`` return the type they are given (bytes, a PIL
image or a uint8 array), and ``load_model`` gives a reusable codec. Each runs the codec's one encode
pipeline or one decode decision, as the command line does.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from invgray_cli.codec.decode import DecodeOptions, restore
from invgray_cli.codec.encode import encode_photos, held_warning
from invgray_cli.codec.files import decode_file, encode_file
from invgray_cli.codec.model_choice import chunk_mismatch_warning, codec_for_gray
from invgray_cli.codec.nets import Codec
from invgray_cli.io.images import DEFAULT_MAX_PIXELS, GrayImage, jpeg_comment_text, normalise_color, normalise_gray, png_text


def load_model(model: str | None = None, weights: str | Path | None = None, device: str = "auto",
               tile: int | None = None, precision: str = "auto") -> Codec:
    """A reusable codec; pass it to :func:`encode`/:func:`decode` to avoid reloading weights."""
    return Codec.load(model, weights, device=device, tile=tile, precision=precision)


def _split_array(array: np.ndarray, colour_channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    if array.ndim == 3 and array.shape[2] == colour_channels + 1:
        return array[:, :, :colour_channels], array[:, :, colour_channels]
    return array, None


def _join_array(main: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return main
    return np.dstack([main, alpha]) if main.ndim == 3 else np.dstack([main[:, :, None], alpha])


def _pil_with_alpha(main: np.ndarray, alpha: np.ndarray | None, mode: str) -> Image.Image:
    image = Image.fromarray(main, mode)
    if alpha is None:
        return image
    return Image.merge(mode + "A", (*image.split(), Image.fromarray(alpha, "L")))


def _warn(what: str, *notes: str | None) -> None:
    for note in notes:
        if note:
            warnings.warn(f"{what} {note}", stacklevel=3)


def encode(image: Image.Image | np.ndarray | bytes, codec: Codec | None = None, *, model: str | None = None,
           weights: str | Path | None = None, device: str = "auto", tile: int | None = None,
           max_pixels: int | None = DEFAULT_MAX_PIXELS, jpeg_safe: bool = False) -> Image.Image | np.ndarray | bytes:
    """Colour -> gray, returning the input's type.

    bytes (any image file) -> PNG bytes with the invgray chunk; PIL image -> mode L/LA image (chunk in
    ``.info``, pass ``pnginfo`` yourself or use the bytes form to keep it); uint8 HxWx3/HxWx4 array ->
    HxW/HxWx2 array. ``jpeg_safe`` adds the block code, so a JPEG of the gray keeps a coarse copy
    of the colour. A gray floor that weakened the hidden colour is said as a warning.
    """
    codec = codec or Codec.load(model, weights, device=device, tile=tile)
    if isinstance(image, (bytes, bytearray)):
        buffer = io.BytesIO()
        result = encode_file(bytes(image), buffer, codec, max_pixels=max_pixels, block_code=jpeg_safe)
        _warn("<bytes>", result.warning)
        return buffer.getvalue()
    if isinstance(image, Image.Image):
        colour = normalise_color(ImageOps.exif_transpose(image))  # as for files; returns a copy
        rgb, alpha = colour.rgb, colour.alpha
    elif isinstance(image, np.ndarray):
        rgb, alpha = _split_array(image, 3)
        if rgb.ndim == 2:  # gray input: same policy as files, R = G = B
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    else:
        raise TypeError(f"encode expects a PIL image, a numpy array or bytes, got {type(image).__name__}")
    encoded = encode_photos(codec, [rgb], jpeg_safe)[0]
    _warn("<image>", held_warning(encoded.strength, codec.info.gray_floor))
    if isinstance(image, np.ndarray):
        return _join_array(encoded.gray, alpha)
    out = _pil_with_alpha(encoded.gray, alpha, "L")
    out.info.update(codec.chunk_text(encoded.strength))
    return out


def decode(gray: Image.Image | np.ndarray | bytes, codec: Codec | None = None, *, model: str | None = None,
           weights: str | Path | None = None, device: str = "auto", tile: int | None = None,
           max_pixels: int | None = DEFAULT_MAX_PIXELS, format: str = "PNG", fallback: bool = True,
           search_frame: bool = False) -> Image.Image | np.ndarray | bytes:
    """Gray -> colour, returning the input's type (bytes -> ``format`` bytes, PNG by default).

    Without ``codec`` the model named in the gray's chunk is used (default model with a warning
    when a file or PIL image has none). A gray with no chunk and no readable code is colourised
    instead, or with ``fallback=False`` refused with InvgrayError. With ``search_frame``, a gray
    without a chunk (every array) is decoded in the frame of its code's grid found in it (a crop,
    mirror or turn of a gray made without the sync pattern; experimental).
    """
    options = DecodeOptions(fallback=fallback, search_frame=search_frame)
    load = dict(model=model, weights=weights, device=device, tile=tile)
    if isinstance(gray, (bytes, bytearray)):
        buffer = io.BytesIO()
        result = decode_file(bytes(gray), buffer, codec=codec, format=format, max_pixels=max_pixels, options=options,
                             **load)
        _warn("<bytes>", result.warning)
        return buffer.getvalue()
    if isinstance(gray, Image.Image):
        text = png_text(gray) or jpeg_comment_text(gray) or {k: v for k, v in gray.info.items() if isinstance(v, str)}
        image, text_known = normalise_gray(gray, text), True
    elif isinstance(gray, np.ndarray):
        main, alpha = _split_array(gray, 1)
        image, text_known = GrayImage(np.ascontiguousarray(main[:, :, 0] if main.ndim == 3 else main), alpha), False
    else:
        raise TypeError(f"decode expects a PIL image, a numpy array or bytes, got {type(gray).__name__}")
    text = image.text if text_known else None  # None: an array, which cannot carry a chunk
    if codec is None:
        codec, warning = codec_for_gray(text, **load)
    else:
        warning = chunk_mismatch_warning(text, codec.info)
    restored = restore(codec, image, options)
    _warn("<image>", warning if restored.coded else None, restored.warning)
    if isinstance(gray, np.ndarray):
        return _join_array(restored.rgb, image.alpha)
    return _pil_with_alpha(restored.rgb, image.alpha, "RGB")

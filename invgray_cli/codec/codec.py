"""Encode and decode on arrays, files and in-memory images.

A :class:`Codec` is a loaded model on a device with its dtype and tile size; it holds no
per-image state, so one instance serves many images (and threads). The gray PNG carries a
text chunk ``invgray`` = ``{"format", "model", "sha256", "version"}`` so decode can pick the
model that wrote it. Format 2 grays carry the sync pattern of sync_pattern.py (decode finds and removes
it), format 3 grays also its edge marks (decode tells every cut edge by them); format 1
grays (invgray < 0.2) have no pattern, and decode as before.
"""
from __future__ import annotations

import copy
import functools
import io
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import torch
from PIL import Image, ImageOps

from invgray_cli import __version__
from invgray_cli.codec.block_code import (LOWEST_KEEPING_QUALITY, MIN_MACROBLOCKS, BlockCodeReading, block_code_fits,
                        colour_from_block_code, embed_block_code, read_block_code)
from invgray_cli.devices import compute_dtype, dtype_for, exact_fp32, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.io.chunk import SHA_PREFIX_LENGTH, make_chunk, parse_chunk, has_edge_marks
from invgray_cli.io.images import (
    DEFAULT_MAX_PIXELS,
    GrayImage,
    Source,
    alpha_loss_warning,
    format_for_path,
    jpeg_comment_text,
    normalise_color,
    normalise_gray,
    png_text,
    read_color,
    read_gray,
    source_name,
    write_color,
    write_gray_jpeg,
    write_gray_png,
)
from invgray_cli.codec.frames import Frame, FrameChoice, find_frame, into_frame, out_of_frame, unorient
from invgray_cli.codec.guard import guarded_gray
from invgray_cli.models.detector import CODE_THRESHOLD, CodeDetector, CodeReading, read_code, shipped_detector
from invgray_cli.models.frame_judge import FrameJudge, shipped_frame_judge
from invgray_cli.models.net import EdgeDecoder, InvertibleGray, rgb_to_luma
from invgray_cli.models.zoo import (
    ModelInfo,
    default_model_name,
    find_entry,
    jpeg_model_name,
    resolve_model,
    shipped_edge_decoder,
    shipped_jpeg_decoder,
)
from invgray_cli.codec.sync_pattern import NOT_FOUND, SyncPatternReading, add_sync_pattern, find_sync_pattern, remove_sync_pattern
from invgray_cli.codec.tiling import MIN_TILE, ProgressFn, auto_tile_size, is_out_of_memory, run_tiled

# Lines beside a crop's cut edge that the edge decoder re-decodes: the band the shipped
# edge decoders were trained on (`invgray train --edge-band`); beyond it the model's own decoder errs no more.
EDGE_BAND = 20
Destination = str | Path | BinaryIO


def _quantise(values: torch.Tensor) -> torch.Tensor:
    """[0,1] float -> uint8 by rounding value * 255 and clamping."""
    return torch.round(values * 255.0).clamp_(0, 255).to(torch.uint8)


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """A zero-copy tensor view; read-only arrays (from Pillow) are fine since nothing writes to it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def _check_array(array: np.ndarray, channels: int, what: str) -> None:
    shape_ok = array.ndim == 2 if channels == 1 else (array.ndim == 3 and array.shape[2] == channels)
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or not shape_ok or 0 in array.shape:
        wanted = "HxW" if channels == 1 else f"HxWx{channels}"
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(f"{what} must be a non-empty uint8 {wanted} array, got {got}")


@dataclass(frozen=True, eq=False)
class Codec:
    """A loaded model, the device and dtype it runs in, and the tile edge (None = whole image);
    ``autocast`` is the reduced precision the nets compute in (None: fp32)."""

    model: InvertibleGray
    info: ModelInfo
    device: torch.device
    dtype: torch.dtype
    tile: int | None
    autocast: torch.dtype | None = None
    detector: CodeDetector | None = None  # None: the shipped one for this model, if any (see detector.py)
    frame_judge: FrameJudge | None = None  # None: the shipped one for this model, if any (see grid.py)
    sync_pattern: bool = True  # encode adds the sync pattern and decode looks for it (sync_pattern.py); False: the nets alone
    edge_decoder: EdgeDecoder | None = None  # None: the shipped one for this model, if any
    edge_decoding: bool = True  # False: every line decoded by the model's own decoder (a crop's cut blocks mended)

    @classmethod
    def load(
        cls,
        model: str | None = None,
        weights: str | Path | None = None,
        device: str = "auto",
        tile: int | None = None,
        precision: str = "auto",
    ) -> "Codec":
        """Shipped ``model`` (default: the first registered) or a ``weights`` file; ``tile``
        None = automatic for the device, 0 = whole image in one pass; ``precision`` auto (fp16 on
        CUDA, fp32 on CPU), fp32 or fp16."""
        net, info = resolve_model(model, weights)
        return cls.from_model(net, info, device=device, tile=tile, precision=precision)

    @classmethod
    def from_model(cls, net: InvertibleGray, info: ModelInfo, device: str = "auto", tile: int | None = None,
                   precision: str = "auto") -> "Codec":
        """Wrap an in-memory net (moved to the device in place), e.g. a random one for benchmarks."""
        torch_device = resolve_device(device)
        dtype = dtype_for(torch_device)
        autocast = compute_dtype(precision, torch_device)
        exact_fp32(torch_device)
        if tile is not None and tile < 0:
            raise InvgrayError(f"tile size must be positive (or 0 for the whole image), got {tile}")
        tile_edge = auto_tile_size(torch_device) if tile is None else (tile or None)
        net = net.to(device=torch_device, dtype=dtype).eval().requires_grad_(False)
        return cls(net, info, torch_device, dtype, tile_edge, autocast)

    @property
    def precision(self) -> str:
        """What the nets compute in, as --precision names it."""
        return "fp16" if self.autocast == torch.float16 else "fp32"

    def with_tile(self, tile: int | None) -> "Codec":
        """The same loaded model with another tile edge (None = whole image)."""
        return replace(self, tile=tile)

    def with_sync_pattern(self, on: bool) -> "Codec":
        """The same model with the sync pattern on or off (off: grays as the nets make them)."""
        return replace(self, sync_pattern=on)

    def with_gray_floor(self, floor: float | None) -> "Codec":
        """The same model holding its grays to another floor (see guard.py); 0 or None: off."""
        return replace(self, info=replace(self.info, gray_floor=floor or None))

    def chunk_text(self) -> dict[str, str]:
        return make_chunk(self.info.name, self.info.sha256)

    def _run(self, fn, image: torch.Tensor, halo: int, out_channels: int, quantise: bool, on_tile: ProgressFn | None):
        try:
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.autocast or torch.float16,
                                                        enabled=self.autocast is not None):
                return run_tiled(
                    fn, image, divisibility=self.model.divisibility, halo=halo, tile=self.tile, device=self.device,
                    dtype=self.dtype, out_channels=out_channels, on_tile=on_tile,
                    postprocess=_quantise if quantise else None, out_dtype=torch.uint8 if quantise else torch.float32,
                )
        except RuntimeError as exc:  # torch.OutOfMemoryError included
            if not is_out_of_memory(exc):
                raise
            advice = "use --device cpu" if self.device.type == "cuda" else "free some memory"
            raise InvgrayError(f"out of memory on {self.device} even with {MIN_TILE}-pixel tiles; {advice}") from None

    def _encode(self, rgb: np.ndarray, quantise: bool, on_tile: ProgressFn | None) -> torch.Tensor:
        _check_array(rgb, 3, "rgb")
        return self._encode_stack(_as_tensor(rgb).permute(2, 0, 1).unsqueeze(0), quantise, on_tile)[0, 0]

    def _encode_stack(self, images: torch.Tensor, quantise: bool, on_tile: ProgressFn | None) -> torch.Tensor:
        """uint8 (B,3,H,W) -> (B,1,H,W) grays, uint8 or float in [0,1]."""
        model = self.model
        return self._run(lambda t: model.encode(t / 255.0).float(), images, model.encoder_receptive_field, 1,
                         quantise, on_tile)

    def encode_array(self, rgb: np.ndarray, on_tile: ProgressFn | None = None) -> np.ndarray:
        """uint8 HxWx3 colour -> uint8 HxW gray (held to the model's gray floor, see guard.py)."""
        return self.encode_held(rgb, on_tile)[0]

    def encode_held(self, rgb: np.ndarray, on_tile: ProgressFn | None = None) -> tuple[np.ndarray, float]:
        """``encode_array`` and the strength the gray floor left the hidden pattern (1 = untouched)."""
        if self.info.gray_floor is None:
            return self._finished(self._encode(rgb, True, on_tile).numpy()), 1.0
        gray, strength = guarded_gray(rgb, self._encode(rgb, False, on_tile), self.info.gray_floor)
        return self._finished(gray.numpy()), strength

    def _finished(self, gray: np.ndarray) -> np.ndarray:
        """The gray as it is stored: with the sync pattern, unless this codec has it off."""
        return add_sync_pattern(gray) if self.sync_pattern else gray

    def encode_float(self, rgb: np.ndarray, on_tile: ProgressFn | None = None) -> np.ndarray:
        """uint8 HxWx3 colour -> float32 HxW gray in [0,1], before 8-bit quantisation."""
        return self._encode(rgb, False, on_tile).numpy()

    def decode_array(self, gray: np.ndarray, on_tile: ProgressFn | None = None) -> np.ndarray:
        """uint8 HxW gray -> uint8 HxWx3 colour. A gray with the sync pattern is decoded on its
        code's grid (a crop, mirror or turn undone) with the pattern taken out."""
        return self.decode_located(gray, self.locate(gray), on_tile)

    def locate(self, gray: np.ndarray, edge_marks: bool = True) -> SyncPatternReading:
        """Where the sync pattern of a uint8 HxW gray lies (NOT_FOUND when this codec has it off),
        and with ``edge_marks`` (see :func:`has_edge_marks`) which of its edges were cut."""
        _check_array(gray, 1, "gray")
        return find_sync_pattern(gray, self.model.divisibility, edge_marks) if self.sync_pattern else NOT_FOUND

    def decode_located(self, gray: np.ndarray, reading: SyncPatternReading, on_tile: ProgressFn | None = None) -> np.ndarray:
        """``decode_array`` with the pattern's ``reading`` given: when found, taken out and decoded
        in its frame; else the gray is decoded as it comes."""
        if not reading.found:
            return self._decode_plain(gray, on_tile)
        return self.decode_in_frame(remove_sync_pattern(gray, reading), reading.frame, on_tile)

    def _decode_plain(self, gray: np.ndarray, on_tile: ProgressFn | None) -> np.ndarray:
        _check_array(gray, 1, "gray")
        return self._decode_stack(_as_tensor(gray)[None, None], on_tile)[0]

    def _decode_stack(self, grays: torch.Tensor, on_tile: ProgressFn | None,
                      net: InvertibleGray | None = None) -> list[np.ndarray]:
        model = net or self.model
        out = self._run(lambda t: model.decode(t / 255.0).float().clamp_(0.0, 1.0), grays, model.decoder_receptive_field,
                        3, True, on_tile)
        return [image.permute(1, 2, 0).numpy() for image in out]  # channels-last storage: contiguous views

    def encode_batch(self, photos: list[np.ndarray]) -> list[np.ndarray]:
        """``encode_array`` of each photo; photos of one size run through the net together (one
        batch per tile), which is what keeps a GPU busy."""
        for rgb in photos:
            _check_array(rgb, 3, "rgb")
        grays: list[np.ndarray | None] = [None] * len(photos)
        for indices in _same_size_groups(photos):
            stack = torch.stack([_as_tensor(photos[i]).permute(2, 0, 1) for i in indices])
            held = self.info.gray_floor is not None
            out = self._encode_stack(stack, not held, None)
            for i, gray in zip(indices, out[:, 0]):
                grays[i] = self._finished((guarded_gray(photos[i], gray, self.info.gray_floor)[0] if held else gray).numpy())
        return grays

    def decode_batch(self, grays: list[np.ndarray]) -> list[np.ndarray]:
        """``decode_array`` of each gray; grays of one size that lie on their grid (as most do) run
        through the net together."""
        readings = [self.locate(gray) for gray in grays]
        colours: list[np.ndarray | None] = [None] * len(grays)
        on_grid: list[np.ndarray | None] = [None] * len(grays)
        for i, (gray, reading) in enumerate(zip(grays, readings)):
            if reading.found and not reading.frame.is_identity:
                colours[i] = self.decode_located(gray, reading)
            else:
                on_grid[i] = remove_sync_pattern(gray, reading) if reading.found else gray
        waiting = [i for i, gray in enumerate(on_grid) if gray is not None]
        for group in _same_size_groups([on_grid[i] for i in waiting]):
            indices = [waiting[k] for k in group]
            stack = torch.stack([_as_tensor(on_grid[i])[None] for i in indices])
            for i, rgb in zip(indices, self._decode_stack(stack, None)):
                colours[i] = rgb
        return colours

    def read_code(self, gray: np.ndarray) -> CodeReading | None:
        """Whether a uint8 HxW gray carries this model's code; None when this model has no detector
        or the gray is too small to tell."""
        _check_array(gray, 1, "gray")
        detector = self.detector or shipped_detector(self.info.sha256)
        return None if detector is None else read_code(detector, gray)

    def find_frame(self, gray: np.ndarray) -> FrameChoice:
        """The frame in which a uint8 HxW gray that may have been cropped, mirrored or turned decodes
        (see grid.py); the gray as it comes when this model has no frame judge."""
        _check_array(gray, 1, "gray")
        judge = self.frame_judge or shipped_frame_judge(self.info.sha256)
        with torch.autocast(self.device.type, dtype=self.autocast or torch.float16, enabled=self.autocast is not None):
            return find_frame(self.model, judge, gray)

    def decode_in_frame(self, gray: np.ndarray, frame: Frame, on_tile: ProgressFn | None = None) -> np.ndarray:
        """``decode_array`` of the gray brought onto its grid by ``frame``; the colour comes back
        in the gray's own frame. Where this model has an edge decoder, it decodes the lines beside
        a cut top or left edge off the grid again, and beside any cut edge if it serves every cut."""
        edge = self._edge_decoder() if frame.is_cut else None  # loaded only when an edge was cut
        if frame.is_identity:
            return self._decode_plain(gray, on_tile)
        writable = torch.from_numpy(np.array(gray))  # gray may be read-only or reversed
        framed = into_frame(writable, frame, self.model.divisibility).contiguous().numpy()
        colour = torch.from_numpy(self._decode_plain(framed, on_tile)).permute(2, 0, 1).float()
        if edge is None:
            colour = _mend_cut_blocks(colour, frame, self.model.divisibility)
        else:
            colour = self._decode_edges(colour, framed, frame, edge)
        return np.ascontiguousarray(out_of_frame(colour, frame).round().byte().permute(1, 2, 0).numpy())

    def with_edge_decoding(self, on: bool) -> "Codec":
        """The same model with its edge decoder (when it has one) used or not."""
        return replace(self, edge_decoding=on)

    def _edge_decoder(self) -> EdgeDecoder | None:
        if not self.edge_decoding:
            return None
        if self.edge_decoder is not None:
            return replace(self.edge_decoder, net=self.edge_decoder.net.to(device=self.device, dtype=self.dtype))
        return _edge_decoder_on(self.info.sha256, self.device, self.dtype)

    def _decode_edges(self, colour: torch.Tensor, framed: np.ndarray, frame: Frame, edge: EdgeDecoder) -> torch.Tensor:
        """(3,H,W) colour of the ``framed`` gray with the lines within EDGE_BAND px of a cut top or
        left edge off the grid (the padded lines before it too), and when ``edge`` serves every cut
        (``all_cuts``) of any cut edge, decoded again by ``edge`` from strips that reach its
        receptive field beyond them. The model's decoder errs there for ~16 px: it learned the
        encoder's own edges, and a crop's edge lacks what the encoder saw beyond it."""
        reach = edge.net.decoder_receptive_field
        block = self.model.divisibility
        top, left, bottom, right = frame.cut_edges
        for axis, offset, start_cut, end_cut in ((1, frame.offset_y, top, bottom), (2, frame.offset_x, left, right)):
            lines = colour.shape[axis]
            if offset or (start_cut and edge.all_cuts):
                strip_end = min(lines, offset + EDGE_BAND + reach)
                redone = self._decode_lines(framed, axis, 0, strip_end, edge).narrow(axis, 0, min(offset + EDGE_BAND, strip_end))
                colour = torch.cat([redone, colour.narrow(axis, redone.shape[axis], lines - redone.shape[axis])], dim=axis)
            if end_cut and edge.all_cuts:
                strip_start = max(lines - EDGE_BAND - reach, 0) // block * block  # on the grid
                kept = max(lines - EDGE_BAND, 0)
                redone = self._decode_lines(framed, axis, strip_start, lines, edge).narrow(axis, kept - strip_start, lines - kept)
                colour = torch.cat([colour.narrow(axis, 0, kept), redone], dim=axis)
        return colour

    def _decode_lines(self, framed: np.ndarray, axis: int, start: int, end: int, edge: EdgeDecoder) -> torch.Tensor:
        """(3, ...) colour the edge decoder gives lines ``start:end`` of the framed gray along ``axis`` (1: rows)."""
        strip = framed[start:end] if axis == 1 else framed[:, start:end]
        decoded = self._decode_stack(_as_tensor(np.ascontiguousarray(strip))[None, None], None, edge.net)[0]
        return torch.from_numpy(decoded).permute(2, 0, 1).float()


@functools.lru_cache(maxsize=4)
def _edge_decoder_on(model_sha256: str, device: torch.device, dtype: torch.dtype) -> EdgeDecoder | None:
    """The shipped edge decoder for a codec model, on a codec's device and dtype (a copy per place)."""
    edge = shipped_edge_decoder(model_sha256)
    return None if edge is None else replace(edge, net=copy.deepcopy(edge.net).to(device=device, dtype=dtype))


def _mend_cut_blocks(colour: torch.Tensor, frame: Frame, divisibility: int) -> torch.Tensor:
    """(3,H,W) colour decoded in ``frame``: the real lines of the blocks the crop cut (the rest of
    each is padding copied from the next block, so their chroma is unreliable) take the chroma of
    the first whole block's first line, keeping their own luma."""
    for axis, offset in ((1, frame.offset_y), (2, frame.offset_x)):
        if offset == 0 or colour.shape[axis] <= divisibility:
            continue
        cut = colour.narrow(axis, offset, divisibility - offset)
        whole = colour.narrow(axis, divisibility, 1)
        luma_change = rgb_to_luma(cut[None])[0] - rgb_to_luma(whole[None])[0]
        mended = (whole + luma_change).clamp(0.0, 255.0)
        colour = torch.cat([colour.narrow(axis, 0, offset), mended,
                            colour.narrow(axis, divisibility, colour.shape[axis] - divisibility)], dim=axis)
    return colour


def _same_size_groups(arrays: list[np.ndarray]) -> list[list[int]]:
    """Indices of ``arrays`` grouped by height and width, in first-seen order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, array in enumerate(arrays):
        groups.setdefault(array.shape[:2], []).append(index)
    return list(groups.values())


def held_warning(strength: float, floor: float | None) -> str | None:
    """What the user hears when the gray floor weakened an image's hidden colour."""
    if strength >= 1.0:
        return None
    return (f"hidden colour weakened to {strength:.2f} of the model's to keep the gray plain (gray floor {floor}); "
            "its colour comes back less saturated (--gray-floor 0 keeps it)")


# ---- choosing the model for a gray -------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Which weights to load (hashable, so callers can cache one Codec per spec)."""

    name: str | None = None
    weights: Path | None = None


NO_CHUNK_WARNING = "has no invgray chunk (re-saved by another tool, or not made by invgray encode); decoding with {model}"
DEFAULT_JPEG_QUALITY = 90


def model_for_jpeg() -> str | None:
    """The shipped model JPEG grays are written and read with: the JPEG-trained one, else the default."""
    return jpeg_model_name() or default_model_name()


def choose_model(
    text: dict[str, str] | None, model: str | None = None, weights: str | Path | None = None, jpeg: bool = False
) -> tuple[ModelSpec, str | None]:
    """The weights to decode a gray with, and a warning for the user (or None).

    Explicit ``weights``/``model`` win; else the model named in the chunk (its sha256 prefix must
    match the shipped file); else the default model (the JPEG one for a ``jpeg`` gray), with a
    warning. ``text`` None means the input could not carry a chunk (a bare array): no warning then.
    """
    chunk = parse_chunk(text) if text is not None else None
    if weights is not None:
        spec = ModelSpec(weights=Path(weights))
    elif model is not None:
        spec = ModelSpec(name=model)
    elif chunk is not None:
        try:
            entry = find_entry(chunk.model)
        except InvgrayError:
            raise InvgrayError(
                f"the gray was encoded with model '{chunk.model}', which this invgray does not ship; "
                "pass --weights PATH to its weights file"
            ) from None
        if not entry.sha256.startswith(chunk.sha256):
            raise InvgrayError(
                f"the gray was encoded with '{chunk.model}' weights {chunk.sha256}, but the shipped ones are "
                f"{entry.sha256[:SHA_PREFIX_LENGTH]}; pass --weights PATH to the matching file"
            )
        return ModelSpec(name=chunk.model), None
    else:
        default = model_for_jpeg() if jpeg else default_model_name()
        if default is None:
            raise InvgrayError("no shipped weights; pass --weights PATH")
        spec = ModelSpec(name=default)
    if text is not None and chunk is None:
        return spec, NO_CHUNK_WARNING.format(model=spec.name and f"model '{spec.name}'" or f"weights {spec.weights}")
    return spec, None


def chunk_mismatch_warning(text: dict[str, str] | None, info: ModelInfo) -> str | None:
    """A warning when the gray's chunk names other weights than the ones about to decode it."""
    chunk = parse_chunk(text) if text is not None else None
    if chunk is None or info.sha256.startswith(chunk.sha256):
        return None
    return (
        f"was encoded with '{chunk.model}' ({chunk.sha256}) but is decoded with '{info.name}' "
        f"({info.sha256[:SHA_PREFIX_LENGTH]}); colours may be wrong"
    )


def codec_for_gray(
    text: dict[str, str] | None,
    weights: str | Path | None = None,
    device: str = "auto",
    tile: int | None = None,
    model: str | None = None,
    jpeg: bool = False,
    precision: str = "auto",
) -> tuple[Codec, str | None]:
    """Load the codec that should decode a gray with PNG ``text``; returns (codec, warning or None)."""
    spec, warning = choose_model(text, model=model, weights=weights, jpeg=jpeg)
    codec = Codec.load(spec.name, spec.weights, device=device, tile=tile, precision=precision)
    return codec, warning or chunk_mismatch_warning(text, codec.info)


# ---- a gray with or without its code ------------------------------------------------------------

NO_CODE_WARNING = ("carries no colour code that invgray can read (confidence {confidence:.2f}): re-compressed, "
                   "resized, or not made by invgray")
BLOCK_CODE_NOTE = ("has lost its fine colour code (re-compressed, or re-saved by another tool); restored from its "
                   "JPEG-safe block code: coarser colour")  # not said of the JPEG grays invgray writes
MOVED_WARNING = "was {what} after encoding: decoded on its code's grid (judge's probability {probability:.0%})"
PATTERN_MOVED_WARNING = "was {what} after encoding: decoded on its code's grid, found by its sync pattern"


@dataclass(frozen=True)
class Restored:
    rgb: np.ndarray
    model: str  # what made the colours: the codec model, or the colouriser it fell back to
    warning: str | None
    coded: bool  # False: the gray carried no code (the warning says what was done instead)


def fallback_colorizer(device: torch.device):
    """The shipped colouriser on ``device`` for grays without a code, or None if none ships."""
    from invgray_cli.colorize.session import COLORIZERS

    return _load_colorizer(str(device)) if COLORIZERS else None


@functools.lru_cache(maxsize=2)
def _load_colorizer(device: str):
    from invgray_cli.colorize.session import ColorizerCodec

    return ColorizerCodec.load(device=device)


def as_encoded(gray: np.ndarray, reading: SyncPatternReading) -> np.ndarray:
    """The gray as the detector was trained to read it: the sync pattern out, the orientation undone."""
    if not reading.found:
        return gray
    return np.ascontiguousarray(unorient(torch.from_numpy(remove_sync_pattern(gray, reading)), reading.frame.orientation).numpy())


def locate_pattern(gray: GrayImage) -> SyncPatternReading:
    """The sync pattern of a gray read from a file (with edge marks unless its chunk says none)."""
    return find_sync_pattern(gray.gray, edge_marks=has_edge_marks(parse_chunk(gray.text)))


def code_reading(gray: GrayImage, pattern: SyncPatternReading | None = None) -> tuple[str, CodeReading] | None:
    """(model, reading) for a gray as decode would see it, without loading the codec; None when
    the model decode would use is unknown or has no detector, or the gray is too small to tell.
    ``pattern``: its sync pattern's reading, when the caller has it."""
    try:
        spec, _ = choose_model(gray.text, jpeg=gray.jpeg)
    except InvgrayError:
        return None
    if spec.name is None:
        return None
    detector = shipped_detector(find_entry(spec.name).sha256)
    if detector is None:
        return None
    reading = read_code(detector, as_encoded(gray.gray, pattern if pattern is not None else locate_pattern(gray)))
    return None if reading is None else (spec.name, reading)


def _from_block_code(gray: np.ndarray, blocks: BlockCodeReading, codec: Codec, note: str | None,
                     pattern: SyncPatternReading | None = None, on_tile: ProgressFn | None = None) -> Restored:
    """The colour of a gray's block code, through the codec model's JPEG decoder where one ships
    (given the codec's decode of the gray, in the frame of ``pattern`` when the caller has found it)."""
    decoder = shipped_jpeg_decoder(codec.info.sha256)
    fine = None
    if decoder is not None and decoder.needs_fine:
        fine = codec.decode_located(gray, pattern if pattern is not None else codec.locate(gray), on_tile)
    return Restored(colour_from_block_code(gray, blocks, decoder, fine), codec.info.name, note, True)


def restore(gray: np.ndarray, codec: Codec, has_chunk: bool, fallback: bool = True,
            on_tile: ProgressFn | None = None, search_frame: bool = False, edge_marks: bool = True,
            lossy: bool = False) -> Restored:
    """Decode a uint8 HxW gray. A gray with the sync pattern (sync_pattern.py) is decoded on its code's
    grid, so a crop, mirror or turn costs nothing but a line on stderr. A ``lossy`` one (a JPEG under
    quality FINE_CODE_JPEG_QUALITY), or one whose fine code is gone, is restored from its block code
    (blockcode.py) where it has one. One with neither an invgray chunk nor a readable code is colourised instead
    (``fallback``; decoded with a warning when no colouriser ships) or, without ``fallback``,
    refused. With ``search_frame``, one without a chunk or a pattern (made before the pattern
    existed) is decoded in the frame :meth:`Codec.find_frame` finds (off by default: on smooth
    content that search errs, see README). ``edge_marks``: the pattern may carry them (see
    :func:`has_edge_marks`)."""
    if lossy and (blocks := read_block_code(gray)).found:  # a JPEG's fine code is gone: no need to look
        return _from_block_code(gray, blocks, codec, None if has_chunk else BLOCK_CODE_NOTE, on_tile=on_tile)
    reading = codec.locate(gray, edge_marks)
    code = None if has_chunk else codec.read_code(as_encoded(gray, reading))  # a chunk says invgray wrote it
    code_gone = code is not None and code.confidence < CODE_THRESHOLD
    if code_gone and not lossy and (blocks := read_block_code(gray)).found:
        return _from_block_code(gray, blocks, codec, BLOCK_CODE_NOTE, reading, on_tile)
    if code_gone:
        note = NO_CODE_WARNING.format(confidence=code.confidence)
        if not fallback:
            raise InvgrayError(f"{note}; not decoded (--no-fallback)")
        colouriser = fallback_colorizer(codec.device)
        if colouriser is not None:
            return Restored(colouriser.colorize_array(gray), colouriser.name,
                            f"{note}; colourised by '{colouriser.name}' instead", False)
        return Restored(codec.decode_located(gray, reading, on_tile), codec.info.name,
                        f"{note}; decoded with '{codec.info.name}' anyway: its colours are guesses "
                        "(this invgray ships no colouriser)", False)
    if reading.found:
        note = None if reading.frame.is_identity else PATTERN_MOVED_WARNING.format(what=reading.frame.describe())
        return Restored(codec.decode_located(gray, reading, on_tile), codec.info.name, note, True)
    choice = codec.find_frame(gray) if search_frame and not has_chunk else None
    if choice is None or choice.frame.is_identity:
        return Restored(codec.decode_located(gray, reading, on_tile), codec.info.name, None, True)
    note = MOVED_WARNING.format(what=choice.frame.describe(), probability=choice.probability)
    return Restored(codec.decode_in_frame(gray, choice.frame, on_tile), codec.info.name, note, True)


# ---- files --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    width: int
    height: int
    alpha: bool
    model: str
    warning: str | None = None  # for the user: what was lost or assumed ("; "-joined)


def _joined(*warnings: str | None) -> str | None:
    return "; ".join(w for w in warnings if w) or None


def encode_file(
    source: Source, dest: Destination, codec: Codec, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
    on_tile: ProgressFn | None = None, jpeg_quality: int | None = None, block_code: bool | None = None,
) -> FileResult:
    """Read a photo, encode it and write the gray (atomically when ``dest`` is a path): a PNG, or
    with ``jpeg_quality`` a JPEG (no alpha) carrying the model in its comment. ``block_code`` (by
    default: for a JPEG) adds the JPEG-safe coarse colour (blockcode.py)."""
    colour = read_color(source, max_pixels)
    gray, strength = codec.encode_held(colour.rgb, on_tile)
    with_code = block_code if block_code is not None else jpeg_quality is not None
    if with_code:
        gray = embed_block_code(gray, colour.rgb)
    if jpeg_quality is not None:
        write_gray_jpeg(gray, codec.chunk_text(), dest, jpeg_quality)
    else:
        write_gray_png(gray, colour.alpha, codec.chunk_text(), dest)
    animation = None if colour.pages == 1 else f"an animation of {colour.pages} frames: only the first is encoded"
    alpha_dropped = ("a JPEG gray has no transparency: the alpha is dropped; write .png to keep it"
                     if jpeg_quality is not None and colour.alpha is not None else None)
    unreadable = with_code and (not block_code_fits(*gray.shape) or (jpeg_quality or 100) < LOWEST_KEEPING_QUALITY)
    code_lost = (f"too small (under {MIN_MACROBLOCKS} blocks of 16 px) or too low a JPEG quality (under "
                 f"{LOWEST_KEEPING_QUALITY}) for its block code: a JPEG of it keeps no colour" if unreadable else None)
    return FileResult(gray.shape[1], gray.shape[0], colour.alpha is not None and jpeg_quality is None, codec.info.name,
                      _joined(animation, held_warning(strength, codec.info.gray_floor), alpha_dropped, code_lost))


def decode_file(
    source: Source, dest: Destination, *, codec: Codec | None = None, format: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS, on_tile: ProgressFn | None = None,
    model: str | None = None, weights: str | Path | None = None, device: str = "auto", tile: int | None = None,
    precision: str = "auto", choose: Callable[[GrayImage], tuple[Codec, str | None]] | None = None,
    fallback: bool = True, search_frame: bool = False,
) -> FileResult:
    """Read a gray, decode it and write the colour image (format from ``format`` or the extension).

    The codec: ``codec`` if given; else ``choose(gray)`` (e.g. a caller's cache of loaded models);
    else the one the gray's chunk names (see :func:`choose_model`). The returned warning is for
    the user (the CLI prints it on stderr).
    """
    gray = read_gray(source, max_pixels)
    if codec is not None:
        warning = chunk_mismatch_warning(gray.text, codec.info)
        if warning is None and parse_chunk(gray.text) is None:
            warning = NO_CHUNK_WARNING.format(model=f"model '{codec.info.name}'")
    elif choose is not None:
        codec, warning = choose(gray)
    else:
        codec, warning = codec_for_gray(gray.text, weights=weights, device=device, tile=tile, model=model,
                                        jpeg=gray.jpeg, precision=precision)
    chunk = parse_chunk(gray.text)
    try:
        restored = restore(gray.gray, codec, chunk is not None, fallback, on_tile, search_frame, has_edge_marks(chunk),
                           gray.lossy)
    except InvgrayError as exc:  # refused: say which gray
        raise InvgrayError(f"{source_name(source)}: {exc}") from None
    fmt = (format or (format_for_path(dest) if isinstance(dest, (str, Path)) else "PNG")).upper()
    write_color(restored.rgb, gray.alpha, dest, fmt)
    return FileResult(restored.rgb.shape[1], restored.rgb.shape[0], gray.alpha is not None, restored.model,
                      _joined(warning if restored.coded else None, restored.warning, alpha_loss_warning(gray.alpha, fmt)))


# ---- rembg-style API: same type out as in ------------------------------------------------------


def load_model(model: str | None = None, weights: str | Path | None = None, device: str = "auto", tile: int | None = None) -> Codec:
    """A reusable codec; pass it to :func:`encode`/:func:`decode` to avoid reloading weights."""
    return Codec.load(model, weights, device=device, tile=tile)


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


def encode(
    image: Image.Image | np.ndarray | bytes, codec: Codec | None = None, *, model: str | None = None,
    weights: str | Path | None = None, device: str = "auto", tile: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS, jpeg_safe: bool = False,
) -> Image.Image | np.ndarray | bytes:
    """Colour -> gray, returning the input's type.

    bytes (any image file) -> PNG bytes with the invgray chunk; PIL image -> mode L/LA image (chunk in
    ``.info``, pass ``pnginfo`` yourself or use the bytes form to keep it); uint8 HxWx3/HxWx4 array ->
    HxW/HxWx2 array. ``jpeg_safe`` adds the block code (blockcode.py), so a JPEG of the gray keeps
    a coarse copy of the colour.
    """
    codec = codec or Codec.load(model, weights, device=device, tile=tile)

    def gray_of(rgb: np.ndarray) -> np.ndarray:
        gray = codec.encode_array(rgb)
        return embed_block_code(gray, rgb) if jpeg_safe else gray

    if isinstance(image, (bytes, bytearray)):
        buffer = io.BytesIO()
        result = encode_file(bytes(image), buffer, codec, max_pixels=max_pixels, block_code=jpeg_safe)
        if result.warning:
            warnings.warn(f"<bytes> {result.warning}", stacklevel=2)
        return buffer.getvalue()
    if isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)  # as for files; returns a copy
        colour = normalise_color(image)
        out = _pil_with_alpha(gray_of(colour.rgb), colour.alpha, "L")
        out.info.update(codec.chunk_text())
        return out
    if isinstance(image, np.ndarray):
        rgb, alpha = _split_array(image, 3)
        if rgb.ndim == 2:  # gray input: same policy as files, R = G = B
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        return _join_array(gray_of(rgb), alpha)
    raise TypeError(f"encode expects a PIL image, a numpy array or bytes, got {type(image).__name__}")


def decode(
    gray: Image.Image | np.ndarray | bytes, codec: Codec | None = None, *, model: str | None = None,
    weights: str | Path | None = None, device: str = "auto", tile: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS, format: str = "PNG", fallback: bool = True,
    search_frame: bool = False,
) -> Image.Image | np.ndarray | bytes:
    """Gray -> colour, returning the input's type (bytes -> ``format`` bytes, PNG by default).

    Without ``codec`` the model named in the gray's chunk is used (default model with a warning
    when a file or PIL image has none). A gray with no chunk and no readable code is colourised
    instead (see :func:`restore`), or with ``fallback=False`` refused with InvgrayError. With
    ``search_frame``, a gray without a chunk (every array) is decoded in the frame of its code's
    grid found in it (a crop, mirror or turn undone; experimental, see README).
    """
    if isinstance(gray, (bytes, bytearray)):
        buffer = io.BytesIO()
        result = decode_file(bytes(gray), buffer, codec=codec, format=format, max_pixels=max_pixels,
                             model=model, weights=weights, device=device, tile=tile, fallback=fallback,
                             search_frame=search_frame)
        if result.warning:
            warnings.warn(f"<bytes> {result.warning}", stacklevel=2)
        return buffer.getvalue()
    jpeg = lossy = False
    if isinstance(gray, Image.Image):
        text = png_text(gray) or jpeg_comment_text(gray) or {k: v for k, v in gray.info.items() if isinstance(v, str)}
        data = normalise_gray(gray, text)
        main, alpha, text, jpeg, lossy = data.gray, data.alpha, data.text, data.jpeg, data.lossy
    elif isinstance(gray, np.ndarray):
        main, alpha = _split_array(gray, 1)
        main = main[:, :, 0] if main.ndim == 3 else main
        text = None
    else:
        raise TypeError(f"decode expects a PIL image, a numpy array or bytes, got {type(gray).__name__}")
    if codec is None:
        codec, warning = codec_for_gray(text, weights=weights, device=device, tile=tile, model=model, jpeg=jpeg)
    else:
        warning = chunk_mismatch_warning(text, codec.info)
    chunk = None if text is None else parse_chunk(text)
    restored = restore(np.ascontiguousarray(main), codec, chunk is not None, fallback, search_frame=search_frame,
                       edge_marks=has_edge_marks(chunk), lossy=lossy)
    for note in (warning if restored.coded else None, restored.warning):
        if note:
            warnings.warn(f"<image> {note}", stacklevel=2)
    rgb = restored.rgb
    if isinstance(gray, np.ndarray):
        return _join_array(rgb, alpha)
    return _pil_with_alpha(rgb, alpha, "RGB")

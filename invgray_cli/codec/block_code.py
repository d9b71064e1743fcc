"""The block code: a coarse copy of the colours that survives JPEG, hidden in a gray's 8x8 DCT.

The hidden carriers of the codec's nets sit at fine pixel frequencies, which JPEG throws away. The
block code writes, for each 16x16 macroblock, the photo's mean BT.601 Cb and Cr (5 bits each, on
levels that are fine near gray and coarse at full saturation, ``chroma_levels``) and
one (odd) parity bit per value into three of the lowest AC coefficients of its four 8x8 blocks (the JPEG
blocks, when the gray is written as a JPEG from its top-left corner). Each bit is the parity of a
coefficient quantised on a lattice of ``LATTICE_MARGIN`` times JPEG quality 75's step for that
coefficient (quantisation index modulation, Chen and Wornell 2001), so the coefficient moves by at
most one lattice step, and a JPEG of quality 75 or better (re-saves included) moves it by less than
half of one. The bits are XORed with a fixed pseudo-random key per macroblock and slot (``key_bits``).
Decode reads the bits back, takes a macroblock whose parities fail from its neighbours,
and spreads the coarse colour over the gray (with the JPEG decoder net where one ships, see
``models/jpeg_decoder.py``). A gray without the code passes both parity checks in about a quarter of
its macroblocks, whatever its content (the key makes a flat area or a ramp read as noise);
``confidence`` is the share that pass, and a gray of fewer than MIN_MACROBLOCKS
macroblocks is never taken as coded.

Versions: invgray 0.4.0 wrote version 1 (levels evenly spaced over [-0.375, 0.375], none at gray);
later versions write version 2 (the square-law levels) with another key, so a gray's version is
told by which key its parities pass under, and both are read.

The DCTs, the slots' lattice and the embedding passes are in ``block_lattice.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from invgray_cli.colour import CB_WEIGHTS, CR_WEIGHTS, chroma_to_rgb
from invgray_cli.codec.block_lattice import MACROBLOCK, SLOTS, dct_coefficients, embed_band, slot_values
from invgray_cli.codec.nets import ImageT, as_tensor

CHROMA_BITS = 5
CODE_VERSION = 2  # what embed_block_code writes; read_block_code also reads version 1
CODE_FOUND = 0.7  # share of macroblocks passing their parity checks; chance gives ~0.25
LOWEST_KEEPING_QUALITY = 40  # JPEG qualities below lose the code (measured: found at 40, not at 30)
BAND_ROWS = 32  # macroblock rows written or read at a time
MIN_MACROBLOCKS = 16  # fewer can pass by chance (one does in a quarter of plain grays): no code read
BITS_PER_MACROBLOCK = 2 * CHROMA_BITS + 2  # Cb, Cr and a parity bit each: one per slot
assert BITS_PER_MACROBLOCK == len(SLOTS)


@dataclass(frozen=True)
class BlockCodeReading:
    """What a gray's block code says: per macroblock Cb, Cr (2,h,w) float32 in [-0.5, 0.5] (failed
    ones filled from their neighbours), which passed their parity checks (h,w), the share that did,
    and the code's version."""

    chroma: np.ndarray
    passed: np.ndarray
    confidence: float
    version: int = CODE_VERSION

    @property
    def found(self) -> bool:
        return self.confidence >= CODE_FOUND and self.passed.size >= MIN_MACROBLOCKS


NOT_READ = BlockCodeReading(np.zeros((2, 0, 0), np.float32), np.zeros((0, 0), bool), 0.0)


def block_code_fits(height: int, width: int) -> bool:
    """Whether a gray of this size has enough whole macroblocks for its code to be read."""
    rows, cols = coded_shape(height, width)
    return rows * cols >= MIN_MACROBLOCKS


def chroma_levels(version: int = CODE_VERSION) -> np.ndarray:
    """The Cb or Cr value of each 5-bit index. Version 2: 0.5 * sign(t) * t**2 with t = (index - 16) / 15,
    so gray is a level and the steps grow from 0.002 beside it to 0.065 at full saturation: macroblock
    colours cluster near gray (half of the training photos' within 0.03), and these levels leave two
    thirds of the even levels' squared error there, clipping none (index 0 repeats index 1's -0.5:
    31 distinct levels). Version 1: 32 even levels on
    [-0.375, 0.375], none at gray."""
    index = np.arange(2**CHROMA_BITS, dtype=np.float64)
    if version == 1:
        return (index / (2**CHROMA_BITS - 1) * 0.75 - 0.375).astype(np.float32)
    t = (index - 16) / 15
    return np.clip(0.5 * np.sign(t) * t * t, -0.5, 0.5).astype(np.float32)


def coded_shape(height: int, width: int) -> tuple[int, int]:
    """Macroblocks (rows, columns) coded in a gray of this size: the whole ones."""
    return height // MACROBLOCK, width // MACROBLOCK


def _macroblock_chroma(rgb: Tensor) -> Tensor:
    """uint8 HxWx3 tensor -> (2, h, w) float32 mean BT.601 Cb, Cr of each whole macroblock, on its device.

    Each macroblock's channel sums are exact integers and the weights are applied to them in
    float64, so the levels chosen are the same on every device, thread count and image size
    (0.7's per-pixel float32 convolution depended on the algorithm torch picked, fused or not)."""
    rows, cols = coded_shape(*rgb.shape[:2])
    blocks = rgb[: rows * MACROBLOCK, : cols * MACROBLOCK].reshape(rows, MACROBLOCK, cols, MACROBLOCK, 3)
    sums = blocks.sum(dim=(1, 3), dtype=torch.int64).to(torch.float64)  # (h, w, 3)
    scale = float(MACROBLOCK * MACROBLOCK * 255)
    planes = [sum(weight * sums[..., c] for c, weight in enumerate(weights)) / scale
              for weights in (CB_WEIGHTS, CR_WEIGHTS)]
    return torch.stack(planes).to(torch.float32)


def macroblock_chroma(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> (2, h, w) mean BT.601 Cb, Cr in [-0.5, 0.5] of each whole macroblock."""
    return _macroblock_chroma(as_tensor(rgb)).numpy()


def chroma_bits(chroma: np.ndarray, version: int = CODE_VERSION) -> np.ndarray:
    """(2, h, w) Cb, Cr -> (h, w, BITS_PER_MACROBLOCK) bits: the index of each one's nearest level
    (Cb's, Cr's, least significant first), then their parities."""
    levels = chroma_levels(version)
    boundaries = (levels[1:] + levels[:-1]) / 2
    indices = np.searchsorted(boundaries, chroma).astype(np.int64)
    bits = [(indices[value] >> k) & 1 for value in range(2) for k in range(CHROMA_BITS)]
    bits += [1 - sum(bits[:CHROMA_BITS]) % 2, 1 - sum(bits[CHROMA_BITS:]) % 2]  # odd parity
    return np.stack(bits, axis=-1)


def bits_chroma(bits: np.ndarray, version: int = CODE_VERSION) -> tuple[np.ndarray, np.ndarray]:
    """``chroma_bits`` undone: (2, h, w) Cb, Cr and whether both parities hold (h, w)."""
    weights = 1 << np.arange(CHROMA_BITS)
    indices = np.stack([(bits[..., v * CHROMA_BITS:(v + 1) * CHROMA_BITS] * weights).sum(-1) for v in range(2)])
    chroma = chroma_levels(version)[indices]
    passed = np.ones(bits.shape[:2], bool)
    for value in range(2):
        own = bits[..., value * CHROMA_BITS:(value + 1) * CHROMA_BITS].sum(-1) % 2
        passed &= own != bits[..., 2 * CHROMA_BITS + value]
    return chroma.astype(np.float32), passed


def key_bits(rows: int, cols: int, top: int = 0, version: int = CODE_VERSION) -> np.ndarray:
    """(rows, cols, BITS_PER_MACROBLOCK) fixed pseudo-random bits of each macroblock (from row
    ``top``) and slot, XORed onto the code: a plain gray's regular coefficients (a flat area, a
    ramp: every block alike) then read as noise, passing both parities in a quarter of its blocks.
    Each version has its own key."""
    r, c, k = np.meshgrid(np.arange(top, top + rows, dtype=np.uint64), np.arange(cols, dtype=np.uint64),
                          np.arange(BITS_PER_MACROBLOCK, dtype=np.uint64), indexing="ij")
    salt = np.uint64(0 if version == 1 else 0x68E31DA4 * version)
    h = (r * np.uint64(0x9E3779B1) + c * np.uint64(0x85EBCA77) + k * np.uint64(0xC2B2AE3D) + salt) \
        & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(12)
    return ((h >> np.uint64(7)) & np.uint64(1)).astype(np.int64)


def _macroblock_bands(rows: int) -> range:
    """First macroblock rows of the bands the code is written and read in (memory stays small)."""
    return range(0, rows, BAND_ROWS)


def photo_code_bits(rgb: np.ndarray | Tensor, device: torch.device | None = None) -> np.ndarray:
    """The (h, w, 12) bits a uint8 HxWx3 photo's block code writes (before the key), its chroma
    measured on ``device`` (default: the photo's): what every gray of this photo carries."""
    pixels = as_tensor(rgb)
    return chroma_bits(_macroblock_chroma(pixels.to(device or pixels.device)).cpu().numpy())


def embed_block_code(gray: ImageT, rgb: np.ndarray | Tensor, bits: np.ndarray | None = None) -> ImageT:
    """uint8 HxW gray + the uint8 HxWx3 photo it encodes -> the gray with the photo's block code:
    a numpy array for an array, a tensor on the gray's device for a tensor (the photo is moved there).
    ``bits``: the photo's ``photo_code_bits``, when already measured (the same for every gray of it)."""
    if tuple(gray.shape) != tuple(rgb.shape[:2]):
        raise ValueError(f"gray {tuple(gray.shape)} and photo {tuple(rgb.shape[:2])} differ in size")
    rows, cols = coded_shape(*gray.shape)
    if rows == 0 or cols == 0:
        return gray
    out = as_tensor(gray).clone()
    device = out.device
    if bits is None:
        bits = photo_code_bits(rgb, device)
    width = cols * MACROBLOCK
    for top in _macroblock_bands(rows):
        band = bits[top : top + BAND_ROWS] ^ key_bits(min(BAND_ROWS, rows - top), cols, top)
        lines = slice(top * MACROBLOCK, (top + len(band)) * MACROBLOCK)
        pixels = out[lines, :width].to(torch.float64)
        wanted = torch.from_numpy(band).permute(2, 0, 1).to(device=device, dtype=torch.float64)
        out[lines, :width] = embed_band(pixels, wanted).to(torch.uint8)
    return out.numpy() if isinstance(gray, np.ndarray) else out


def _read_bits(gray: Tensor, rows: int, cols: int) -> np.ndarray:
    """(rows, cols, BITS_PER_MACROBLOCK) parities of a uint8 gray's slots, read on its device."""
    bits = torch.empty((BITS_PER_MACROBLOCK, rows, cols), dtype=torch.int64, device=gray.device)
    for top in _macroblock_bands(rows):
        count = min(BAND_ROWS, rows - top)
        lines = gray[top * MACROBLOCK : (top + count) * MACROBLOCK, : cols * MACROBLOCK]
        pixels = lines.to(torch.float64)
        bits[:, top : top + count] = torch.round(slot_values(pixels, dct_coefficients(pixels), ties_at=0.5)).long() % 2
    return bits.permute(1, 2, 0).cpu().numpy()


def read_block_code(gray: np.ndarray | Tensor) -> BlockCodeReading:
    """The block code of a uint8 HxW gray, an array or a tensor on any device (``NOT_READ`` when it
    has no whole macroblock): the current version's reading, or version 1's where that one is found
    instead; when neither is found, the one more macroblocks pass."""
    rows, cols = coded_shape(*gray.shape)
    if rows == 0 or cols == 0:
        return NOT_READ
    bits = _read_bits(as_tensor(gray), rows, cols)
    readings = []
    for version in (CODE_VERSION, 1):
        keyed = bits.copy()
        for top in _macroblock_bands(rows):  # the key a band at a time: memory stays small
            keyed[top : top + BAND_ROWS] ^= key_bits(min(BAND_ROWS, rows - top), cols, top, version)
        chroma, passed = bits_chroma(keyed, version)
        readings.append(BlockCodeReading(chroma, passed, float(passed.mean()), version))
        if readings[-1].found:
            break
    best = max(readings, key=lambda reading: reading.confidence)
    return BlockCodeReading(fill_failed(best.chroma, best.passed), best.passed, best.confidence, best.version)


def fill_failed(chroma: np.ndarray, passed: np.ndarray) -> np.ndarray:
    """Macroblocks that failed their parity take the mean of their passing 8-neighbours, growing
    inwards until every one has a value (gray when none passed)."""
    if passed.all():
        return chroma
    if not passed.any():
        return np.zeros_like(chroma)
    values = torch.from_numpy(np.where(passed, chroma, 0.0)).float()[None]
    known = torch.from_numpy(passed).float()[None, None]
    ones = torch.ones(1, 1, 3, 3)
    while bool((known == 0).any()):
        total = F.conv2d(values.transpose(0, 1), ones, padding=1).transpose(0, 1)
        count = F.conv2d(known, ones, padding=1)
        reached = (known == 0) & (count > 0)
        values = torch.where(reached, total / count.clamp(min=1), values)
        known = torch.where(reached, torch.ones_like(known), known)
    return values[0].numpy().astype(np.float32)


def coarse_chroma(reading: BlockCodeReading, height: int, width: int) -> torch.Tensor:
    """(1, 2, H, W) float32: the macroblocks' Cb, Cr spread bilinearly between their centres (and
    held beyond the outer ones, over the lines that no whole macroblock covers)."""
    grid = torch.from_numpy(np.ascontiguousarray(reading.chroma)).float()[None]
    rows, cols = grid.shape[-2:]
    ys = ((torch.arange(height) + 0.5) / MACROBLOCK - 0.5).clamp(0, rows - 1) / max(rows - 1, 1) * 2 - 1
    xs = ((torch.arange(width) + 0.5) / MACROBLOCK - 0.5).clamp(0, cols - 1) / max(cols - 1, 1) * 2 - 1
    where = torch.stack([xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)], -1)
    return F.grid_sample(grid, where[None], mode="bilinear", align_corners=True)


def decoder_inputs(gray: np.ndarray, reading: BlockCodeReading) -> tuple[torch.Tensor, torch.Tensor]:
    """(1,1,H,W) luma in [0,1] and (1,2,H,W) coarse chroma of a received uint8 gray and its code."""
    luma = torch.from_numpy(gray.astype(np.float32) / 255.0)[None, None]
    return luma, coarse_chroma(reading, *gray.shape)


def fine_planes(fine: np.ndarray) -> torch.Tensor:
    """The codec's uint8 HxWx3 decode of a gray as the JPEG decoder takes it: (1,3,H,W) in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(fine)).permute(2, 0, 1)[None].float() / 255.0


def colour_from_block_code(gray: np.ndarray, reading: BlockCodeReading, decoder=None,
                           fine: np.ndarray | None = None) -> np.ndarray:
    """uint8 HxW gray and its block code -> uint8 HxWx3: the coarse colour on the gray's luma, or
    what ``decoder`` (a JpegDecoder) makes of the two (and of ``fine``, the codec's uint8 HxWx3
    decode of the gray, for a decoder that ``needs_fine``)."""
    luma, chroma = decoder_inputs(gray, reading)
    with torch.inference_mode():
        if decoder is None:
            rgb = chroma_to_rgb(luma, chroma)
        else:
            rgb = decoder.restore(luma, chroma, None if fine is None else fine_planes(fine))
    return torch.round(rgb[0] * 255.0).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

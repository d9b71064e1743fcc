"""A faint sync pattern in every gray, so decode can find the code's grid after a crop, mirror or turn.

The colour code sits on a grid of 4-px blocks anchored at the encoded image's top-left corner, and
its carriers are symmetric: a mirrored or shifted gray is another valid code with wrong colours, so
the code alone cannot say which frame is right (see grid.py). encode therefore adds a fixed 16×16
pattern of ±1 gray levels, tiled over the gray. It was chosen so that

- it has no component on the 4-px lattice (each of its 16 phases mod 4 holds eight +1 and eight -1):
  the carriers, which live there, do not blur it, and it does not look like a carrier;
- every other of its 2048 frames (8 orientations × 16² shifts) correlates with it at most 0.22 of
  its own energy, so the best-matching frame stands out.

decode averages the gray's fine detail over the 16×16 phases of a central window (one pass, a few
milliseconds), matches that tile against the pattern in each of the 8 orientations at all 256
shifts, and reads the orientation and the shift (hence the 4-px grid offset) off the best match.
It then takes the pattern out, exactly for a PNG gray (bar pixels clipped at 0 or 255), before the
decoder sees it. A gray without the pattern (made by invgray < 0.2, or not by invgray) matches no
frame clearly and is decoded as before.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .grid import Frame, orient

PERIOD = 16
_PATTERN = (  # + is +1, - is -1 gray level
    "+-+--+----+-++-+",
    "-++--++-++++-++-",
    "+---++-+++------",
    "-++----+++--++-+",
    "++++++--+----+-+",
    "---+++++--+-+--+",
    "+-++++----+++---",
    "--+----++++---++",
    "-+-+--+++--++-++",
    "++-+++++--------",
    "++++--++--+--++-",
    "-++-+-++++-+++--",
    "+-++-+---++---+-",
    "+------++---++++",
    "-++++-++-+---+-+",
    "----+-+++-+--+-+",
)
PATTERN = np.array([[1 if c == "+" else -1 for c in row] for row in _PATTERN], dtype=np.int16)
_MATCHER = np.conj(np.fft.fft2(PATTERN))  # correlating with the pattern, in the Fourier domain
WINDOW = 512  # the central window matched, in px: enough for a clear match, and the cost stays flat
MIN_SIDE = 2 * PERIOD  # a smaller gray is not searched
# A gray carries the pattern when its best match stands this many robust deviations above all
# matches. Measured: 11-14 on grays with the pattern, at most 5.1 on grays without it (README).
FOUND = 8.0


@dataclass(frozen=True)
class PilotReading:
    """Where a gray's sync pattern lies: ``frame`` (what to undo, see grid.Frame), ``phase``
    (y, x) of the pattern at the top-left pixel once the orientation is undone, and ``confidence``
    (the best match over the robust spread of all matches)."""

    frame: Frame
    phase: tuple[int, int]
    confidence: float

    @property
    def found(self) -> bool:
        return self.confidence >= FOUND


NOT_FOUND = PilotReading(Frame(), (0, 0), 0.0)


def pattern_field(height: int, width: int, phase: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The tiled pattern over height x width, its top-left pixel at ``phase`` of the tile."""
    rows = (np.arange(height) + phase[0]) % PERIOD
    columns = (np.arange(width) + phase[1]) % PERIOD
    return PATTERN[rows[:, None], columns[None, :]]


def add_pilot(gray: np.ndarray) -> np.ndarray:
    """uint8 HxW gray -> the same with the pattern added (clipped to 0..255)."""
    field = pattern_field(*gray.shape)
    return np.clip(gray.astype(np.int16) + field, 0, 255).astype(np.uint8)


def _phase_tile(gray: np.ndarray) -> np.ndarray:
    """The gray's fine detail (gray minus its 3x3 mean) averaged over each of the 16x16 phases of
    a central window (its corner on multiples of the period, so its phases are the gray's)."""
    height, width = gray.shape
    rows = min(height, WINDOW) // PERIOD * PERIOD
    columns = min(width, WINDOW) // PERIOD * PERIOD
    top = (height - rows) // 2 // PERIOD * PERIOD
    left = (width - columns) // 2 // PERIOD * PERIOD
    window = torch.from_numpy(np.ascontiguousarray(gray[top : top + rows, left : left + columns])).float()[None, None]
    detail = window - F.avg_pool2d(F.pad(window, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    tile = detail[0, 0].reshape(rows // PERIOD, PERIOD, columns // PERIOD, PERIOD).mean(dim=(0, 2))
    return tile.numpy().astype(np.float64)


def _unoriented_tile(tile: np.ndarray, orientation: int, height: int, width: int) -> np.ndarray:
    """The phase tile of a height x width gray as it reads once ``orientation`` is undone (a
    mirror maps phase i to (side - 1 - i) mod 16)."""
    rows, columns = np.arange(PERIOD), np.arange(PERIOD)
    if orientation & 1:
        rows = (height - 1 - rows) % PERIOD
    if orientation & 2:
        columns = (width - 1 - columns) % PERIOD
    out = np.empty_like(tile)
    out[rows[:, None], columns[None, :]] = tile
    return out.T if orientation & 4 else out


def find_pilot(gray: np.ndarray, divisibility: int = 4) -> PilotReading:
    """Where the pattern lies in a uint8 HxW gray (NOT_FOUND's confidence 0 when too small)."""
    height, width = gray.shape
    if min(height, width) < MIN_SIDE:
        return NOT_FOUND
    tile = _phase_tile(gray)
    # matches[o, s, t]: the tile with orientation o undone against the pattern shifted by (s, t)
    matches = np.stack([np.real(np.fft.ifft2(np.fft.fft2(_unoriented_tile(tile, o, height, width)) * _MATCHER))
                        for o in range(8)])
    spread = 1.4826 * float(np.median(np.abs(matches))) + 1e-12
    orientation, shift_y, shift_x = np.unravel_index(int(np.argmax(matches)), matches.shape)
    phase = (int(-shift_y) % PERIOD, int(-shift_x) % PERIOD)
    frame = Frame(int(orientation), phase[0] % divisibility, phase[1] % divisibility)
    return PilotReading(frame, phase, float(matches.max()) / spread)


def remove_pilot(gray: np.ndarray, reading: PilotReading) -> np.ndarray:
    """uint8 HxW gray with the pattern ``reading`` found taken out (a pixel at 0 or 255 that the
    pattern would push further out is taken as clipped and kept)."""
    height, width = gray.shape
    if reading.frame.orientation & 4:
        height, width = width, height
    field = orient(torch.from_numpy(pattern_field(height, width, reading.phase)), reading.frame.orientation).numpy()
    values = gray.astype(np.int16)
    clipped = ((values == 255) & (field > 0)) | ((values == 0) & (field < 0))
    return np.where(clipped, values, values - field).clip(0, 255).astype(np.uint8)

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

**Edge marks** (format 3, invgray 0.3): over the MARK_BAND lines beside each edge of the encoded
gray, the pattern's sign follows MARK_CODE, counted from that edge. A crop moves the grid only by
its lines modulo 4, and not at all at the bottom or right; it always moves the code. Once the frame
is known, decode matches the lines beside each edge against the pattern and finds by how many lines
the code was shifted: every line of the code votes, so one textured line cannot fake a cut. A
shift of MARK_BAND (the code gone) reads as cut, unless no edge shows a mark: then the gray is taken
as made without marks (format 2, whose chunk also says so: ``edge_marks=False``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from invgray_cli.codec.frames import Frame, orient
from invgray_cli.codec.nets import ImageT, as_tensor

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
# Edge marks: the pattern's sign on the lines beside each edge of the encoded gray, the edge's own
# line first, then +1. Chosen among random codes so that its matches with its shifts by 1-24
# lines are lowest (at most 8 of the 32 lines read).
_MARK_CODE = "-++-+-++--++-+--+++-----"
MARK_CODE = np.array([1 if c == "+" else -1 for c in _MARK_CODE], dtype=np.int16)
MARK_BAND = len(MARK_CODE)
MARK_READ = MARK_BAND + 8  # lines from an edge that decode reads the code from
MARK_CLIP = 2.0  # gray levels: the detail is clipped to this when reading the code, so texture weighs little
LATTICE = 4  # px: the carriers' period along a line (the codec's divisibility)
LATTICE_SAMPLES = 8  # same-phase samples (32 px) whose mean is taken out before a line votes
# encode marks the ends of a side this long or longer; decode reads them only on such sides (a crop
# below it that kept a marked edge has the pattern taken out inexactly on up to MARK_BAND lines)
MARKED_SIDE = 4 * MARK_BAND
UNMARKED = (MARK_BAND,) * 4  # the cuts of a gray without marks: as if each edge lost MARK_BAND lines or more
# an edge read as cut by fewer lines than this shows a mark for sure; beyond, one line or two of
# the code's tail decide, and a gray without marks may read so by chance
MARK_SHOWN = MARK_BAND - 4
# A gray carries the pattern when its best match stands this many robust deviations above all
# matches. Measured: 11-14 on grays with the pattern, at most 5.1 on grays without it (README).
FOUND = 8.0


@dataclass(frozen=True)
class SyncPatternReading:
    """Where a gray's sync pattern lies: ``frame`` (what to undo, see grid.Frame; its cut_edges
    from the edge marks), ``phase`` (y, x) of the pattern at the top-left pixel once the orientation
    is undone, ``confidence`` (the best match over the robust spread of all matches), ``cuts``: the
    lines cut off its top, left, bottom and right after encoding (once the orientation is undone),
    read from the edge marks (MARK_BAND: that many or more, or no marks), and ``read``: the edges
    whose marks were read (False: a side too short, or a gray without marks)."""

    frame: Frame
    phase: tuple[int, int]
    confidence: float
    cuts: tuple[int, int, int, int] = UNMARKED
    read: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @property
    def found(self) -> bool:
        return self.confidence >= FOUND


NOT_FOUND = SyncPatternReading(Frame(), (0, 0), 0.0)


def mark_signs(length: int, cut_start: int, cut_end: int) -> np.ndarray:
    """The edge marks' signs on ``length`` lines of which ``cut_start`` were cut before the first
    and ``cut_end`` after the last since encoding (+1 beyond the code's reach from either edge)."""
    from_start = np.arange(length) + cut_start
    from_end = np.arange(length)[::-1] + cut_end

    def code(distance: np.ndarray) -> np.ndarray:
        return np.where(distance < MARK_BAND, MARK_CODE[np.minimum(distance, MARK_BAND - 1)], 1)

    return (code(from_start) * code(from_end)).astype(np.int16)


def pattern_field(height: int, width: int, phase: tuple[int, int] = (0, 0),
                  cuts: tuple[int, int, int, int] = UNMARKED) -> np.ndarray:
    """The tiled pattern over height x width, its top-left pixel at ``phase`` of the tile, with the
    edge marks of a gray that lost ``cuts`` = (top, left, bottom, right) lines after encoding."""
    return _field_on(height, width, phase, cuts, torch.device("cpu")).numpy()


def _field_on(height: int, width: int, phase: tuple[int, int], cuts: tuple[int, int, int, int],
              device: torch.device) -> torch.Tensor:
    """``pattern_field`` as an int16 tensor on ``device``: the pattern's 16 rows tiled along the
    width with the columns' marks, then gathered down the height with the rows'."""
    top, left, bottom, right = cuts
    columns = (torch.arange(width, device=device) + phase[1]) % PERIOD
    column_signs = torch.from_numpy(mark_signs(width, left, right)).to(device)
    pattern_rows = torch.from_numpy(PATTERN).to(device)[:, columns] * column_signs  # (16, W)
    rows = (torch.arange(height, device=device) + phase[0]) % PERIOD
    row_signs = torch.from_numpy(mark_signs(height, top, bottom)).to(device)
    return pattern_rows[rows] * row_signs[:, None]


def fresh_cuts(height: int, width: int) -> tuple[int, int, int, int]:
    """The ``cuts`` of a freshly encoded gray of this size: none, where a side is long enough to
    carry marks at its ends."""
    rows, columns = (0 if side >= MARKED_SIDE else MARK_BAND for side in (height, width))
    return (rows, columns, rows, columns)


def add_sync_pattern(gray: ImageT) -> ImageT:
    """uint8 HxW gray -> the same with the pattern and its edge marks added (clipped to 0..255): an
    array for an array, a tensor on the gray's device for a tensor."""
    image = as_tensor(gray)
    height, width = image.shape
    field = _field_on(height, width, (0, 0), fresh_cuts(height, width), image.device)
    out = field.add_(image).clamp_(0, 255).to(torch.uint8)
    return out.numpy() if isinstance(gray, np.ndarray) else out


def _detail(gray: np.ndarray) -> torch.Tensor:
    """Fine detail (gray minus its 3x3 mean) of a uint8 HxW gray, as float."""
    image = torch.from_numpy(np.array(gray, dtype=np.float32))[None, None]  # a copy: gray may be read-only
    return (image - F.avg_pool2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), 3, stride=1))[0, 0]


def _window(side: int, edge_marks: bool) -> tuple[int, int]:
    """(start, length) of the central run of lines the phase tile averages: at most WINDOW, a
    multiple of the period, clear of the MARK_BAND lines at either end (where edge marks may lie,
    whichever way the gray was turned) when ``edge_marks`` and the side is long enough to have them."""
    margin = MARK_BAND if edge_marks and side >= MARKED_SIDE else 0
    length = min(side - 2 * margin, WINDOW) // PERIOD * PERIOD
    return (side - length) // 2, length


def _phase_tile(gray: np.ndarray, edge_marks: bool) -> np.ndarray:
    """The gray's fine detail (gray minus its 3x3 mean) averaged over each of the 16x16 phases of
    a central window, indexed by the gray's own phase."""
    (top, rows), (left, columns) = _window(gray.shape[0], edge_marks), _window(gray.shape[1], edge_marks)
    detail = _detail(gray[top : top + rows, left : left + columns])
    tile = detail.reshape(rows // PERIOD, PERIOD, columns // PERIOD, PERIOD).mean(dim=(0, 2)).numpy()
    return np.roll(tile, (top % PERIOD, left % PERIOD), axis=(0, 1)).astype(np.float64)


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


def _lines_cut(detail: torch.Tensor, field: np.ndarray) -> int:
    """Lines cut off the edge beside row 0 of ``detail`` after encoding (0..MARK_BAND): ``detail``
    and the unmarked pattern ``field`` are of the MARK_READ rows nearest that edge, the edge's own
    first. It is the shift of the code that the rows' matches with the pattern agree with best.
    The MARK_BAND columns at either end are left out when the rows are long enough to be marked
    there (the other edges' marks)."""
    length = detail.shape[1]
    inner = slice(MARK_BAND, length - MARK_BAND) if length >= MARKED_SIDE else slice(0, length)
    detail, field = detail[:, inner], field[:, inner]
    # less the mean of the same phase over the LATTICE_SAMPLES around (centred): the carriers repeat
    # every 4 px along a line, and on flat colour they are strong enough to bias a line's match
    span = detail.shape[1] - (LATTICE_SAMPLES - 1) * LATTICE
    centre = (LATTICE_SAMPLES - 1) // 2 * LATTICE
    lattice_mean = sum(detail[:, k * LATTICE : k * LATTICE + span] for k in range(LATTICE_SAMPLES)) / LATTICE_SAMPLES
    clipped = (detail[:, centre : centre + span] - lattice_mean).clamp(-MARK_CLIP, MARK_CLIP)
    rows = (clipped * torch.from_numpy(field[:, centre : centre + span].astype(np.float32))).sum(dim=1).numpy()
    agreement = [float(rows @ mark_signs(len(rows), cut, MARK_BAND)) for cut in range(MARK_BAND + 1)]
    return int(np.argmax(agreement))


def _read_cuts(gray: np.ndarray, orientation: int,
               phase: tuple[int, int]) -> tuple[tuple[int, int, int, int], tuple[bool, bool, bool, bool]]:
    """The lines cut off the top, left, bottom and right (once ``orientation`` is undone) of a uint8
    HxW gray whose pattern lies at ``orientation`` and ``phase``, and which of those edges were read:
    not those of a side too short to be marked (MARK_BAND there; the left and right edges are
    marked when the gray is wide enough, whatever its height)."""
    encoded = gray[::-1] if orientation & 1 else gray  # numpy views, as grid.unorient orders them
    encoded = encoded[:, ::-1] if orientation & 2 else encoded
    encoded = encoded.T if orientation & 4 else encoded
    height, width = encoded.shape
    reach = MARK_READ + 1  # the detail of the lines read needs one line more

    def cut_off(lines: np.ndarray, field: np.ndarray) -> int:
        """``lines`` and their ``field``: the reach lines nearest an edge, that edge's own first."""
        return _lines_cut(_detail(np.ascontiguousarray(lines))[:-1], field[:MARK_READ])

    top = bottom = left = right = MARK_BAND
    if height >= MARKED_SIDE:
        top = cut_off(encoded[:reach], pattern_field(reach, width, phase))
        bottom = cut_off(encoded[::-1][:reach], pattern_field(reach, width, (phase[0] + height - reach, phase[1]))[::-1])
    if width >= MARKED_SIDE:
        left = cut_off(encoded.T[:reach], pattern_field(height, reach, phase).T)
        right = cut_off(encoded.T[::-1][:reach], pattern_field(height, reach, (phase[0], phase[1] + width - reach)).T[::-1])
    rows_read, columns_read = height >= MARKED_SIDE, width >= MARKED_SIDE
    return (top, left, bottom, right), (rows_read, columns_read, rows_read, columns_read)


def find_sync_pattern(gray: np.ndarray, divisibility: int = 4, edge_marks: bool = True) -> SyncPatternReading:
    """Where the pattern lies in a uint8 HxW gray (NOT_FOUND's confidence 0 when too small), and
    with ``edge_marks`` (format 3 grays, or ones whose format is unknown) which edges were cut."""
    height, width = gray.shape
    if min(height, width) < MIN_SIDE:
        return NOT_FOUND
    tile = _phase_tile(gray, edge_marks)
    # matches[o, s, t]: the tile with orientation o undone against the pattern shifted by (s, t)
    matches = np.stack([np.real(np.fft.ifft2(np.fft.fft2(_unoriented_tile(tile, o, height, width)) * _MATCHER))
                        for o in range(8)])
    spread = 1.4826 * float(np.median(np.abs(matches))) + 1e-12
    orientation, shift_y, shift_x = np.unravel_index(int(np.argmax(matches)), matches.shape)
    phase = (int(-shift_y) % PERIOD, int(-shift_x) % PERIOD)
    confidence = float(matches.max()) / spread
    marked = edge_marks and confidence >= FOUND
    cuts, read = _read_cuts(gray, int(orientation), phase) if marked else (UNMARKED, (False,) * 4)
    if not any(lines < MARK_SHOWN for lines, was_read in zip(cuts, read) if was_read):
        # no edge shows a mark: a gray made without them (format 2), or one cut 20+ lines all round
        cuts, read = UNMARKED, (False,) * 4
    cut_edges = tuple(was_read and lines > 0 for lines, was_read in zip(cuts, read))
    frame = Frame(int(orientation), phase[0] % divisibility, phase[1] % divisibility, cut_edges)
    return SyncPatternReading(frame, phase, confidence, cuts, read)


def remove_sync_pattern(gray: ImageT, reading: SyncPatternReading) -> ImageT:
    """uint8 HxW gray with the pattern ``reading`` found taken out (a pixel at 0 or 255 that the
    pattern would push further out is taken as clipped and kept): an array for an array, a tensor
    on the gray's device for a tensor."""
    values = as_tensor(gray).to(torch.int16)
    height, width = values.shape
    if reading.frame.orientation & 4:
        height, width = width, height
    field = orient(_field_on(height, width, reading.phase, reading.cuts, values.device), reading.frame.orientation)
    clipped = ((values == 255) & (field > 0)) | ((values == 0) & (field < 0))
    out = torch.where(clipped, values, values - field).clamp_(0, 255).to(torch.uint8)
    return out.numpy() if isinstance(gray, np.ndarray) else out

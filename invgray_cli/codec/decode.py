"""Stage 3 (codec), decode: one decision. A gray's facts are read once into a :class:`GrayFacts`; one table,
:data:`DECISIONS`, maps them to a :class:`DecodePath`; the result says which path ran.

Every entry point (files, the API, batches, eval, ``info``, training's validation) goes through
:func:`read_facts` and :func:`decide`. The table, first matching row wins:

=====================================================================  ==============
when                                                                   path
=====================================================================  ==============
a JPEG too coarse for the fine code, its block code read               block_code
the detector reads no fine code (asked when the gray has no chunk, or
  is such a JPEG without a readable block code), the block code read   block_code
the detector reads no fine code, and
  ``fallback`` off                                                     refuse
  a colouriser ships                                                   colorize
  none ships                                                           uncoded
the sync pattern found (on its grid, or moved: a crop, mirror, turn)   sync_pattern
no chunk and ``search_frame`` (``--find-frame``)                       searched_frame
otherwise (format 1 grays, patterns not found)                         as_it_comes
=====================================================================  ==============
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
import torch

from invgray_cli.codec.block_code import BlockCodeReading, colour_from_block_code, read_block_code
from invgray_cli.codec.edges import decode_in_frame, decode_plain
from invgray_cli.codec.frames import find_frame, unorient
from invgray_cli.codec.nets import Codec, as_tensor, check_array, same_size_groups
from invgray_cli.codec.sync_pattern import NOT_FOUND, SyncPatternReading, find_sync_pattern, remove_sync_pattern
from invgray_cli.codec.tiling import ProgressFn
from invgray_cli.colorize.session import ColorizerCodec
from invgray_cli.colour import luma_plane
from invgray_cli.errors import InvgrayError
from invgray_cli.io.chunk import ChunkInfo, has_edge_marks, parse_chunk
from invgray_cli.io.images import GrayImage
from invgray_cli.io.jpeg import FINE_CODE_JPEG_QUALITY
from invgray_cli.models.detector import CODE_THRESHOLD, CodeReading, read_code
from invgray_cli.models.zoo import COLORIZER, default_entry

NO_CODE_WARNING = ("carries no colour code that invgray can read (confidence {confidence:.2f}): re-compressed, "
                   "resized, or not made by invgray")
LOST_IN_JPEG_WARNING = (f"is a JPEG too coarse (quality under {FINE_CODE_JPEG_QUALITY}) to keep the fine colour code "
                        "(confidence {confidence:.2f}) and carries no block code that can be read (written without "
                        "one, re-saved too coarsely, or too small): its hidden colour is lost")
BLOCK_CODE_NOTE = ("has lost its fine colour code (re-compressed, or re-saved by another tool); restored from its "
                   "JPEG-safe block code: coarser colour")  # not said of the JPEG grays invgray writes
MOVED_WARNING = "was {what} after encoding: decoded on its code's grid (judge's probability {probability:.0%})"
PATTERN_MOVED_WARNING = "was {what} after encoding: decoded on its code's grid, found by its sync pattern"


class DecodePath(str, Enum):
    BLOCK_CODE = "block_code"  # the block code's coarse colour, through the model's JPEG decoder
    REFUSE = "refuse"  # no code and no fallback: an error
    COLORIZE = "colorize"  # no code: colourised instead
    UNCODED = "uncoded"  # no code and no colouriser: decoded anyway, its colours guesses
    SYNC_PATTERN = "sync_pattern"  # decoded on the grid its sync pattern shows
    SEARCHED_FRAME = "searched_frame"  # decoded in the frame the frame judge picks (--find-frame)
    AS_IT_COMES = "as_it_comes"  # decoded as it comes (no sync pattern)


PATH_WORDS = {
    DecodePath.BLOCK_CODE: "restored from its JPEG-safe block code (coarser colour)",
    DecodePath.REFUSE: "refused: it carries no colour code (--no-fallback)",
    DecodePath.COLORIZE: "colourised: it carries no colour code",
    DecodePath.UNCODED: "decoded anyway: it carries no colour code and no colouriser ships",
    DecodePath.SYNC_PATTERN: "decoded on the grid its sync pattern shows",
    DecodePath.SEARCHED_FRAME: "decoded in the frame the frame judge finds (--find-frame)",
    DecodePath.AS_IT_COMES: "decoded as it comes (no sync pattern found)",
}


@dataclass(frozen=True)
class GrayFacts:
    """What decode knows of a gray before decoding it. ``code``: the detector's reading (None: not
    read, as for a gray whose chunk says invgray wrote it, or no detector); ``block_code``: None
    when it was not needed."""

    chunk: ChunkInfo | None
    jpeg: bool
    lossy: bool  # a JPEG too coarse for the nets' fine code
    sync_pattern: SyncPatternReading
    code: CodeReading | None
    block_code: BlockCodeReading | None

    @property
    def block_code_found(self) -> bool:
        return self.block_code is not None and self.block_code.found

    @property
    def pattern_strength(self) -> float:
        """What the gray floor left of the hidden pattern, as the chunk says (1 without one)."""
        return self.chunk.strength if self.chunk is not None else 1.0

    @property
    def code_in_question(self) -> bool:
        """Whether the detector's reading decides: nothing says invgray wrote the gray (no chunk),
        or it is a coarse JPEG whose fine code may be gone and whose block code cannot be read."""
        return self.chunk is None or (self.lossy and not self.block_code_found)

    @property
    def detector_reads_no_code(self) -> bool:
        return self.code_in_question and self.code is not None and self.code.confidence < CODE_THRESHOLD


@dataclass(frozen=True)
class DecodeOptions:
    fallback: bool = True  # colourise a gray without a code (False: refuse it)
    search_frame: bool = False  # look for the frame of a gray without a chunk (--find-frame)


@dataclass(frozen=True)
class Decision:
    when: str
    applies: Callable[[GrayFacts, DecodeOptions, bool], bool]  # (facts, options, a colouriser ships)
    path: DecodePath


DECISIONS: tuple[Decision, ...] = (
    Decision("a JPEG too coarse for the fine code, its block code read",
             lambda f, o, c: f.lossy and f.block_code_found, DecodePath.BLOCK_CODE),
    Decision("the detector reads no fine code, the block code read",
             lambda f, o, c: f.detector_reads_no_code and f.block_code_found, DecodePath.BLOCK_CODE),
    Decision("the detector reads no colour code, fallback off",
             lambda f, o, c: f.detector_reads_no_code and not o.fallback, DecodePath.REFUSE),
    Decision("the detector reads no colour code, a colouriser ships",
             lambda f, o, c: f.detector_reads_no_code and c, DecodePath.COLORIZE),
    Decision("the detector reads no colour code, no colouriser ships",
             lambda f, o, c: f.detector_reads_no_code, DecodePath.UNCODED),
    Decision("sync pattern found", lambda f, o, c: f.sync_pattern.found, DecodePath.SYNC_PATTERN),
    Decision("no chunk, frame search asked for", lambda f, o, c: o.search_frame and f.chunk is None,
             DecodePath.SEARCHED_FRAME),
    Decision("otherwise", lambda f, o, c: True, DecodePath.AS_IT_COMES),
)


def decide(facts: GrayFacts, options: DecodeOptions, colorizer_available: bool) -> DecodePath:
    """The path of the first row of DECISIONS that applies."""
    return deciding_row(facts, options, colorizer_available).path


def deciding_row(facts: GrayFacts, options: DecodeOptions, colorizer_available: bool) -> Decision:
    """The first row of DECISIONS that applies (its ``when`` says why)."""
    return next(row for row in DECISIONS if row.applies(facts, options, colorizer_available))


@dataclass(frozen=True)
class Restored:
    rgb: np.ndarray
    model: str  # what made the colours: the codec model, or the colouriser it fell back to
    warning: str | None
    path: DecodePath

    @property
    def coded(self) -> bool:
        """False: the gray carried no code (the warning says what was done instead)."""
        return self.path not in (DecodePath.COLORIZE, DecodePath.UNCODED)


def locate(codec: Codec, gray: np.ndarray, edge_marks: bool = True) -> SyncPatternReading:
    """Where the sync pattern of a uint8 HxW gray lies (NOT_FOUND when the codec has it off), and
    with ``edge_marks`` which of its edges were cut."""
    check_array(gray, 1, "gray")
    return find_sync_pattern(gray, codec.model.divisibility, edge_marks) if codec.sync_pattern else NOT_FOUND


def as_encoded(gray: np.ndarray, reading: SyncPatternReading) -> np.ndarray:
    """The gray as the detector was trained to read it: the sync pattern out, the orientation undone."""
    if not reading.found:
        return gray
    return np.ascontiguousarray(unorient(torch.from_numpy(remove_sync_pattern(gray, reading)), reading.frame.orientation).numpy())


def read_facts(codec: Codec, image: GrayImage, complete: bool = False) -> GrayFacts:
    """The facts of a gray read from a file (or an array as a GrayImage without text), each read
    only when the decision needs it, or all of them with ``complete`` (for ``info``)."""
    gray, chunk = image.gray, parse_chunk(image.text)
    blocks = read_block_code(gray) if image.lossy or complete else None
    if image.lossy and blocks.found and not complete:  # a JPEG's fine code is gone: no need to look further
        return GrayFacts(chunk, image.jpeg, True, NOT_FOUND, None, blocks)
    pattern = locate(codec, gray, has_edge_marks(chunk))
    facts = GrayFacts(chunk, image.jpeg, image.lossy, pattern, None, blocks)
    detector = codec.code_detector() if facts.code_in_question or complete else None
    if detector is not None:
        facts = replace(facts, code=read_code(detector, as_encoded(gray, pattern)))
    if blocks is None and facts.detector_reads_no_code:
        facts = replace(facts, block_code=read_block_code(gray))
    return facts


def decode_located(codec: Codec, gray: np.ndarray, reading: SyncPatternReading,
                   on_tile: ProgressFn | None = None, strength: float = 1.0) -> np.ndarray:
    """The colour of a gray whose sync pattern ``reading`` is given: when found, taken out and
    decoded in its frame; else decoded as it comes. A pattern the gray floor weakened to
    ``strength`` is strengthened back first (:func:`strengthened`)."""
    if reading.found:
        gray = remove_sync_pattern(gray, reading)

    def decode(image: np.ndarray) -> np.ndarray:
        if reading.found:
            return decode_in_frame(codec, image, reading.frame, on_tile)
        return decode_plain(codec, image, on_tile)

    colour = decode(gray)
    return colour if strength >= 1.0 else decode(strengthened(gray, colour, strength))


def strengthened(gray: np.ndarray, colour: np.ndarray, strength: float) -> np.ndarray:
    """A gray whose pattern the gray floor scaled to ``strength`` (gray = luma + strength * pattern),
    with the pattern scaled back, the luma taken from ``colour`` (its decode as it was): the
    decoder was trained on the full pattern, and reads a weakened one as other colours."""
    luma = luma_plane(as_tensor(colour))
    full = (as_tensor(gray).float() - luma).div_(strength).add_(luma)
    return full.round_().clamp_(0, 255).to(torch.uint8).numpy()


def fine_decode(codec: Codec, gray: np.ndarray, pattern: SyncPatternReading | None = None,
                on_tile: ProgressFn | None = None, strength: float = 1.0) -> np.ndarray:
    """The nets' decode of a gray's fine code on the grid of its sync pattern (found here unless
    given), whatever the decision: what the JPEG decoder is given beside the block code."""
    return decode_located(codec, gray, pattern if pattern is not None else locate(codec, gray), on_tile, strength)


def decode_array(codec: Codec, gray: np.ndarray, options: DecodeOptions = DecodeOptions()) -> np.ndarray:
    """uint8 HxW gray (no chunk: a bare array) -> uint8 HxWx3 colour, through the decision."""
    check_array(gray, 1, "gray")
    return restore(codec, GrayImage(gray, None), options).rgb


def restore(codec: Codec, image: GrayImage, options: DecodeOptions = DecodeOptions(),
            on_tile: ProgressFn | None = None, facts: GrayFacts | None = None) -> Restored:
    """Decode a gray by the path DECISIONS gives for its facts (read here unless given)."""
    facts = facts or read_facts(codec, image, complete=False)
    path = decide(facts, options, colorizer_ships())
    return _run_path(path, codec, image.gray, facts, on_tile)


def _lost_note(facts: GrayFacts) -> str:
    return (LOST_IN_JPEG_WARNING if facts.lossy else NO_CODE_WARNING).format(confidence=facts.code.confidence)


def _run_path(path: DecodePath, codec: Codec, gray: np.ndarray, facts: GrayFacts, on_tile: ProgressFn | None) -> Restored:
    name, pattern = codec.info.name, facts.sync_pattern
    if path is DecodePath.BLOCK_CODE:
        note = None if facts.lossy and facts.chunk is not None else BLOCK_CODE_NOTE
        return Restored(_from_block_code(codec, gray, facts, on_tile), name, note, path)
    if path is DecodePath.REFUSE:
        raise InvgrayError(f"{_lost_note(facts)}; not decoded (--no-fallback)")
    if path is DecodePath.COLORIZE:
        colouriser = fallback_colorizer(codec.device)
        return Restored(colouriser.colorize_array(gray), colouriser.name,
                        f"{_lost_note(facts)}; colourised by '{colouriser.name}' instead", path)
    if path is DecodePath.UNCODED:
        return Restored(decode_located(codec, gray, pattern, on_tile), name,
                        f"{_lost_note(facts)}; decoded with '{name}' anyway: its colours are guesses "
                        "(this invgray ships no colouriser)", path)
    if path is DecodePath.SYNC_PATTERN:
        note = None if pattern.frame.is_identity else PATTERN_MOVED_WARNING.format(what=pattern.frame.describe())
        return Restored(decode_located(codec, gray, pattern, on_tile, facts.pattern_strength), name, note, path)
    if path is DecodePath.SEARCHED_FRAME:
        with codec.autocast_context():
            choice = find_frame(codec.model, codec.judge(), gray)
        if not choice.frame.is_identity:
            note = MOVED_WARNING.format(what=choice.frame.describe(), probability=choice.probability)
            return Restored(decode_in_frame(codec, gray, choice.frame, on_tile), name, note, path)
    return Restored(decode_located(codec, gray, NOT_FOUND, on_tile, facts.pattern_strength), name, None, path)


def _from_block_code(codec: Codec, gray: np.ndarray, facts: GrayFacts, on_tile: ProgressFn | None) -> np.ndarray:
    """The colour of a gray's block code, through the codec model's JPEG decoder where one ships
    (given the codec's own decode of the gray, in its sync pattern's frame)."""
    decoder = codec.jpeg_decoder()
    fine = None
    if decoder is not None and decoder.needs_fine:
        fine = fine_decode(codec, gray, None if facts.sync_pattern is NOT_FOUND else facts.sync_pattern, on_tile,
                           facts.pattern_strength)
    return colour_from_block_code(gray, facts.block_code, decoder, fine)


def decode_grays(codec: Codec, images: list[GrayImage], options: DecodeOptions = DecodeOptions(),
                 on_tile: ProgressFn | None = None) -> list[Restored]:
    """``restore`` of each gray; grays of one size that decode on their grid as they come (as
    most do) go through the net together."""
    restored: list[Restored | None] = [None] * len(images)
    on_grid: dict[int, tuple[np.ndarray, DecodePath]] = {}
    for i, image in enumerate(images):
        facts = read_facts(codec, image)
        path = decide(facts, options, colorizer_ships())
        pattern = facts.sync_pattern
        on_its_grid = path is DecodePath.AS_IT_COMES or (path is DecodePath.SYNC_PATTERN and pattern.frame.is_identity)
        if on_its_grid and facts.pattern_strength == 1.0:
            on_grid[i] = (remove_sync_pattern(image.gray, pattern) if pattern.found else image.gray, path)
        else:
            restored[i] = _run_path(path, codec, image.gray, facts, on_tile)
    waiting = list(on_grid)
    for group in same_size_groups([on_grid[i][0] for i in waiting]):
        indices = [waiting[k] for k in group]
        stack = torch.stack([as_tensor(on_grid[i][0])[None] for i in indices])
        for i, rgb in zip(indices, codec.run_decoder(stack, on_tile)):
            restored[i] = Restored(rgb, codec.info.name, None, on_grid[i][1])
    return restored


def colorizer_ships() -> bool:
    """Whether a colouriser ships for grays without a code (nothing loaded)."""
    return default_entry(COLORIZER) is not None


def fallback_colorizer(device: torch.device) -> ColorizerCodec | None:
    """The shipped colouriser on ``device`` for grays without a code, or None if none ships."""
    return _load_colorizer(str(device)) if colorizer_ships() else None


@functools.lru_cache(maxsize=2)
def _load_colorizer(device: str) -> ColorizerCodec:
    return ColorizerCodec.load(device=device)

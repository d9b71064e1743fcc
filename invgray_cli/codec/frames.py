"""Stage 3 (codec): finding the hidden code's grid in a gray that was cropped, mirrored or turned.

The colour code sits on a grid of ``divisibility``-pixel blocks anchored at the top-left corner
of the encoded image. A crop moves that anchor; a mirror or a 90° turn also reflects the blocks.
Decoding in the wrong frame gives wrong, often complementary, colours. A :class:`Frame` says how
to bring a gray back onto its grid: undo one of the 8 orientations (the symmetries of the square),
then pad ``offset`` rows and columns on the top and left (with lines of the same grid phase).

The frame is found in two steps, on a few probe regions of about 192 px where the gray has the
most fine detail, so the cost does not grow with the image; each region's scores add up:

1. **Round trip.** In the right frame the decoder's colours, encoded again, give back the gray
   (``E(D(g)) ≈ g``); in most wrong frames they do not. Every frame is scored by that round
   trip's error over the energy of the pattern, and the few best are kept.
2. **Judge.** The 4-px Walsh carriers are symmetric: a few wrong frames (a mirror plus a shift,
   say) are valid codes too, of the image with a chroma channel's sign flipped. A small CNN
   (:mod:`.models.frames`) trained on such shortlists picks the candidate whose colours look
   like a photo's.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from invgray_cli.colour import rgb_to_luma
from invgray_cli.models.frame_judge import FrameJudge, judge_logits
from invgray_cli.models.net import InvertibleGray

ORIENTATIONS = tuple(range(8))  # bit 0: rows reversed, bit 1: columns reversed, bit 2: transposed
PROBE_SIZE = 128  # round-trip probe edge in pixels
PROBE_MARGIN = 8  # pixels at the probe's border left out of the score (the nets see zeros beyond it)
SHORTLIST_RATIO = 2.0  # frames scoring within this factor of the best go to the judge
SHORTLIST_SIZE = 12
JUDGE_WINDOW = 128  # the judge sees each candidate decoded on a window this size
PROBE_REGION = 192  # both look inside regions of about this size with the most fine detail
PROBE_REGIONS = 3  # how many: their round-trip scores (geometric mean) and the judge's logits add up
# The gray as it comes wins when it is on the shortlist and the judge gives it at least this
# probability. 0: whenever it is on the shortlist. On 10 val photos that kept 100 % of unmoved grays
# (60 % at 0.2) for 2 points fewer moved ones right (57 % against 59 %).
IDENTITY_SHARE = 0.0


@dataclass(frozen=True)
class Frame:
    """How to bring a gray back onto its encoding grid: undo ``orientation``, then pad
    ``offset_y`` rows on top and ``offset_x`` columns on the left. ``cut_edges``: whether its top,
    left, bottom and right edges (once the orientation is undone) were cut, which the grid shows only
    for a top or left that lost lines other than a multiple of 4 (the sync pattern's edge marks
    show all, see sync_pattern.py; a frame found by search alone has none set)."""

    orientation: int = 0
    offset_y: int = 0
    offset_x: int = 0
    cut_edges: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @property
    def is_identity(self) -> bool:
        return self == Frame()

    @property
    def is_cut(self) -> bool:
        """Whether an edge of the encoded gray was cut (a top or left one moves the grid)."""
        return bool(self.offset_y or self.offset_x or any(self.cut_edges))

    def describe(self) -> str:
        """What was probably done to the gray, in words."""
        parts = []
        if self.orientation & 4:
            parts.append("turned 90° or transposed")
        elif self.orientation == 3:
            parts.append("turned 180°")
        elif self.orientation:
            parts.append("mirrored")
        edges = [side for side, cut in zip(("top", "left", "bottom", "right"), self.cut_edges) if cut]
        if edges:
            parts.append(f"cropped at the {', '.join(edges)} (grid offset x {self.offset_x}, y {self.offset_y})")
        elif self.offset_y or self.offset_x:
            parts.append(f"cropped (grid offset x {self.offset_x}, y {self.offset_y})")
        return " and ".join(parts) or "as encoded"


def orient(image: Tensor, orientation: int) -> Tensor:
    """Apply ``orientation`` to (..., H, W): transpose first, then reverse columns, then rows."""
    if orientation & 4:
        image = image.transpose(-1, -2)
    if orientation & 2:
        image = image.flip(-1)
    if orientation & 1:
        image = image.flip(-2)
    return image


def unorient(image: Tensor, orientation: int) -> Tensor:
    """Undo :func:`orient`."""
    if orientation & 1:
        image = image.flip(-2)
    if orientation & 2:
        image = image.flip(-1)
    if orientation & 4:
        image = image.transpose(-1, -2)
    return image


def _same_phase_before(length: int, pad: int, period: int, device: torch.device) -> Tensor:
    """Indices on ``device`` that put ``pad`` lines before the first one, each a copy of the line one
    ``period`` later on the grid: the padding then carries a code of the same phase (mirrored lines
    would not, and would mislead the decoder for a dozen pixels in)."""
    before = (torch.arange(pad, device=device) + period - pad).clamp_(max=max(length - 1, 0))
    return torch.cat([before, torch.arange(length, device=device)])


def into_frame(image: Tensor, frame: Frame, period: int = 4) -> Tensor:
    """(..., H, W) as it lies on disk -> on its encoding grid of ``period``-px blocks (orientation
    undone, offsets padded)."""
    image = unorient(image, frame.orientation)
    if frame.offset_y:
        image = image.index_select(-2, _same_phase_before(image.shape[-2], frame.offset_y, period, image.device))
    if frame.offset_x:
        image = image.index_select(-1, _same_phase_before(image.shape[-1], frame.offset_x, period, image.device))
    return image


def out_of_frame(image: Tensor, frame: Frame) -> Tensor:
    """Undo :func:`into_frame` on a result of the same grid (e.g. the decoded colour)."""
    return orient(image[..., frame.offset_y :, frame.offset_x :], frame.orientation)


def all_frames(divisibility: int) -> list[Frame]:
    return [Frame(k, dy, dx) for k in ORIENTATIONS for dy in range(divisibility) for dx in range(divisibility)]


def central_window(image: Tensor, size: int, divisibility: int) -> Tensor:
    """The central ``size``² window of (..., H, W), its corner on the grid (so on-grid stays on-grid)."""
    height, width = image.shape[-2:]
    top = max((height - size) // 2, 0) // divisibility * divisibility
    left = max((width - size) // 2, 0) // divisibility * divisibility
    return image[..., top : top + size, left : left + size]


@torch.inference_mode()
def round_trip_scores(model: InvertibleGray, grays: Tensor) -> Tensor:
    """(B,1,H,W) grays in [0,1], sides multiples of the divisibility -> (B,): the error of
    encode(decode(gray)) against the gray over the energy of the pattern encode adds."""
    colour = model.decode(grays).clamp(0.0, 1.0)
    again = torch.round(model.encode(colour) * 255.0) / 255.0
    m = PROBE_MARGIN
    inner = (..., slice(m, -m), slice(m, -m))
    error = ((again - grays)[inner] ** 2).mean(dim=(1, 2, 3))
    pattern = ((again - rgb_to_luma(colour))[inner] ** 2).mean(dim=(1, 2, 3))
    return error / pattern.clamp_min(1e-10)


def _offset_batch(image: Tensor, size: int, divisibility: int) -> Tensor:
    """(d², 1, S, S): the central window of (1,H,W) ``image`` as it lies in each frame that pads
    (dy, dx) lines on top and left, cut from the image itself (no padding reaches the probe)."""
    height, width = image.shape[-2:]
    top = max((height - size) // 2, divisibility) // divisibility * divisibility
    left = max((width - size) // 2, divisibility) // divisibility * divisibility
    return torch.stack([image[..., top - dy : top - dy + size, left - dx : left - dx + size]
                        for dy in range(divisibility) for dx in range(divisibility)])


def frame_scores(model: InvertibleGray, gray: Tensor, probe: int = PROBE_SIZE) -> dict[Frame, float]:
    """Round-trip score of every frame of ``gray`` (1,H,W) in [0,1], its sides at least
    ``probe`` + 2 blocks (lower is more consistent)."""
    d = model.divisibility
    offsets = [(dy, dx) for dy in range(d) for dx in range(d)]
    scores: dict[Frame, float] = {}
    for orientation in ORIENTATIONS:
        values = round_trip_scores(model, _offset_batch(unorient(gray, orientation), probe, d))
        scores.update({Frame(orientation, dy, dx): float(v) for (dy, dx), v in zip(offsets, values)})
    return scores


def score_ratios(scores: dict[Frame, float], frames: list[Frame], over: Iterable[float] | None = None) -> list[float]:
    """Each frame's score over the best of ``over`` (default: of ``frames``; all 1 when the best
    round trip is exact)."""
    best = min(over) if over is not None else min(scores[f] for f in frames)
    return [scores[f] / best if best > 0 else 1.0 for f in frames]


def shortlist(scores: dict[Frame, float]) -> list[Frame]:
    """The frames whose round trip is nearly as good as the best one's, best first."""
    order = sorted(scores, key=lambda f: (scores[f], not f.is_identity))  # a tie keeps the gray as it comes
    best = scores[order[0]]
    return [f for f in order[:SHORTLIST_SIZE] if scores[f] <= SHORTLIST_RATIO * best + 1e-4]


@torch.inference_mode()
def candidate_views(model: InvertibleGray, gray: Tensor, frames: list[Frame], window: int = JUDGE_WINDOW) -> Tensor:
    """(K, 4, S, S) in [0,1]: each frame's central window of the gray and its decoded colours."""
    d = model.divisibility
    views = []
    for frame in frames:
        framed = central_window(into_frame(gray, frame, d), window, d)
        framed = framed[..., : framed.shape[-2] // d * d, : framed.shape[-1] // d * d]
        colour = torch.round(model.decode(framed[None]).clamp(0.0, 1.0) * 255.0) / 255.0
        views.append(torch.cat([framed, colour[0]]))
    return torch.stack(views)


def probe_boxes(gray: Tensor, size: int, divisibility: int, count: int, steps: int = 4) -> list[tuple[slice, slice]]:
    """Up to ``count`` regions of about ``size`` px of (1,H,W) ``gray``, the one with the most fine
    detail first (where the pattern is strongest; a defocused centre may carry too little of it to
    tell frames apart), each overlapping the ones before by less than half a side. Their corners are
    on the grid and their sides congruent to the gray's modulo the grid, so every frame of the gray
    is the same frame of each region, whatever the orientation."""
    height, width = gray.shape[-2:]
    region_h = min(height, size + (height - size) % divisibility)
    region_w = min(width, size + (width - size) % divisibility)
    detail = (gray - F.avg_pool2d(F.pad(gray[None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0]).abs()

    def origins(length: int, region: int) -> list[int]:
        return sorted({round(i * (length - region) / (steps - 1)) // divisibility * divisibility for i in range(steps)})

    ranked = sorted(((float(detail[..., y : y + region_h, x : x + region_w].mean()), y, x)
                     for y in origins(height, region_h) for x in origins(width, region_w)), reverse=True)
    corners: list[tuple[int, int]] = []
    for _, top, left in ranked:
        if len(corners) < count and all(abs(top - y) >= region_h // 2 or abs(left - x) >= region_w // 2 for y, x in corners):
            corners.append((top, left))
    return [(slice(top, top + region_h), slice(left, left + region_w)) for top, left in corners]


def probe_box(gray: Tensor, size: int, divisibility: int) -> tuple[slice, slice]:
    """The region of :func:`probe_boxes` with the most fine detail."""
    return probe_boxes(gray, size, divisibility, 1)[0]


@dataclass(frozen=True)
class FrameChoice:
    frame: Frame
    candidates: int  # how many frames the round trip left to the judge
    probability: float  # the judge's probability for the chosen frame (1.0 when it had no choice)


def find_frame(model: InvertibleGray, judge: FrameJudge | None, gray: np.ndarray) -> FrameChoice:
    """The frame in which the uint8 HxW ``gray`` decodes to its colours. A gray too small to probe,
    or a model without a judge, is taken as it comes."""
    d = model.divisibility
    if min(gray.shape) < PROBE_SIZE + 2 * d or judge is None:
        return FrameChoice(Frame(), 0, 1.0)
    device = next(model.parameters()).device
    image = torch.from_numpy(np.array(gray)).to(device, torch.float32)[None] / 255.0  # a copy: gray may be reversed
    regions = [image[(..., *box)] for box in probe_boxes(image, PROBE_REGION, d, PROBE_REGIONS)]
    region_scores = [frame_scores(model, region) for region in regions]
    frames = shortlist({f: math.exp(sum(math.log(max(s[f], 1e-12)) for s in region_scores) / len(regions))
                        for f in region_scores[0]})
    if len(frames) == 1:
        return FrameChoice(frames[0], 1, 1.0)
    with torch.inference_mode():
        logits = sum(judge_logits(judge, candidate_views(model, region, frames),
                                  torch.tensor(score_ratios(scores, frames, over=scores.values()), device=device))
                     for region, scores in zip(regions, region_scores))
        probabilities = torch.softmax(logits, dim=0)
    if Frame() in frames and float(probabilities[frames.index(Frame())]) >= IDENTITY_SHARE:
        chosen = frames.index(Frame())  # most grays without a chunk were only re-saved: keep them as they are
    else:
        chosen = int(probabilities.argmax())
    return FrameChoice(frames[chosen], len(frames), float(probabilities[chosen]))

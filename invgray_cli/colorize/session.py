"""Stage colorize: colour for a gray that carries no hidden code: automatic, or guided by colour hints.

A hint says "around pixel (x, y) the colour is #rrggbb"; only its chroma is used, since the tones
are the gray's own. A palette (``palette.py``) says "these colours are in the picture", without
positions; a colouriser with palette planes takes one, alone or with hints. The output's BT.601
luma equals the input gray up to 8-bit rounding.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from invgray_cli.colorize.dominant import dominant_colours
from invgray_cli.colorize.palette import Rgb, check_palette_size
from invgray_cli.colour import chroma_to_rgb, rgb_to_chroma
from invgray_cli.devices import exact_fp32, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.io.filesystem import open_failure
from invgray_cli.untrusted import parse_json, printable, shown
from invgray_cli.models.colorizer import HINT_PLANES, Colorizer
from invgray_cli.models.kinds import COLORIZER_NET
from invgray_cli.models.weights import load_weights
from invgray_cli.models.zoo import COLORIZER, ModelInfo, WeightsEntry, default_entry, entries, find_entry, load_entry

HINT_PATTERN = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*#?([0-9a-fA-F]{6})\s*$")
COLOUR_PATTERN = re.compile(r"\s*#?([0-9a-fA-F]{6})\s*")
MAX_HINTS = 10_000  # a person marks dozens; eval's random hints are hundreds
MAX_HINTS_BYTES = 1 << 20  # room for MAX_HINTS written one object per line
# Above this many pixels the net runs on overlapping tiles (its U-Net sees about 2 x this margin).
WHOLE_IMAGE_PIXELS = 4096 * 4096
TILE_MARGIN = 128  # > the U-Net's reach over its input planes: ~71 px (3 levels)


@dataclass(frozen=True)
class Hint:
    x: int
    y: int
    rgb: tuple[int, int, int]


def parse_hint(text: str) -> Hint:
    """``"X,Y,#RRGGBB"`` -> Hint, or a one-line error."""
    match = HINT_PATTERN.match(text)
    if match is None:
        raise InvgrayError(f"hint '{text}' is not X,Y,#RRGGBB (e.g. 120,40,#3366cc)")
    x, y, colour = int(match[1]), int(match[2]), match[3]
    return Hint(x, y, (int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)))


def read_hints_file(path: str | Path) -> list[Hint]:
    """A JSON list of {"x": int, "y": int, "color": "#rrggbb"}, at most MAX_HINTS_BYTES holding at
    most MAX_HINTS hints (the size is checked before the file is read), or a one-line error."""
    entries = parse_json(read_bounded(Path(path), MAX_HINTS_BYTES, "hints file"), f"{path}: the hints file",
                         max_bytes=MAX_HINTS_BYTES, max_depth=4)
    if not isinstance(entries, list):
        raise InvgrayError(f"{path}: hints must be a JSON list of {{\"x\", \"y\", \"color\"}} objects")
    if len(entries) > MAX_HINTS:
        raise InvgrayError(f"{path}: {len(entries):,} hints; at most {MAX_HINTS:,} are read")
    return [hint_of(entry, f"{path}: hint {index}") for index, entry in enumerate(entries)]


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, refused with one line when it holds more than ``limit`` (judged by its
    size before reading, and by reading at most ``limit`` + 1 bytes from a pipe or device)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(limit + 1) if size <= limit else b""
    except OSError as exc:
        raise InvgrayError(f"{path}: cannot read the {what}: {open_failure(path, exc)}") from None
    if size > limit or len(data) > limit:
        raise InvgrayError(f"{path}: the {what} is over {limit:,} bytes, more than invgray reads")
    return data


def hint_of(entry: object, where: str) -> Hint:
    """One hint of a hints file, or a one-line error naming the field at fault."""
    if not isinstance(entry, dict):
        raise InvgrayError(f"{where} is not {{\"x\": int, \"y\": int, \"color\": \"#rrggbb\"}}")
    for key, what in (("x", "a pixel column"), ("y", "a pixel row")):
        if type(entry.get(key)) is not int:  # not bool: `true` is no coordinate
            raise InvgrayError(f"{where} has \"{key}\": {shown(entry.get(key))}, not {what} (a whole number)")
    colour = entry.get("color")
    match = COLOUR_PATTERN.fullmatch(colour) if isinstance(colour, str) else None
    if match is None:
        raise InvgrayError(f"{where} has colour {shown(colour)}, not #rrggbb")
    red, green, blue = bytes.fromhex(match[1])
    return Hint(entry["x"], entry["y"], (red, green, blue))


def check_hints(hints: list[Hint], width: int, height: int, name: str) -> None:
    for hint in hints:
        if not (0 <= hint.x < width and 0 <= hint.y < height):
            raise InvgrayError(f"{name}: hint at ({hint.x}, {hint.y}) is outside the {width}x{height} image")


def random_hints(rgb: np.ndarray, count: int, rng: np.random.Generator) -> list[Hint]:
    """``count`` single-pixel hints at uniformly random positions with the photo's own colours
    (Zhang et al. 2017's evaluation protocol)."""
    height, width = rgb.shape[:2]
    positions = rng.choice(height * width, size=min(count, height * width), replace=False)
    return [Hint(int(p % width), int(p // width), tuple(int(v) for v in rgb[p // width, p % width]))
            for p in positions]


def palette_key(size: int) -> str:
    """How reports name a measure with a photo's own ``size`` dominant colours: ``psnr_palette5``."""
    return f"palette{size}"


@dataclass(frozen=True)
class Guidance:
    """What a measurement colourises a photo with, and ``key``, its name in reports: "10" for 10
    random hints, "palette5" for the photo's own 5 dominant colours."""

    key: str
    hints: list[Hint]
    palette: list[Rgb]


def measured_guidance(rgb: np.ndarray, index: int, hint_counts: Sequence[int],
                      palette_sizes: Sequence[int] = ()) -> list[Guidance]:
    """The guidance `eval --colorize` and training's validation colourise photo number ``index``
    with: for each count, random hints seeded by the index (so runs repeat); for each size, the
    photo's own dominant colours."""
    guidance = [Guidance(str(count), random_hints(rgb, count, np.random.default_rng(index)), [])
                for count in hint_counts]
    return guidance + [Guidance(palette_key(size), [], dominant_colours(rgb, size)) for size in palette_sizes]


def hint_planes(hints: list[Hint], height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1,2,H,W) hint chroma and (1,1,H,W) mask."""
    chroma = torch.zeros(1, 2, height, width)
    mask = torch.zeros(1, 1, height, width)
    if hints:
        ys = torch.tensor([h.y for h in hints])
        xs = torch.tensor([h.x for h in hints])
        colours = torch.tensor([h.rgb for h in hints], dtype=torch.float32).T[None, :, :, None] / 255.0  # (1,3,N,1)
        chroma[0, :, ys, xs] = rgb_to_chroma(colours)[0, :, :, 0]
        mask[0, 0, ys, xs] = 1.0
    return chroma, mask


def reference_palette(source: str | Path, size: int, max_pixels: int | None) -> list[Rgb]:
    """The ``size`` dominant colours of the colour photo at ``source`` (``--reference``), or a
    one-line error when it cannot be read or is a gray."""
    from invgray_cli.io.images import is_effectively_gray, read_color

    rgb = read_color(Path(source), max_pixels=max_pixels).rgb
    if is_effectively_gray(rgb):
        raise InvgrayError(f"{source}: the reference photo is a gray; it gives no colours")
    return dominant_colours(rgb, size)


def palette_batch(palettes: list[list[Rgb]], device: torch.device | None = None) -> torch.Tensor:
    """(B, K, 4) for the colouriser: each palette's colours as R, G, B in [0, 1] and a 1, padded with
    empty slots (all 0) to the longest palette's K."""
    slots = max((len(palette) for palette in palettes), default=0)
    batch = torch.zeros(len(palettes), slots, 4, device=device)
    for index, palette in enumerate(palettes):
        if palette:
            colours = torch.tensor([[*rgb, 255] for rgb in palette], dtype=torch.float32, device=device)
            batch[index, : len(palette)] = colours / 255.0
    return batch


@dataclass(frozen=True, eq=False)
class ColorizerCodec:
    """A loaded colouriser on a device."""

    model: Colorizer
    name: str
    sha256: str
    device: torch.device

    @property
    def info(self) -> ModelInfo:
        """What reports name: the colouriser and its weights."""
        return ModelInfo(self.name, self.sha256, self.model.divisibility, 0)

    @classmethod
    def load(cls, name: str | None = None, weights: str | Path | None = None, device: str = "auto",
             palette: bool = False) -> "ColorizerCodec":
        """A user's ``weights`` file, else the shipped colouriser ``name``, else the default one (the
        first that takes a palette, with ``palette``)."""
        if weights is not None:
            loaded = load_weights(weights, COLORIZER_NET)
            return cls.from_model(loaded.net, loaded.name, loaded.sha256, device)
        entry = find_colorizer(name, palette)
        return cls.from_model(load_entry(entry).net, entry.name, entry.sha256, device)

    @classmethod
    def from_model(cls, model: Colorizer, name: str, sha256: str = "", device: str = "auto") -> "ColorizerCodec":
        torch_device = resolve_device(device)
        exact_fp32(torch_device)
        return cls(model.to(torch_device).eval().requires_grad_(False), name, sha256, torch_device)

    @property
    def takes_palette(self) -> bool:
        """Whether this colouriser reads a palette (it was trained with palette planes)."""
        return self.model.takes_palette

    def check_palette(self, palette: list[Rgb]) -> None:
        """A one-line error for a palette this colouriser cannot use: too long, or it takes none."""
        check_palette_size(len(palette))
        if palette:
            self.check_takes_palette()

    def check_takes_palette(self) -> None:
        """A one-line error when this colouriser takes no palette."""
        if not self.takes_palette:
            raise InvgrayError(f"the colouriser '{printable(self.name[:80])}' takes no palette (it has no palette planes); "
                               "use one trained with `invgray train-colorizer --palette-share`")

    def colorize_array(self, gray: np.ndarray, hints: list[Hint] = (), palette: list[Rgb] = ()) -> np.ndarray:
        """uint8 HxW gray -> uint8 HxWx3 colour whose BT.601 luma is the gray (up to rounding),
        guided by point ``hints`` and, for a colouriser that takes one, a ``palette``."""
        if not (isinstance(gray, np.ndarray) and gray.dtype == np.uint8 and gray.ndim == 2 and gray.size):
            raise ValueError(f"gray must be a non-empty uint8 HxW array, got {getattr(gray, 'shape', type(gray))}")
        height, width = gray.shape
        check_hints(list(hints), width, height, "<image>")
        self.check_palette(list(palette))
        luma = torch.from_numpy(gray.astype(np.float32) / 255.0)[None, None]
        hint_chroma, mask = hint_planes(list(hints), height, width)
        colours = palette_batch([list(palette)]) if palette else None
        with torch.inference_mode():
            chroma = self._chroma(luma, hint_chroma, mask, colours)
            rgb = chroma_to_rgb(luma, chroma)
        return torch.round(rgb[0] * 255.0).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    def _chroma(self, luma: torch.Tensor, hints: torch.Tensor, mask: torch.Tensor,
                palette: torch.Tensor | None = None) -> torch.Tensor:
        """The guide planes on the whole image (on the CPU: the spreads touch coarse grids or sweep
        once, and a huge image's planes would not fit a GPU), then the net on it whole, or in tiles
        when very large."""
        planes = self.model.planes(luma, hints, mask, palette)
        height, width = luma.shape[-2:]
        if height * width > WHOLE_IMAGE_PIXELS:
            return self._tiled(planes)
        return self._whole(planes)

    def _whole(self, planes: torch.Tensor) -> torch.Tensor:
        """The net on ``planes`` padded to its divisibility: the gray and spreads by replication,
        the hint planes with zeros (no hints in the padding)."""
        height, width = planes.shape[-2:]
        step = self.model.divisibility
        pad = (0, -width % step, 0, -height % step)
        padded = torch.nn.functional.pad(planes, pad, mode="replicate")
        padded[:, HINT_PLANES, height:] = 0.0
        padded[:, HINT_PLANES, :, width:] = 0.0
        return self.model.body(padded.to(self.device))[..., :height, :width].float().cpu()

    def _tiled(self, planes: torch.Tensor, tile: int = 2048) -> torch.Tensor:
        height, width = planes.shape[-2:]
        out = torch.empty(1, 2, height, width)
        for top in range(0, height, tile):
            for left in range(0, width, tile):
                y0, x0 = max(top - TILE_MARGIN, 0), max(left - TILE_MARGIN, 0)
                y1, x1 = min(top + tile + TILE_MARGIN, height), min(left + tile + TILE_MARGIN, width)
                piece = self._whole(planes[..., y0:y1, x0:x1])
                bottom, right = min(top + tile, height), min(left + tile, width)
                out[..., top:bottom, left:right] = piece[..., top - y0 : bottom - y0, left - x0 : right - x0]
        return out


def find_colorizer(name: str | None, palette: bool = False) -> WeightsEntry:
    """The shipped colouriser ``name`` (its tag alone will do), else the default one; with
    ``palette``, the first shipped one that takes a palette where the default takes none."""
    entry = default_entry(COLORIZER) if name is None else find_entry(name, COLORIZER)
    if name is None and palette and entry is not None and not entry.config.get("palette_planes", False):
        entry = next((e for e in entries(COLORIZER) if e.config.get("palette_planes", False)), entry)
    if entry is None:
        raise InvgrayError("this invgray ships no colouriser yet; pass --colorizer-weights PATH (see `invgray train-colorizer`)")
    return entry


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Süsstrunk's (2003) colourfulness of a uint8 HxWx3 image."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))

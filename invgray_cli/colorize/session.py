"""Colour for a gray that carries no hidden code: automatic, or guided by colour hints.

A hint says "around pixel (x, y) the colour is #rrggbb"; only its chroma is used, since the tones
are the gray's own. The output's BT.601 luma equals the input gray up to 8-bit rounding.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from invgray_cli.devices import exact_fp32, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.models.zoo import ModelInfo
from invgray_cli.models.colorizer import HINT_PLANES, Colorizer, chroma_to_rgb, guide, load_colorizer, rgb_to_chroma

HINT_PATTERN = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*#?([0-9a-fA-F]{6})\s*$")
# Above this many pixels the net runs on overlapping tiles (its U-Net sees about 2 x this margin).
WHOLE_IMAGE_PIXELS = 4096 * 4096
TILE_MARGIN = 128  # > the U-Net's reach over its input planes: ~71 px (3 levels)


@dataclass(frozen=True)
class Hint:
    x: int
    y: int
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class ColorizerEntry:
    name: str
    file: str
    sha256: str
    description: str
    licence: str


# Each file is made by `invgray train-colorizer` (recipe in its model card, weights/NAME.md).
COLORIZERS: list[ColorizerEntry] = [
    ColorizerEntry(
        name="icolor_u24.hints_v1",
        file="icolor_u24.hints_v1-b402fab6.safetensors",
        sha256="b402fab6c9bcf3edb3ede7009b1c8608513a518bab82f7f5380d3bef1ee700bf",
        description="a 24-channel U-Net over the gray, its hints and their box and bilateral-grid spreads; "
        "trained on the 789 training photos (CPU, 8000 steps in two runs)",
        licence="code MIT; weights trained on research-use photos, see weights/icolor_u24.hints_v1.md",
    ),
]


def parse_hint(text: str) -> Hint:
    """``"X,Y,#RRGGBB"`` -> Hint, or a one-line error."""
    match = HINT_PATTERN.match(text)
    if match is None:
        raise InvgrayError(f"hint '{text}' is not X,Y,#RRGGBB (e.g. 120,40,#3366cc)")
    x, y, colour = int(match[1]), int(match[2]), match[3]
    return Hint(x, y, (int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)))


def read_hints_file(path: str | Path) -> list[Hint]:
    """A JSON list of {"x": int, "y": int, "color": "#rrggbb"}, or a one-line error."""
    try:
        entries = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InvgrayError(f"{path}: cannot read hints ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise InvgrayError(f"{path}: not JSON ({exc})") from None
    if not isinstance(entries, list):
        raise InvgrayError(f"{path}: hints must be a JSON list of {{\"x\", \"y\", \"color\"}} objects")
    hints = []
    for index, entry in enumerate(entries):
        if not (isinstance(entry, dict) and isinstance(entry.get("x"), int) and isinstance(entry.get("y"), int)
                and isinstance(entry.get("color"), str)):
            raise InvgrayError(f"{path}: hint {index} is not {{\"x\": int, \"y\": int, \"color\": \"#rrggbb\"}}")
        try:
            hints.append(parse_hint(f"{entry['x']},{entry['y']},{entry['color']}"))
        except InvgrayError:
            raise InvgrayError(f"{path}: hint {index} has colour '{entry['color']}', not #rrggbb") from None
    return hints


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
    def load(cls, name: str | None = None, weights: str | Path | None = None, device: str = "auto") -> "ColorizerCodec":
        if weights is not None:
            model, file_name, digest = load_colorizer(weights)
        else:
            entry = find_colorizer(name)
            from invgray_cli.models.zoo import weights_dir

            path = weights_dir() / entry.file
            if not path.is_file():
                raise InvgrayError(f"shipped colouriser '{entry.name}' is missing: {path}; reinstall invgray")
            model, _, digest = load_colorizer(path, entry.sha256)
            file_name = entry.name
        return cls.from_model(model, file_name, digest, device)

    @classmethod
    def from_model(cls, model: Colorizer, name: str, sha256: str = "", device: str = "auto") -> "ColorizerCodec":
        torch_device = resolve_device(device)
        exact_fp32(torch_device)
        return cls(model.to(torch_device).eval().requires_grad_(False), name, sha256, torch_device)

    def colorize_array(self, gray: np.ndarray, hints: list[Hint] = ()) -> np.ndarray:
        """uint8 HxW gray -> uint8 HxWx3 colour whose BT.601 luma is the gray (up to rounding)."""
        if not (isinstance(gray, np.ndarray) and gray.dtype == np.uint8 and gray.ndim == 2 and gray.size):
            raise ValueError(f"gray must be a non-empty uint8 HxW array, got {getattr(gray, 'shape', type(gray))}")
        height, width = gray.shape
        check_hints(list(hints), width, height, "<image>")
        luma = torch.from_numpy(gray.astype(np.float32) / 255.0)[None, None]
        hint_chroma, mask = hint_planes(list(hints), height, width)
        with torch.inference_mode():
            chroma = self._chroma(luma, hint_chroma, mask)
            rgb = chroma_to_rgb(luma, chroma)
        return torch.round(rgb[0] * 255.0).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    def _chroma(self, luma: torch.Tensor, hints: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The hint spreads on the whole image (on the CPU: they only touch coarse grids, and a huge
        image's planes would not fit a GPU), then the net on it whole, or in tiles when very large."""
        planes = guide(luma, hints, mask)
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


def find_colorizer(name: str | None) -> ColorizerEntry:
    if not COLORIZERS:
        raise InvgrayError("this invgray ships no colouriser yet; pass --colorizer-weights PATH (see `invgray train-colorizer`)")
    if name is None:
        return COLORIZERS[0]
    for entry in COLORIZERS:
        if entry.name == name:
            return entry
    raise InvgrayError(f"unknown colouriser '{name}' (shipped: {', '.join(e.name for e in COLORIZERS)})")


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Süsstrunk's (2003) colourfulness of a uint8 HxWx3 image."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))

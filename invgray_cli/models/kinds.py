"""Stage 2 (models): the kinds of net a weights file can hold, and the bounds of their configs.

A weights file names its kind in its metadata (``format``) and carries its net's config as JSON.
That metadata is untrusted: before anything is built from it, each field of the config is checked
against the bounds stated here. They admit every shipped and test net with room to spare, and
keep a net of one kind within a few GB however its file lies (``"encoder_blocks": 10**7`` once
took 7.4 GB before the file's tensors were even looked at).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from invgray_cli.errors import InvgrayError
from invgray_cli.models.colorizer import Colorizer, ColorizerConfig
from invgray_cli.models.detector import CodeDetector, DetectorConfig
from invgray_cli.models.frame_judge import FrameJudge, FrameJudgeConfig
from invgray_cli.models.jpeg_decoder import JpegDecoder, JpegDecoderConfig
from invgray_cli.models.net import InvertibleGray, NetConfig
from invgray_cli.untrusted import printable


@dataclass(frozen=True)
class Whole:
    """A whole number in ``low..high`` (not a bool, not 4.0)."""

    low: int
    high: int

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return None if self.low <= value <= self.high else f"must be in {self.low}..{self.high}"


@dataclass(frozen=True)
class OneOf:
    """A whole number from a short list."""

    choices: tuple[int, ...]

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}"
        return None


@dataclass(frozen=True)
class Real:
    """A finite number in the half-open range ``(low, high]``."""

    low: float
    high: float

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "must be a finite number"
        return None if self.low < value <= self.high else f"must be in ({self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Flag:
    """true or false."""

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"


@dataclass(frozen=True)
class CarrierPairs:
    """null, or the (row, column) sequencies of the two chroma carriers: two pairs of whole numbers
    in 0..3 (the Walsh functions of 4-px blocks; below the net's scale is checked with it)."""

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None
        pairs_ok = isinstance(value, list) and len(value) == 2 and all(
            isinstance(pair, list) and len(pair) == 2 and all(Whole(0, 3).problem(v) is None for v in pair)
            for pair in value)
        return None if pairs_ok else "must be null or two [row, column] pairs of whole numbers in 0..3"


Bound = Whole | OneOf | Real | Flag | CarrierPairs
SCALES = (1, 2, 4, 8)  # pixel-unshuffle factors (= a codec's divisibility, a detector's period)
WIDTH = Whole(1, 512)  # channels at a net's finest level
BLOCKS = Whole(0, 64)  # residual blocks in one trunk
UNET_WIDTH = Whole(1, 256)  # channels at a U-Net's full resolution, doubled per level
UNET_LEVELS = Whole(0, 5)


@dataclass(frozen=True, eq=False)  # one object per kind, hashed and compared by identity
class NetKind:
    """One kind of net: how messages name it, the ``format`` its files carry, its config type and
    class, and the bounds of every config field."""

    what: str
    file_format: str
    config_type: type
    net_type: type[nn.Module]
    bounds: Mapping[str, Bound]
    cross_check: Callable[[Any], str | None] | None = None  # fields that bound each other

    def config_from(self, fields: Any, source: str) -> Any:
        """The config of ``fields`` (JSON from a file), every field checked first; a one-line
        InvgrayError naming ``source`` and the first field out of bounds."""
        if not isinstance(fields, dict):
            raise InvgrayError(f"{source}: its {self.what} config is not a JSON object")
        for field, value in fields.items():
            bound = self.bounds.get(field)
            if bound is None:
                known = ", ".join(self.bounds)
                raise InvgrayError(f"{source}: its {self.what} config has an unknown field '{printable(field[:40])}' "
                                   f"(known: {known})")
            problem = bound.problem(value)
            if problem is not None:
                raise InvgrayError(f"{source}: {self.what} config field {field!r} {problem} "
                                   f"(the file says {printable(str(value)[:40])})")
        config = self.config_type(**fields)
        problem = self.cross_check(config) if self.cross_check else None
        if problem is not None:
            raise InvgrayError(f"{source}: {self.what} config {problem}")
        return config

    def build(self, config: Any) -> nn.Module:
        return self.net_type(config)


def _carriers_within_scale(config: NetConfig) -> str | None:
    if config.carriers is None or all(v < config.scale for pair in config.carriers for v in pair):
        return None
    return f"field 'carriers' must stay below its scale ({config.scale})"


CODEC_NET = NetKind("codec model", "invgray-weights/1", NetConfig, InvertibleGray, {
    "scale": OneOf(SCALES), "width": WIDTH, "encoder_blocks": BLOCKS, "decoder_blocks": BLOCKS,
    "max_residual": Real(0.0, 1.0),  # bound on |gray - luma|; 0 would divide by zero
    "carrier_gain": Real(0.0, 4.0),  # initial carrier coefficient; 0 would divide by zero
    "carriers": CarrierPairs(),
}, _carriers_within_scale)
DETECTOR_NET = NetKind("code detector", "invgray-detector/1", DetectorConfig, CodeDetector,
                       {"period": OneOf(SCALES), "width": WIDTH})
FRAME_JUDGE_NET = NetKind("frame judge", "invgray-frame-judge/1", FrameJudgeConfig, FrameJudge, {"width": WIDTH})
JPEG_DECODER_NET = NetKind("JPEG decoder", "invgray-jpeg-decoder/1", JpegDecoderConfig, JpegDecoder, {
    "width": UNET_WIDTH, "levels": UNET_LEVELS, "bottom_blocks": BLOCKS, "fine_planes": Flag()})
COLORIZER_NET = NetKind("colouriser", "invgray-colorizer/1", ColorizerConfig, Colorizer, {
    "width": UNET_WIDTH, "levels": UNET_LEVELS, "bottom_blocks": BLOCKS, "follow_edges": Flag(),
    "palette_planes": Flag()})
NET_KINDS = (CODEC_NET, DETECTOR_NET, FRAME_JUDGE_NET, JPEG_DECODER_NET, COLORIZER_NET)


def kind_of(net: nn.Module) -> NetKind:
    """The kind of a net about to be saved."""
    for kind in NET_KINDS:
        if type(net) is kind.net_type:
            return kind
    raise TypeError(f"{type(net).__name__} is not a net invgray saves")


def kind_of_format(file_format: str) -> NetKind | None:
    """The kind whose files carry ``file_format``, or None for a format invgray does not write."""
    return next((kind for kind in NET_KINDS if kind.file_format == file_format), None)

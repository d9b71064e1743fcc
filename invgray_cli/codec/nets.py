"""Stage 3 (codec): the nets on a device: a loaded model, its dtype and precision, its tile size, and the
companions shipped for it (code detector, frame judge, edge decoder, JPEG decoder).

A :class:`Codec` holds no per-image state, so one instance serves many images and threads. It
runs the nets on batches (``run_encoder``, ``run_decoder``); the stages around them and the
decode decision are functions of a Codec in ``encode.py`` and ``decode.py``.
"""
from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch

from invgray_cli.codec.tiling import MIN_TILE, ProgressFn, auto_tile_size, run_tiled
from invgray_cli.devices import compute_dtype, dtype_for, exact_fp32, resolve_device
from invgray_cli.errors import InvgrayError, is_out_of_memory
from invgray_cli.io.chunk import make_chunk
from invgray_cli.models.detector import CodeDetector
from invgray_cli.models.frame_judge import FrameJudge
from invgray_cli.models.jpeg_decoder import JpegDecoder
from invgray_cli.models.net import EdgeDecoder, InvertibleGray
from invgray_cli.models.zoo import (ModelInfo, resolve_model, shipped_detector, shipped_edge_decoder,
                                    shipped_frame_judge, shipped_jpeg_decoder)


def quantise(values: torch.Tensor) -> torch.Tensor:
    """[0,1] float -> uint8 by rounding value * 255 and clamping."""
    return torch.round(values * 255.0).clamp_(0, 255).to(torch.uint8)


ImageT = TypeVar("ImageT", np.ndarray, torch.Tensor)  # a stage gives back the kind it is given


def as_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A zero-copy tensor view of a uint8 array (a tensor as it is); read-only arrays (from Pillow)
    are fine since nothing writes to it."""
    if isinstance(array, torch.Tensor):
        return array
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def check_array(array: np.ndarray, channels: int, what: str) -> None:
    """A one-line ValueError unless ``array`` is a non-empty uint8 HxW (1 channel) or HxWxC image."""
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
    detector: CodeDetector | None = None  # None: the shipped one for this model, if any
    frame_judge: FrameJudge | None = None  # None: the shipped one for this model, if any
    sync_pattern: bool = True  # encode adds the sync pattern and decode looks for it; False: the nets alone
    edge_decoder: EdgeDecoder | None = None  # None: the shipped one for this model, if any
    edge_decoding: bool = True  # False: every line decoded by the model's own decoder (a crop's cut blocks mended)

    @classmethod
    def load(cls, model: str | None = None, weights: str | Path | None = None, device: str = "auto",
             tile: int | None = None, precision: str = "auto") -> "Codec":
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

    def with_edge_decoding(self, on: bool) -> "Codec":
        """The same model with its edge decoder (when it has one) used or not."""
        return replace(self, edge_decoding=on)

    def chunk_text(self, strength: float = 1.0) -> dict[str, str]:
        """The chunk a gray this codec writes carries (``strength``: what the gray floor left of its pattern)."""
        return make_chunk(self.info.name, self.info.sha256, strength)

    def autocast_context(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast or torch.float16, enabled=self.autocast is not None)

    def _run(self, fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, halo: int, out_channels: int,
             quantised: bool, on_tile: ProgressFn | None) -> torch.Tensor:
        if self.device.type == "cuda" and images.device.type == "cpu":  # pinned: tiles go to the GPU without a wait
            images = images.pin_memory()
        try:
            with torch.inference_mode(), self.autocast_context():
                return run_tiled(
                    fn, images, divisibility=self.model.divisibility, halo=halo, tile=self.tile, device=self.device,
                    dtype=self.dtype, out_channels=out_channels, on_tile=on_tile,
                    postprocess=quantise if quantised else None, out_dtype=torch.uint8 if quantised else torch.float32,
                )
        except RuntimeError as exc:  # torch.OutOfMemoryError included
            if not is_out_of_memory(exc):
                raise
            advice = "use --device cpu" if self.device.type == "cuda" else "free some memory"
            raise InvgrayError(f"out of memory on {self.device} even with {MIN_TILE}-pixel tiles; {advice}") from None

    def run_encoder(self, photos: torch.Tensor, quantised: bool, on_tile: ProgressFn | None = None) -> torch.Tensor:
        """uint8 (B,3,H,W) photos -> (B,1,H,W) grays as the net makes them: uint8, or float in [0,1]."""
        model = self.model
        return self._run(lambda t: model.encode(t / 255.0).float(), photos, model.encoder_receptive_field, 1,
                         quantised, on_tile)

    def run_decoder(self, grays: torch.Tensor, on_tile: ProgressFn | None = None,
                    net: InvertibleGray | None = None) -> list[np.ndarray]:
        """uint8 (B,1,H,W) grays -> uint8 HxWx3 colours by the model's decoder (or ``net``'s)."""
        model = net or self.model
        out = self._run(lambda t: model.decode(t / 255.0).float().clamp_(0.0, 1.0), grays,
                        model.decoder_receptive_field, 3, True, on_tile)
        return [image.permute(1, 2, 0).numpy() for image in out]  # channels-last storage: contiguous views

    def code_detector(self) -> CodeDetector | None:
        """The detector that tells whether a gray carries this model's code, or None."""
        return self.detector or shipped_detector(self.info.sha256)

    def judge(self) -> FrameJudge | None:
        """The frame judge of ``--find-frame`` for this model, or None."""
        return self.frame_judge or shipped_frame_judge(self.info.sha256)

    def edge_decoder_for_cuts(self) -> EdgeDecoder | None:
        """The edge decoder on this codec's device, when edge decoding is on and one exists."""
        if not self.edge_decoding:
            return None
        if self.edge_decoder is not None:
            return replace(self.edge_decoder, net=self.edge_decoder.net.to(device=self.device, dtype=self.dtype))
        return edge_decoder_on(self.info.sha256, self.device, self.dtype)

    def jpeg_decoder(self) -> TiledJpegDecoder | None:
        """The JPEG decoder shipped for this model (colour from a gray's block code), or None."""
        net = shipped_jpeg_decoder(self.info.sha256)
        return None if net is None else TiledJpegDecoder(net)


@dataclass(frozen=True)
class TiledJpegDecoder:
    """A JPEG decoder net (models/jpeg_decoder.py) run on any size: in tiles, each with a margin of
    the net's receptive radius, on the net's own device in float32. What ``colour_from_block_code`` takes."""

    net: JpegDecoder

    @property
    def needs_fine(self) -> bool:
        return self.net.needs_fine

    def restore(self, luma: torch.Tensor, chroma: torch.Tensor, fine: torch.Tensor | None = None,
                tile: int | None = 1024) -> torch.Tensor:
        """The net's ``forward`` on any size, in tiles of ``tile`` pixels (None: whole); (B,3,H,W)
        float32 on the CPU."""
        net = self.net
        net.check_fine(fine)
        planes = torch.cat([luma, chroma] + ([fine] if net.needs_fine else []), dim=1)
        return run_tiled(lambda t: net(t[:, :1], t[:, 1:3], t[:, 3:] if net.needs_fine else None), planes,
                         divisibility=net.divisibility, halo=net.receptive_radius, tile=tile,
                         device=next(net.parameters()).device, dtype=torch.float32, out_channels=3)


@functools.lru_cache(maxsize=4)
def edge_decoder_on(model_sha256: str, device: torch.device, dtype: torch.dtype) -> EdgeDecoder | None:
    """The shipped edge decoder for a codec model, on a codec's device and dtype (a copy per place)."""
    edge = shipped_edge_decoder(model_sha256)
    return None if edge is None else replace(edge, net=copy.deepcopy(edge.net).to(device=device, dtype=dtype))


def same_size_groups(arrays: list[np.ndarray]) -> list[list[int]]:
    """Indices of ``arrays`` grouped by height and width, in first-seen order (one batch each)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, array in enumerate(arrays):
        groups.setdefault(array.shape[:2], []).append(index)
    return list(groups.values())

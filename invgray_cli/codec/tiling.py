"""Tiled inference that equals whole-image inference.

The image is (virtually) padded once to the network's divisibility by mirroring (reflection
about the last row/column, so the hidden checkerboard carrier keeps its phase: +0.1 to +1 dB on
photos whose sides are not multiples of 4, measured against edge replication);
tiles start at multiples of the tile size, carry a halo of at least the receptive-field
radius and are clipped at the padded border, so every kept pixel sees exactly what it
would see in a single whole-image pass. Only tile centres are pasted. The whole image
stays on the CPU in its own dtype; each tile is converted, moved to the device, run and
brought back, so memory grows with the tile size, not the image size.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from invgray_cli.errors import is_out_of_memory

TileFn = Callable[[Tensor], Tensor]
ProgressFn = Callable[[int, int], None]  # (tiles done, tiles total)

MIN_TILE = 32  # below this the halo dominates; give up on out-of-memory instead


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def compute_padding(height: int, width: int, divisibility: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(pad, unpad) for ``F.pad`` in (left, right, top, bottom) order, as CompressAI.

    Pads right and bottom up to multiples of ``divisibility``; ``F.pad(x, unpad)`` crops it back.
    """
    pad_w = round_up(width, divisibility) - width
    pad_h = round_up(height, divisibility) - height
    return (0, pad_w, 0, pad_h), (0, -pad_w, 0, -pad_h)


def auto_tile_size(device: torch.device | str) -> int:
    """Tile edge for ``device``: 1024 on CPU (a 1024² image runs in one pass; ~0.3 GB of activations
    for the default net), larger on big GPUs."""
    device = torch.device(device)
    if device.type != "cuda":
        return 1024
    total = torch.cuda.get_device_properties(device).total_memory
    gib = total / 2**30
    return 2048 if gib >= 16 else 1024 if gib >= 6 else 512


def tile_spans(length: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Per tile along one axis of a padded length: (in_start, in_stop, core_start, core_stop)."""
    spans = []
    for core_start in range(0, length, tile):
        core_stop = min(core_start + tile, length)
        spans.append((max(0, core_start - halo), min(length, core_stop + halo), core_start, core_stop))
    return spans


def mirror_indices(start: int, stop: int, length: int, device: torch.device | str = "cpu") -> Tensor:
    """Indices start..stop-1 into a line of ``length``, reflected about its last element beyond it
    (clamped where the line is too short to reflect, e.g. a 1-pixel image), on ``device``."""
    indices = torch.arange(start, stop, device=device)
    indices = torch.where(indices >= length, 2 * (length - 1) - indices, indices)
    return indices.clamp_(0, length - 1)


def crop_padded(image: Tensor, y0: int, y1: int, x0: int, x1: int) -> Tensor:
    """image[..., y0:y1, x0:x1] as if the image were mirror-padded beyond its size (a copy only at the border)."""
    height, width = image.shape[-2:]
    if y1 > height:
        image = image.index_select(-2, mirror_indices(y0, y1, height, image.device))
        y0, y1 = 0, y1 - y0
    if x1 > width:
        return image[..., y0:y1, :].index_select(-1, mirror_indices(x0, x1, width, image.device))
    return image[..., y0:y1, x0:x1]


def to_device(piece: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A tile on the nets' device in their dtype: moved as stored (a uint8 image: a quarter of
    float32's bytes) and converted there; without waiting on the copy when the tile lies in pinned
    host memory (as the codec's images do on CUDA)."""
    return piece.to(device, non_blocking=device.type == "cuda" and piece.is_pinned()).to(dtype)


def _run_grid(
    fn: TileFn,
    image: Tensor,
    out: Tensor,
    *,
    divisibility: int,
    halo: int,
    tile: int,
    device: torch.device,
    dtype: torch.dtype,
    postprocess: TileFn | None,
    on_tile: ProgressFn | None,
) -> None:
    height, width = image.shape[-2:]
    padded_h, padded_w = round_up(height, divisibility), round_up(width, divisibility)
    rows, cols = tile_spans(padded_h, tile, halo), tile_spans(padded_w, tile, halo)
    total, done = len(rows) * len(cols), 0
    for in_y0, in_y1, core_y0, core_y1 in rows:
        for in_x0, in_x1, core_x0, core_x1 in cols:
            piece = crop_padded(image, in_y0, in_y1, in_x0, in_x1)
            result = fn(to_device(piece, device, dtype))
            keep_y1, keep_x1 = min(core_y1, height), min(core_x1, width)
            result = result[..., core_y0 - in_y0 : keep_y1 - in_y0, core_x0 - in_x0 : keep_x1 - in_x0]
            result = result.float()
            if postprocess is not None:
                result = postprocess(result)
            out[..., core_y0:keep_y1, core_x0:keep_x1] = result.to("cpu")
            done += 1
            if on_tile is not None:
                on_tile(done, total)


def run_tiled(
    fn: TileFn,
    image: Tensor,
    *,
    divisibility: int,
    halo: int,
    tile: int | None,
    device: torch.device | str,
    dtype: torch.dtype,
    out_channels: int,
    on_tile: ProgressFn | None = None,
    postprocess: TileFn | None = None,
    out_dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Apply ``fn`` (a fully convolutional map) to ``image`` [B,C,H,W] tile by tile (each tile
    runs the whole batch at once).

    ``tile`` is the core edge in pixels (rounded down to a multiple of ``divisibility``);
    ``None`` runs one whole-image tile. ``halo`` is rounded up to a multiple of
    ``divisibility`` and must be at least the receptive-field radius of ``fn``.
    ``postprocess`` (e.g. 8-bit quantisation) is applied to each float32 tile result before it is
    stored into the output of ``out_dtype``. Returns [B,out_channels,H,W] on the CPU, stored
    channels-last so ``out[i].permute(1, 2, 0)`` is a contiguous HxWxC view.
    On out-of-memory (CUDA, or a failed CPU allocation) the tile is halved and the image restarted,
    down to ``MIN_TILE``; below that the error propagates.
    """
    if image.dim() != 4 or image.shape[0] < 1:
        raise ValueError(f"run_tiled expects a [B,C,H,W] tensor, got shape {tuple(image.shape)}")
    device = torch.device(device)
    height, width = image.shape[-2:]
    halo = round_up(max(halo, 0), divisibility)
    out = torch.empty((image.shape[0], out_channels, height, width), dtype=out_dtype, memory_format=torch.channels_last)
    padded_longest = max(round_up(height, divisibility), round_up(width, divisibility))
    current = padded_longest if tile is None else tile
    while True:
        current = max(divisibility, current // divisibility * divisibility)
        try:
            _run_grid(
                fn, image, out, divisibility=divisibility, halo=halo, tile=current, device=device,
                dtype=dtype, postprocess=postprocess, on_tile=on_tile,
            )
            return out
        except RuntimeError as exc:
            if not is_out_of_memory(exc) or min(current, padded_longest) // 2 < MIN_TILE:
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            current = min(current, padded_longest) // 2

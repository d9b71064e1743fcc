"""Stage 3 (codec), encode: one pipeline of stages, used unchanged by the CLI, the API, batches and eval.

    net -> gray guard (or plain quantisation) -> sync pattern -> block code (when asked)

The net runs on a batch of same-size photos; each later stage is a function of one gray. The gray
leaves as uint8 HxW, as it will be stored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from invgray_cli.codec.block_code import embed_block_code, photo_code_bits
from invgray_cli.codec.guard import guarded_gray, kept_moments, luma_windows, structure_at
from invgray_cli.codec.nets import Codec, as_tensor, check_array, same_size_groups
from invgray_cli.codec.sync_pattern import add_sync_pattern
from invgray_cli.codec.tiling import ProgressFn


@dataclass(frozen=True)
class EncodedGray:
    gray: np.ndarray  # uint8 HxW, as stored
    strength: float  # what the gray floor left of the hidden pattern (1: the net's own)
    block_code: bool  # carries the JPEG-safe block code


def encode_photos(codec: Codec, photos: list[np.ndarray], block_code: bool = False,
                  on_tile: ProgressFn | None = None) -> list[EncodedGray]:
    """uint8 HxWx3 photos -> their grays; photos of one size go through the net together."""
    for rgb in photos:
        check_array(rgb, 3, "rgb")
    held = codec.info.gray_floor is not None  # the guard needs the net's float gray
    encoded: list[EncodedGray | None] = [None] * len(photos)
    for indices in same_size_groups(photos):
        stack = torch.stack([as_tensor(photos[i]).permute(2, 0, 1) for i in indices])
        grays = codec.run_encoder(stack, quantised=not held, on_tile=on_tile)
        for i, gray in zip(indices, grays[:, 0]):
            encoded[i] = finish_gray(codec, photos[i], gray, block_code)
    return encoded


FLOOR_TRIES = 4  # guard passes at most, each aiming higher by what the later stages took


def finish_gray(codec: Codec, rgb: np.ndarray, net_gray: torch.Tensor, block_code: bool) -> EncodedGray:
    """The stages after the net, for one photo and its gray from the net (uint8, or float when the
    model has a gray floor): tensor code on the gray's device; the gray leaves it once, as uint8.
    The floor holds for the gray as written: the sync pattern and the block code also cost some
    structure, so when the written gray falls short the guard aims that much higher and tries again."""
    floor = codec.info.gray_floor
    pixels = as_tensor(rgb).to(net_gray.device)
    # the photo's block code is the same for every gray tried: its colours are measured once
    code_bits = photo_code_bits(pixels) if block_code else None
    if floor is None:
        return EncodedGray(_written(codec, rgb, net_gray, code_bits).cpu().numpy(), 1.0, block_code)
    luma = luma_windows(pixels)  # the photo's luma is the same for every gray measured against it
    moments = kept_moments(pixels, net_gray, luma)  # the net's gray is the same at every aim
    aim, strength = floor, 1.0
    for _ in range(FLOOR_TRIES):  # the aim only rises, so no strength above the last one can meet it
        held, strength = guarded_gray(pixels, net_gray.clone(), aim, moments, at_most=strength, luma=luma)
        gray = _written(codec, rgb, held, code_bits)
        shortfall = floor - structure_at(pixels, gray.float().div_(255.0), [1.0], luma=luma)[0]
        if shortfall <= 0 or strength == 0.0:
            break
        aim += shortfall
    return EncodedGray(gray.cpu().numpy(), strength, block_code)


def _written(codec: Codec, rgb: np.ndarray, gray: torch.Tensor, code_bits: np.ndarray | None) -> torch.Tensor:
    """A uint8 gray as it is written: with the sync pattern and, when given the photo's
    ``photo_code_bits``, the block code."""
    if codec.sync_pattern:
        gray = add_sync_pattern(gray)
    if code_bits is not None:
        gray = embed_block_code(gray, as_tensor(rgb), code_bits)
    return gray


def encode_array(codec: Codec, rgb: np.ndarray, block_code: bool = False, on_tile: ProgressFn | None = None) -> np.ndarray:
    """uint8 HxWx3 colour -> uint8 HxW gray, as stored."""
    return encode_photos(codec, [rgb], block_code, on_tile)[0].gray


def encode_float(codec: Codec, rgb: np.ndarray, on_tile: ProgressFn | None = None) -> np.ndarray:
    """The net stage alone: uint8 HxWx3 colour -> float32 HxW gray in [0,1], before any other stage."""
    check_array(rgb, 3, "rgb")
    return codec.run_encoder(as_tensor(rgb).permute(2, 0, 1)[None], quantised=False, on_tile=on_tile)[0, 0].numpy()


SPECKLE_STRENGTH = 0.6  # under it, strengthened grays came back with false-colour speckles (coffee at 0.56: 25.3 dB)


def held_warning(strength: float, floor: float | None) -> str | None:
    """What the user hears when the gray floor weakened an image's hidden colour."""
    if strength >= 1.0:
        return None
    if strength == 0.0:
        return f"hidden colour removed to keep the gray plain (gray floor {floor}): the gray is the plain luma"
    speckles = " and may show false-colour speckles" if strength < SPECKLE_STRENGTH else ""
    return (f"hidden colour weakened to {strength:.2f} of the model's to keep the gray plain (gray floor {floor}); "
            f"decode strengthens it back, but its colours come back less exact{speckles} (--gray-floor 0 keeps them)")

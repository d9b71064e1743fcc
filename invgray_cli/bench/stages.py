"""The time of each encode and decode stage of one photo, so the share of the stages other than
the nets can be checked (issue 23's target: at most 10 % of encode + decode at 1024² on a 2-core CPU).

Each stage is timed alone, as the pipeline calls it (``codec/encode.py``, ``codec/decode.py``),
on the photo's own intermediate results: the encoder net (float gray when the model has a gray
floor), the gray guard, adding the sync pattern, embedding the block code; then finding the sync
pattern, taking it out, the decoder net, reading the block code. The stages other than the search
are given tensors on the codec's device (on CUDA: what they cost there, once the nets' output
stays there too; the search reads arrays on the host). Warm-up calls are not timed; the
median of ``repeats`` calls is kept (CUDA synchronised before each clock read). The end-to-end
rows time ``encode_photos`` with and without the block code (a JPEG gray against a PNG gray) and
``decode_grays`` of a PNG gray.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from invgray_cli.codec.nets import Codec

NET_STAGES = ("encoder_net", "decoder_net")
# the stages other than the nets on each kind of gray's round trip (the JPEG gray: its code embedded and read)
DECODE_STAGES = ("sync_pattern_find", "sync_pattern_remove", "block_code_read")
OTHER_STAGES = {
    "png": ("guard", "sync_pattern_add", "sync_pattern_find", "sync_pattern_remove"),
    "jpeg": ("guard", "sync_pattern_add", "sync_pattern_find", "sync_pattern_remove", "block_code_embed",
             "block_code_read"),
}


def median_time(fn: Callable[[], Any], device: Any, warmup: int = 1, repeats: int = 5,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, by ``clock``
    (``time.process_time``, the process's CPU seconds, is steadier than the wall on a shared CPU)."""
    import torch

    def synchronise() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    synchronise()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        synchronise()
        times.append(clock() - start)
    return statistics.median(times)


def stage_times(codec: Codec, rgb: np.ndarray, warmup: int = 1, repeats: int = 5,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds of each stage, and of the whole encode (PNG gray, JPEG gray) and decode, for
    one uint8 HxWx3 photo."""
    import torch

    from invgray_cli.codec.block_code import embed_block_code, read_block_code
    from invgray_cli.codec.decode import decode_grays
    from invgray_cli.codec.encode import encode_photos
    from invgray_cli.codec.guard import guarded_gray
    from invgray_cli.codec.nets import as_tensor
    from invgray_cli.codec.sync_pattern import add_sync_pattern, find_sync_pattern, remove_sync_pattern
    from invgray_cli.io.images import GrayImage

    floor = codec.info.gray_floor
    device = codec.device
    photo = as_tensor(rgb).permute(2, 0, 1)[None]
    net_gray = codec.run_encoder(photo, quantised=floor is None)[0, 0]
    gray = guarded_gray(rgb, net_gray.clone(), floor)[0].numpy() if floor is not None else net_gray.numpy()
    patterned = add_sync_pattern(gray)
    reading = find_sync_pattern(patterned, codec.model.divisibility)
    # the stages' inputs on the codec's device (zero-copy views on the CPU); the search reads arrays
    on_device = {name: torch.from_numpy(array).to(device) for name, array in
                 (("rgb", rgb), ("gray", gray), ("patterned", patterned))}
    on_device["coded"] = embed_block_code(on_device["patterned"], on_device["rgb"])
    calls: dict[str, Callable[[], Any]] = {
        "encoder_net": lambda: codec.run_encoder(photo, quantised=floor is None),
        "sync_pattern_add": lambda: add_sync_pattern(on_device["gray"]),
        "block_code_embed": lambda: embed_block_code(on_device["patterned"], on_device["rgb"]),
        "decoder_net": lambda: codec.run_decoder(torch.from_numpy(gray)[None, None]),
        "sync_pattern_find": lambda: find_sync_pattern(patterned, codec.model.divisibility),
        "sync_pattern_remove": lambda: remove_sync_pattern(on_device["patterned"], reading),
        "block_code_read": lambda: read_block_code(on_device["coded"]),
        "encode_png_gray": lambda: encode_photos(codec, [rgb], block_code=False),
        "encode_jpeg_gray": lambda: encode_photos(codec, [rgb], block_code=True),
        "decode": lambda: decode_grays(codec, [GrayImage(patterned, None, codec.chunk_text())]),
    }
    if floor is not None:
        float_gray = net_gray.to(device)
        calls["guard"] = lambda: guarded_gray(on_device["rgb"], float_gray.clone(), floor)  # the clone: ~1 ms at 1024²
    times = {name: median_time(call, codec.device, warmup, repeats, clock) for name, call in calls.items()}
    return {"guard": 0.0, **times}  # no gray floor: the net quantises its own gray


def stage_shares(times: dict[str, float]) -> dict[str, float]:
    """The time outside the nets as a share of encode + decode, for a PNG and a JPEG gray. Encode's is
    the whole encode less its net, so the gray floor's extra passes and the tiling count too (the
    stage rows time one pass of each); decode's is its stages' rows (it makes one pass of each, and
    a whole decode less its net would be mostly the net's own jitter)."""
    nets = sum(times[name] for name in NET_STAGES)
    shares = {}
    for kind, encode in (("png", "encode_png_gray"), ("jpeg", "encode_jpeg_gray")):
        decode_stages = [name for name in OTHER_STAGES[kind] if name in DECODE_STAGES]
        other = max(times[encode] - times["encoder_net"], 0.0) + sum(times[name] for name in decode_stages)
        shares[kind] = other / (nets + other)
    return shares

"""What ``invgray bench`` times: the codec's array path and the paper's rebuilt network, per size
and device, into one report (the ``--json`` document)."""
from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from invgray_cli.report import envelope, model_facts
from invgray_cli.bench.measure import MEMORY_NOTE, Size, device_name, measure, synthetic_photo

if TYPE_CHECKING:
    import torch

    from invgray_cli.codec.nets import Codec

SPEED_TARGET = 25.0  # the bar: ours >= 25x faster than the paper's architecture at 1024^2, each direction
TARGET_SIZE = (1024, 1024)
# Xia et al. 2018, Table 3: seconds (encode, decode). CPU: the authors' machine; GPU: GTX 980 Ti.
PAPER_TABLE3 = {
    "cpu": {(256, 256): (0.939, 0.825), (512, 512): (3.717, 3.284), (1024, 1024): (15.117, 13.133)},
    "cuda": {(256, 256): (0.034, 0.029), (512, 512): (0.113, 0.086), (1024, 1024): (0.384, 0.321)},
}


def random_codec(device: str, tile: int | None, precision: str = "auto") -> Codec:
    """The default architecture with random weights, for timing before trained weights exist."""
    import torch

    from invgray_cli.codec.nets import Codec
    from invgray_cli.models.net import InvertibleGray, NetConfig
    from invgray_cli.models.zoo import ModelInfo

    torch.manual_seed(0)
    net = InvertibleGray(NetConfig())
    for p in net.parameters():  # no all-zero layers, so nothing is cheaper than it will be trained
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.02)
    info = ModelInfo("random-init", "0" * 64, net.divisibility, net.receptive_field)  # no file: a placeholder digest
    return Codec.from_model(net, info, device=device, tile=tile, precision=precision)


def bench_codec(codec: Codec, size: Size, warmup: int, repeats: int, batch: int = 1) -> dict[str, Any]:
    """Seconds per call of the codec's array path: ``batch`` images of the size in one call
    (one is the usual), with the megapixels per second that makes."""
    from invgray_cli.codec.decode import decode_grays
    from invgray_cli.codec.encode import encode_array, encode_photos
    from invgray_cli.io.images import GrayImage

    rgb = synthetic_photo(size)
    photos = [rgb] * batch
    grays = [GrayImage(encode_array(codec, rgb), None, codec.chunk_text())] * batch  # as read from its PNG
    calls = {"encode": lambda: encode_photos(codec, photos), "decode": lambda: decode_grays(codec, grays)}
    result: dict[str, Any] = {}
    for op, call in calls.items():
        timing = measure(call, codec.device, warmup, repeats)
        timing["megapixels_per_s"] = batch * size[0] * size[1] / 1e6 / timing["median_s"]
        result[op] = timing
    return result


def bench_paper(paper: ModuleType, device: torch.device, size: Size, warmup: int, repeats: int) -> dict[str, Any] | None:
    """The paper rebuild, whole image in one pass (as its Table 3); None where its size rule forbids."""
    import torch

    width, height = size
    if width % paper.DIVISIBILITY or height % paper.DIVISIBILITY:
        return None
    torch.manual_seed(0)
    encoder = paper.PaperEncoder().to(device).eval()
    decoder = paper.PaperDecoder().to(device).eval()
    # each in its fastest layout measured on a 2-core CPU: the encoder's input channels-last, as
    # invgray's (11.7 s instead of 15.3 at 1024²), the decoder's convolutions prepacked (8.1 s
    # instead of 11.9; invgray's decoder runs as the codec runs it, 5 % slower than prepacked)
    rgb = torch.rand(1, 3, height, width, device=device).contiguous(memory_format=torch.channels_last)
    decoder_convs = paper.prepacked(decoder.convs) if paper.can_prepack(device) else None
    with torch.inference_mode():
        gray = encoder(rgb).contiguous()

        def encode() -> None:
            encoder(rgb)

        def decode() -> None:
            decoder(gray, decoder_convs)

        result = {
            "encode": measure(encode, device, warmup, repeats),
            "decode": measure(decode, device, warmup, repeats),
        }
    del encoder, decoder, decoder_convs, rgb, gray
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result



def _paper_table3(device_type: str, size: Size) -> dict[str, float] | None:
    row = PAPER_TABLE3.get(device_type, {}).get(size)
    return {"encode_s": row[0], "decode_s": row[1]} if row else None


def run_bench(
    sizes: list[Size],
    devices: list[str],
    load_codec: Callable[[str], Codec],
    warmup: int = 1,
    repeats: int = 5,
    paper: bool = False,
    on_step: Callable[[str], None] | None = None,
    batch: int = 1,
) -> dict:
    """Time every size on every device; returns the ``invgray bench --json`` document."""
    import torch

    from invgray_cli.models import paper as paper_arch

    paper_module = paper_arch if paper else None
    results, device_info, model = [], {}, model_facts(None, None)
    for spec in devices:
        codec = load_codec(spec)
        model = model_facts(codec.info.name, codec.info.sha256)
        device_info[str(codec.device)] = {
            "name": device_name(codec.device),
            "tile": codec.tile,
            "precision": codec.precision,  # what the nets computed in: fp16 autocast on CUDA by default
        }
        for size in sizes:
            if on_step:
                on_step(f"{codec.device} {size[0]}x{size[1]} invgray")
            row = {"device": str(codec.device), "width": size[0], "height": size[1], "tile": codec.tile,
                   "batch": batch}
            row.update(bench_codec(codec, size, warmup, repeats, batch))
            row["paper_table3"] = _paper_table3(codec.device.type, size)
            if paper_module is not None:
                if on_step:
                    on_step(f"{codec.device} {size[0]}x{size[1]} paper rebuild")
                rebuild = bench_paper(paper_module, codec.device, size, warmup, repeats)
                row["paper_rebuild"] = rebuild
                row["speedup"] = None if rebuild is None else {
                    op: rebuild[op]["median_s"] / (row[op]["median_s"] / batch) for op in ("encode", "decode")
                }
            results.append(row)
        del codec
    return envelope(
        "invgray-bench",
        "encode/decode seconds per call (median and min of repeats after untimed warm-ups), megapixels "
        "per second and peak memory of the codec's array path (uint8 in and out, tiled) on synthetic images, "
        "`batch` images of a size per call"
        + ("; paper_rebuild = random-weight rebuild of the paper's network, whole image" if paper else ""),
        model,
        ",".join(device_info),
        threads=torch.get_num_threads(),
        devices=device_info,
        warmup=warmup,
        repeats=repeats,
        batch=batch,
        memory=MEMORY_NOTE,
        speed_target={"ratio": SPEED_TARGET, "size": list(TARGET_SIZE)} if paper else None,
        results=results,
    )



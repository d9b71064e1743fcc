"""Tiled inference equals whole-image inference: the issue's numbers.

For each size and tile edge, encodes a synthetic photo whole and tiled and reports
- the max |tiled - whole| of the encoder's gray before quantisation (target <= 1e-4),
- the share of identical pixels in the written 8-bit gray PNGs (target >= 99.99 %),
- the share of identical pixels of the decoded colour (decoder tiled vs whole, same gray).

    python benchmarks/tiling_equality.py            # shipped weights (random net if none)
    python benchmarks/tiling_equality.py --random --json
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's invgray_cli, installed or not

import numpy as np
import torch
from PIL import Image

from invgray_cli import __version__
from invgray_cli.bench import synthetic_photo
from invgray_cli.codec.nets import Codec
from invgray_cli.io.writing import write_gray_png
from invgray_cli.models.net import InvertibleGray, NetConfig
from invgray_cli.models.zoo import ModelInfo, default_model_name
from invgray_cli.codec.encode import encode_array, encode_float
from invgray_cli.codec.decode import decode_array

SIZES = "1x1,17x31,1000x3,1537x1025"  # height x width
TILES = "64,128,256,512,1024"
MAX_ABS_TARGET = 1e-4
IDENTICAL_TARGET = 99.99


def random_codec(seed: int = 0) -> Codec:
    """The default architecture with PyTorch's default init everywhere (tails included), so the
    learned residual is far from zero and every layer shapes the output."""
    torch.manual_seed(seed)
    net = InvertibleGray(NetConfig())
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.reset_parameters()
    return Codec.from_model(net, ModelInfo("random.default", "", net.divisibility, net.receptive_field), device="cpu")


def png_pixels(gray: np.ndarray, codec: Codec) -> np.ndarray:
    """The pixels of the gray PNG as written by the codec and read back."""
    buffer = io.BytesIO()
    write_gray_png(gray, None, codec.chunk_text(), buffer)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


def parse_pairs(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.lower().split("x")) for part in text.split(",")]  # type: ignore[misc]


def measure(codec: Codec, height: int, width: int, tiles: list[int]) -> list[dict]:
    rgb = synthetic_photo((width, height), seed=height * 7919 + width)
    whole = codec.with_tile(None)
    float_whole = encode_float(whole, rgb)
    png_whole = png_pixels(encode_array(whole, rgb), codec)
    colour_whole = decode_array(whole, png_whole)
    rows = []
    for tile in tiles:
        tiled = codec.with_tile(tile)
        started = time.perf_counter()
        float_tiled = encode_float(tiled, rgb)
        png_tiled = png_pixels(encode_array(tiled, rgb), codec)
        colour_tiled = decode_array(tiled, png_whole)
        rows.append({
            "size": f"{height}x{width}",
            "tile": tile,
            "gray_max_abs_diff": float(np.abs(float_tiled - float_whole).max()),
            "gray_png_identical_pct": 100.0 * float((png_tiled == png_whole).mean()),
            "colour_identical_pct": 100.0 * float((colour_tiled == colour_whole).mean()),
            "seconds": round(time.perf_counter() - started, 3),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", action="store_true", help="use a randomly initialised net, not shipped weights")
    parser.add_argument("--weights", help="a weights file instead of the shipped default")
    parser.add_argument("--sizes", default=SIZES, help=f"HxW,... (default {SIZES})")
    parser.add_argument("--tiles", default=TILES, help=f"tile edges (default {TILES})")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)

    if args.weights:
        codec = Codec.load(weights=args.weights, device="cpu")
    elif args.random or default_model_name() is None:
        if not args.random:
            print("no shipped weights registered: using a random net (--random)", file=sys.stderr)
        codec = random_codec()
    else:
        codec = Codec.load(device="cpu")
    tiles = [int(t) for t in args.tiles.split(",")]
    rows = [row for height, width in parse_pairs(args.sizes) for row in measure(codec, height, width, tiles)]
    worst_abs = max(r["gray_max_abs_diff"] for r in rows)
    worst_identical = min(r["gray_png_identical_pct"] for r in rows)
    report = {
        "name": "tiling_equality",
        "description": "tiled vs whole-image inference on CPU (fp32): encoder gray before quantisation, "
                       "written gray PNG pixels, decoded colour pixels",
        "model": {"name": codec.info.name, "sha256": codec.info.sha256[:16], "receptive_field": codec.info.receptive_field},
        "versions": {"invgray": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "results": {
            "rows": rows,
            "worst_gray_max_abs_diff": worst_abs,
            "worst_gray_png_identical_pct": worst_identical,
            "pass": worst_abs <= MAX_ABS_TARGET and worst_identical >= IDENTICAL_TARGET,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"model {codec.info.name}  (receptive field {codec.info.receptive_field} px)")
        print(f"{'size':>10} {'tile':>5} {'max|tiled-whole|':>17} {'gray PNG same %':>16} {'colour same %':>14}")
        for r in rows:
            print(f"{r['size']:>10} {r['tile']:>5} {r['gray_max_abs_diff']:>17.2e} "
                  f"{r['gray_png_identical_pct']:>16.4f} {r['colour_identical_pct']:>14.4f}")
        verdict = "PASS" if report["results"]["pass"] else "FAIL"
        print(f"worst: {worst_abs:.2e} (<= {MAX_ABS_TARGET:g}), {worst_identical:.4f} % (>= {IDENTICAL_TARGET} %): {verdict}")
    return 0 if report["results"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The time of each encode and decode stage at each size, and the time outside the nets (the whole
encode and decode less the nets: every pass of the gray floor, tiling and conversions included) as a
share of encode + decode (issue 23: at most 10 % at 1024² on this CPU, for ordinary photos and for
``bench``'s worst case alike; a JPEG gray's encode at most 1.15x a PNG gray's).

    python benchmarks/stage_times.py --sizes 1024 --repeats 5
    python benchmarks/stage_times.py --threads 1 --clock cpu     # steadier on a CPU others share
    python benchmarks/stage_times.py --sizes 1024,2048 --images chelsea --device cuda --json stages.json

Photos: ``chelsea`` (scikit-image's cat, resized; needs scikit-image), ``synthetic`` (``bench``'s
noisy gradient, on which the gray guard does the most work), or image files. The model is the
default shipped one (``--model`` to choose).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from invgray_cli import __version__
from invgray_cli.bench.measure import device_name, parse_sizes, synthetic_photo
from invgray_cli.bench.stages import stage_shares, stage_times
from invgray_cli.cli.app import keep_freed_memory
from invgray_cli.codec.nets import Codec
from invgray_cli.io.images import read_color

ROWS = ("encoder_net", "guard", "sync_pattern_add", "block_code_embed", "decoder_net", "sync_pattern_find",
        "sync_pattern_remove", "block_code_read", "encode_png_gray", "encode_jpeg_gray", "decode")


def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    """uint8 HxWx3 of ``size`` (width, height): a named test photo or a file, resized."""
    if name == "synthetic":
        return synthetic_photo(size)
    if name == "chelsea":
        from skimage import data

        image = Image.fromarray(data.chelsea())
    else:
        image = Image.fromarray(read_color(Path(name)).rgb)
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024", help="N or WxH, comma-separated")
    parser.add_argument("--images", default="chelsea,synthetic", help="chelsea, synthetic or paths, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: its own choice)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall seconds, or the process's CPU seconds (CPU device only; with --threads 1, "
                             "steady when other work shares the cores)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    keep_freed_memory()  # as the CLI runs
    if args.threads:
        torch.set_num_threads(args.threads)
    codec = Codec.load(model=args.model, device=args.device)
    if args.clock == "cpu" and codec.device.type != "cpu":
        parser.error("--clock cpu times the CPU only")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    report = {"invgray": __version__, "torch": torch.__version__, "device": device_name(codec.device),
              "threads": torch.get_num_threads(), "model": codec.info.name, "precision": codec.precision,
              "repeats": args.repeats, "clock": args.clock, "python": platform.python_version(), "results": []}
    print(f"{report['device']}, {report['threads']} threads, {codec.info.name} {codec.precision}, "
          f"median of {args.repeats} ({args.clock} ms)", flush=True)
    for size in parse_sizes(args.sizes):
        for name in args.images.split(","):
            times = stage_times(codec, photo(name, size), args.warmup, args.repeats, clock)
            shares = stage_shares(times)
            ratio = times["encode_jpeg_gray"] / times["encode_png_gray"]
            report["results"].append({"image": name, "size": list(size), "seconds": times, "other_stage_share": shares,
                                      "jpeg_over_png_encode": ratio})
            print(f"\n{name} {size[0]}x{size[1]}")
            for row in ROWS:
                print(f"  {row:<20} {times[row] * 1e3:9.1f}")
            print(f"  outside the nets / (encode + decode): PNG gray {shares['png']:.1%}, JPEG gray {shares['jpeg']:.1%}; "
                  f"JPEG gray encode / PNG gray encode {ratio:.2f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

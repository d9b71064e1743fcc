"""Restored PSNR of grays moved after encoding (cropped by 1-3 px, mirrored, turned), per set.

Each photo is encoded by the default model, then moved each way in MOVES. The moved gray is
decoded three ways: in the frame `invgray decode --find-frame` finds for it (Codec.find_frame; the
code detector, which decode asks first, is left out), as it comes (plain `decode`), and in the true
frame (what a perfect search would give; the rest of the gap to the clean decode is the decoder
meeting a cut edge). Also reported: the share of moved grays whose search restores within 0.5 dB
of the true frame, the share of unmoved grays it keeps so, and the search's time.

    python benchmarks/moved_grays.py ../shared/data/val ../shared/data/val_smooth ../shared/data/val_art --json out.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from invgray_cli import metrics
from invgray_cli.codec import Codec
from invgray_cli.imageio import read_color
from invgray_cli.train.data import find_images
from invgray_cli.train.frames import transform, true_frame

# (name, orientation, rows cut at the top, columns cut at the left) as the user sees the gray;
# "unmoved" is a gray that only lost its chunk: what the search costs when there was nothing to find
MOVES = [("unmoved", 0, 0, 0), ("crop 1,0", 0, 1, 0), ("crop 0,2", 0, 0, 2), ("crop 3,3", 0, 3, 3), ("crop 2,1", 0, 2, 1),
         ("mirror", 2, 0, 0), ("flip", 1, 0, 0), ("turn 90", 6, 0, 0), ("turn 180", 3, 0, 0),
         ("turn 270 + crop 1,1", 5, 1, 1)]


def moved(array: np.ndarray, orientation: int, cut_y: int, cut_x: int) -> np.ndarray:
    tensor = torch.from_numpy(array)
    tensor = tensor.permute(2, 0, 1) if tensor.dim() == 3 else tensor
    out = transform(tensor, orientation, cut_y, cut_x)
    out = out.permute(1, 2, 0) if out.dim() == 3 else out
    return np.ascontiguousarray(out.numpy())


def measure(codec: Codec, folder: Path, every: int) -> dict:
    rows = []
    for path in find_images([folder])[::every]:
        rgb = read_color(path).rgb
        gray = codec.encode_array(rgb)
        clean = metrics.psnr(codec.decode_array(gray), rgb)
        for name, orientation, cut_y, cut_x in MOVES:
            moved_gray, truth = moved(gray, orientation, cut_y, cut_x), moved(rgb, orientation, cut_y, cut_x)
            tick = time.perf_counter()
            searched = codec.decode_in_frame(moved_gray, codec.find_frame(moved_gray).frame)
            seconds = time.perf_counter() - tick
            frame = true_frame(*gray.shape, orientation, cut_y, cut_x, codec.model.divisibility)
            rows.append({"photo": path.name, "move": name, "clean": clean, "search_s": seconds,
                         "searched": metrics.psnr(searched, truth),
                         "as_is": metrics.psnr(codec.decode_array(moved_gray), truth),
                         "true_frame": metrics.psnr(codec.decode_in_frame(moved_gray, frame), truth)})
    keys = ("clean", "searched", "as_is", "true_frame", "search_s")
    moved_rows = [r for r in rows if r["move"] != "unmoved"]
    summary = {key: float(np.mean([r[key] for r in moved_rows])) for key in keys}
    summary["right_share"] = float(np.mean([r["searched"] >= r["true_frame"] - 0.5 for r in moved_rows]))
    unmoved = [r for r in rows if r["move"] == "unmoved"]
    summary["unmoved_right_share"] = float(np.mean([r["searched"] >= r["true_frame"] - 0.5 for r in unmoved]))
    summary["per_move"] = {name: {key: float(np.mean([r[key] for r in rows if r["move"] == name])) for key in keys}
                           for name, *_ in MOVES}
    return {"summary": summary, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=1, help="take every N-th photo")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    codec = Codec.load(device="cpu")
    report = {}
    for folder in args.sets:
        report[folder.name] = result = measure(codec, folder, args.every)
        s = result["summary"]
        print(f"{folder.name}: clean {s['clean']:.2f} dB | moved: searched {s['searched']:.2f}, true frame "
              f"{s['true_frame']:.2f}, as is {s['as_is']:.2f} | right {s['right_share']:.0%} (unmoved kept {s['unmoved_right_share']:.0%}) | search {s['search_s']:.2f} s",
              flush=True)
        for name, m in s["per_move"].items():
            print(f"  {name:22s} searched {m['searched']:.2f} true {m['true_frame']:.2f} as is {m['as_is']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

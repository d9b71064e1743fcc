"""Restored PSNR of grays moved after encoding (cropped, mirrored, turned), per set.

Each photo is encoded by the default model, then moved each way in MOVES. The moved gray is
decoded as `invgray decode` does (the sync pattern of sync_pattern.py gives the frame, its end marks a
cut bottom or right, and the edge decoder re-decodes the lines beside a cut edge), as it comes
(the pattern not looked for, as invgray 0.1 decoded it), in the true frame (what a perfect frame
finder gives), and in the true frame without the edge decoder (invgray 0.2.0; the rest of the gap
to the clean decode is the decoder meeting a cut edge). ``--edge-decoder FILE`` tries an edge
decoder in training (``--all-cuts`` if it serves every cut edge) instead of the shipped one.
Also reported: the share of moves whose frame decode found right, the share restored within
0.5 dB of the clean decode, and the time the pattern search took. With ``--search``, grays made
without the pattern (invgray < 0.2) are also decoded in the frame `decode --find-frame` finds.

    python benchmarks/moved_grays.py ../shared/data/val ../shared/data/val_smooth ../shared/data/val_art --json out.json
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from invgray_cli import metrics
from invgray_cli.codec.nets import Codec
from invgray_cli.io.images import read_color
from invgray_cli.models.net import EdgeDecoder
from invgray_cli.models.weights import load_weights
from invgray_cli.codec.sync_pattern import remove_sync_pattern
from invgray_cli.train.data import find_images
from invgray_cli.train.frame_judge import transform, true_frame
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import decode_array, locate, decode_located
from invgray_cli.codec.edges import decode_in_frame
from invgray_cli.codec.frames import find_frame

# (name, orientation, lines cut at the top, left, bottom, right) as the user sees the gray; "crop
# t,l" cuts the top and left, "crop b,r" the bottom and right (the grid stays, the encoder's edge
# goes). "unmoved" is a gray that only lost its chunk: what the search costs when there was nothing to find
MOVES = [("unmoved", 0, 0, 0, 0, 0), ("crop 1,0", 0, 1, 0, 0, 0), ("crop 0,2", 0, 0, 2, 0, 0),
         ("crop 3,3", 0, 3, 3, 0, 0), ("crop 2,1", 0, 2, 1, 0, 0), ("crop b1,r2", 0, 0, 0, 1, 2),
         ("crop b3,r3", 0, 0, 0, 3, 3), ("crop all 1", 0, 1, 1, 1, 1), ("crop b8,r5", 0, 0, 0, 8, 5),
         ("crop 4,4", 0, 4, 4, 0, 0),
         ("mirror", 2, 0, 0, 0, 0), ("flip", 1, 0, 0, 0, 0), ("turn 90", 6, 0, 0, 0, 0), ("turn 180", 3, 0, 0, 0, 0),
         ("turn 270 + crop 1,1", 5, 1, 1, 0, 0)]


def moved(array: np.ndarray, orientation: int, cut_y: int, cut_x: int, cut_bottom: int, cut_right: int) -> np.ndarray:
    tensor = torch.from_numpy(array)
    tensor = tensor.permute(2, 0, 1) if tensor.dim() == 3 else tensor
    out = transform(tensor, orientation, cut_y, cut_x)
    out = out[..., : out.shape[-2] - cut_bottom, : out.shape[-1] - cut_right]
    out = out.permute(1, 2, 0) if out.dim() == 3 else out
    return np.ascontiguousarray(out.numpy())


def measure(codec: Codec, folder: Path, every: int, search: bool) -> dict:
    rows = []
    bare = codec.with_sync_pattern(False)
    d = codec.model.divisibility
    for path in find_images([folder])[::every]:
        rgb = read_color(path).rgb
        gray = encode_array(codec, rgb)
        clean = metrics.psnr(decode_array(codec, gray), rgb)
        old_gray = encode_array(bare, rgb) if search else None
        for name, orientation, cut_y, cut_x, cut_bottom, cut_right in MOVES:
            cuts = (cut_y, cut_x, cut_bottom, cut_right)
            moved_gray, truth = moved(gray, orientation, *cuts), moved(rgb, orientation, *cuts)
            tick = time.perf_counter()
            reading = locate(codec, moved_gray)
            seconds = time.perf_counter() - tick
            frame = true_frame(*gray.shape, orientation, cut_y, cut_x, d, (cut_bottom, cut_right), ends=True)
            without_pattern = remove_sync_pattern(moved_gray, reading)
            row = {"photo": path.name, "move": name, "clean": clean, "find_s": seconds, "frame_right": reading.frame == frame,
                   "decoded": metrics.psnr(decode_located(codec, moved_gray, reading), truth),
                   "as_is": metrics.psnr(decode_array(bare, moved_gray), truth),
                   "true_frame": metrics.psnr(decode_in_frame(bare, without_pattern, frame), truth),
                   "edges_off": metrics.psnr(decode_in_frame(bare.with_edge_decoding(False), without_pattern, frame), truth)}
            if search:
                old_moved = moved(old_gray, orientation, *cuts)
                row["searched_without_pattern"] = metrics.psnr(decode_in_frame(bare, old_moved, find_frame(bare.model, bare.judge(), old_moved).frame), truth)
            rows.append(row)
    keys = ("clean", "decoded", "as_is", "true_frame", "edges_off", "find_s") + (("searched_without_pattern",) if search else ())
    moved_rows = [r for r in rows if r["move"] != "unmoved"]
    summary = {key: float(np.mean([r[key] for r in moved_rows])) for key in keys}
    summary["frame_right_share"] = float(np.mean([r["frame_right"] for r in rows]))
    summary["within_half_db_share"] = float(np.mean([r["decoded"] >= r["clean"] - 0.5 for r in moved_rows]))
    summary["per_move"] = {name: {key: float(np.mean([r[key] for r in rows if r["move"] == name])) for key in keys}
                           for name, *_ in MOVES}
    crops = [r for r in moved_rows if r["move"].startswith("crop")]
    summary["crops"] = {key: float(np.mean([r[key] for r in crops])) for key in ("clean", "decoded", "edges_off")}
    summary["crops_within_half_db_share"] = float(np.mean([r["decoded"] >= r["clean"] - 0.5 for r in crops]))
    return {"summary": summary, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=1, help="take every N-th photo")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--search", action="store_true", help="also the frame search on grays without the pattern")
    parser.add_argument("--edge-decoder", type=Path, default=None, help="an edge decoder's weights file to use")
    parser.add_argument("--all-cuts", action="store_true", help="that edge decoder serves every cut edge")
    args = parser.parse_args()
    codec = Codec.load(device="cpu")
    if args.edge_decoder is not None:
        codec = replace(codec, edge_decoder=EdgeDecoder(load_weights(args.edge_decoder).net, args.all_cuts))
    report = {}
    for folder in args.sets:
        report[folder.name] = result = measure(codec, folder, args.every, args.search)
        s = result["summary"]
        searched = f", searched without the pattern {s['searched_without_pattern']:.2f}" if args.search else ""
        print(f"{folder.name}: clean {s['clean']:.2f} dB | moved: decoded {s['decoded']:.2f}, true frame "
              f"{s['true_frame']:.2f}, as is {s['as_is']:.2f}{searched} | frame right {s['frame_right_share']:.0%}, "
              f"within 0.5 dB of clean {s['within_half_db_share']:.0%} | pattern found in {s['find_s'] * 1000:.1f} ms",
              flush=True)
        c = s["crops"]
        print(f"  crops: clean {c['clean']:.2f}, decoded {c['decoded']:.2f}, edge decoder off {c['edges_off']:.2f}, "
              f"within 0.5 dB {s['crops_within_half_db_share']:.0%}")
        for name, m in s["per_move"].items():
            print(f"  {name:22s} decoded {m['decoded']:.2f} true {m['true_frame']:.2f} edges off {m['edges_off']:.2f} "
                  f"as is {m['as_is']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

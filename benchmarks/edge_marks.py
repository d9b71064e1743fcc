"""How often decode reads a crop's cut edges right from the sync pattern's edge marks (sync_pattern.py).

Each photo (every ``--every``-th of each set) is encoded by the default model, then cut by each of
CUTS lines (top, left, bottom, right) and turned by each of ORIENTATIONS. Reported per set: the
share of moved grays whose cut edges decode read right (which edges lost lines: what picks the
edge decoder's bands), and the share whose lines cut it read exactly (a cut of MARK_BAND lines or
more reads as MARK_BAND; an error there takes the pattern out wrongly on a few lines).

    python benchmarks/edge_marks.py ../shared/data/val ../shared/data/val_smooth ../shared/data/val_art --every 2
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from invgray_cli import __version__
from invgray_cli.codec.nets import Codec
from invgray_cli.codec.frames import orient
from invgray_cli.io.images import read_color
from invgray_cli.codec.sync_pattern import MARK_BAND, find_sync_pattern
from invgray_cli.train.data import find_images
from invgray_cli.codec.encode import encode_array

CUTS = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 2, 1, 0), (4, 4, 0, 0), (0, 0, 8, 5), (3, 3, 3, 3), (30, 0, 0, 30)]
ORIENTATIONS = (0, 3, 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=2, help="take every N-th photo")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    codec = Codec.load(device="cpu")
    report = {"invgray": __version__, "torch": torch.__version__, "device": "cpu", "every": args.every}
    for folder in args.sets:
        edges_right, lines_right = [], []
        for path in find_images([folder])[:: args.every]:
            gray = encode_array(codec, read_color(path).rgb)
            for top, left, bottom, right in CUTS:
                kept = gray[top : gray.shape[0] - bottom, left : gray.shape[1] - right]
                for orientation in ORIENTATIONS:
                    reading = find_sync_pattern(np.ascontiguousarray(orient(torch.from_numpy(kept), orientation).numpy()))
                    cuts = (top, left, bottom, right)
                    edges_right.append(reading.frame.cut_edges == tuple(lines > 0 for lines in cuts))
                    lines_right.append(reading.cuts == tuple(min(lines, MARK_BAND) for lines in cuts))
        report[folder.name] = {"moved_grays": len(edges_right), "cut_edges_right": float(np.mean(edges_right)),
                               "lines_cut_exact": float(np.mean(lines_right))}
        print(f"{folder.name}: {len(edges_right)} moved grays, cut edges read right {np.mean(edges_right):.1%}, "
              f"lines cut read exactly {np.mean(lines_right):.1%}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""What the partial 4-px blocks at the right and bottom edge cost.

The codec stores the gray at the photo's size and decode re-makes the padding to a multiple of
the block size by mirroring, which is not the padding the encoder's pattern had. This script
decodes each photo both ways, whole image, no gray floor, and prints the mean restored PSNR:
- "own padding": the encoder's own padded gray, rounded to 8 bits, decoded, cropped;
- "codec path": the gray cropped to the photo and decoded as `invgray decode` does.

    python benchmarks/edge_blocks.py ../shared/data/val --weights runs/model.safetensors
    python benchmarks/edge_blocks.py ../shared/data/val --model igray_s4w96.photos789_v1
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's invgray_cli, installed or not

import numpy as np
import torch

from invgray_cli import metrics
from invgray_cli.codec.nets import Codec
from invgray_cli.io.images import read_color
from invgray_cli.codec.tiling import crop_padded, round_up
from invgray_cli.train.data import find_images
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import decode_array


def own_padding_restore(codec: Codec, rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    d = codec.model.divisibility
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    padded = crop_padded(image, 0, round_up(height, d), 0, round_up(width, d))
    with torch.inference_mode():
        gray = torch.round(codec.model.encode(padded) * 255.0) / 255.0
        colour = codec.model.decode(gray).clamp(0, 1)[..., :height, :width]
    return torch.round(colour * 255.0).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    codec = Codec.load(model=args.model, weights=args.weights, device="cpu", tile=0).with_gray_floor(None)
    own, path, odd = [], [], 0
    for file in find_images(args.folders):
        rgb = read_color(file).rgb
        odd += any(side % codec.model.divisibility for side in rgb.shape[:2])
        own.append(metrics.psnr(own_padding_restore(codec, rgb), rgb))
        path.append(metrics.psnr(decode_array(codec, encode_array(codec, rgb)), rgb))
    print(json.dumps({"model": codec.info.name, "images": len(own), "odd_sized": odd,
                      "own_padding_psnr": float(np.mean(own)), "codec_path_psnr": float(np.mean(path)),
                      "gap_db": float(np.mean(own) - np.mean(path))}, indent=2))


if __name__ == "__main__":
    main()

"""Colouriser picture: for a few photos, photo | gray | automatic | 10 hints | a palette of 5.

Plain grays (each photo's BT.601 luma, no hidden code) colourised by the default colouriser (or
``--colorizer-weights``), through the same ``ColorizerCodec`` as ``invgray colorize``. Hints are
single pixels of the photo's own colour at random positions, seeded per photo, as ``eval
--colorize`` draws them; the palette is the photo's own 5 dominant colours. Photos: scikit-image's
``chelsea``, ``coffee`` and ``astronaut`` (shipped inside scikit-image). Prints each panel's PSNR.

    python benchmarks/colorize_figure.py -o docs/colorize_figure.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from invgray_cli import metrics
from invgray_cli.colorize.dominant import dominant_colours
from invgray_cli.colorize.session import ColorizerCodec, random_hints
from invgray_cli.colour import luma_bt601

PANEL_HEIGHT = 160
LABEL_HEIGHT = 20
GAP = 6
PHOTOS = ("chelsea", "coffee", "astronaut")


def photo(name: str) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def panels_of(codec: ColorizerCodec, rgb: np.ndarray, seed: int) -> list[tuple[np.ndarray, str]]:
    """The row of one photo: each panel and its label (with its PSNR against the photo)."""
    gray = np.round(luma_bt601(rgb)).clip(0, 255).astype(np.uint8)
    row = [(rgb, "photo"), (np.repeat(gray[..., None], 3, axis=2), f"gray {metrics.psnr(np.repeat(gray[..., None], 3, axis=2), rgb):.1f} dB")]
    automatic = codec.colorize_array(gray)
    row.append((automatic, f"automatic {metrics.psnr(automatic, rgb):.1f} dB"))
    hinted = codec.colorize_array(gray, random_hints(rgb, 10, np.random.default_rng(seed)))
    row.append((hinted, f"10 hints {metrics.psnr(hinted, rgb):.1f} dB"))
    if codec.takes_palette:
        paletted = codec.colorize_array(gray, palette=dominant_colours(rgb, 5))
        row.append((paletted, f"palette of 5 {metrics.psnr(paletted, rgb):.1f} dB"))
    return row


def compose(rows: list[list[tuple[np.ndarray, str]]]) -> Image.Image:
    def scaled(image: np.ndarray) -> Image.Image:
        width = round(image.shape[1] * PANEL_HEIGHT / image.shape[0])
        return Image.fromarray(image).resize((width, PANEL_HEIGHT), Image.LANCZOS)

    shown = [[(scaled(image), label) for image, label in row] for row in rows]
    width = max(sum(p.width for p, _ in row) + GAP * (len(row) - 1) for row in shown)
    canvas = Image.new("RGB", (width, len(shown) * (PANEL_HEIGHT + LABEL_HEIGHT + GAP)), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=13)
    for r, row in enumerate(shown):
        top, left = r * (PANEL_HEIGHT + LABEL_HEIGHT + GAP), 0
        for image, label in row:
            canvas.paste(image, (left, top + LABEL_HEIGHT))
            draw.text((left + 2, top + 3), label, fill="black", font=font)
            left += image.width + GAP
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/colorize_figure.png"))
    parser.add_argument("--colorizer-weights", type=Path, default=None)
    args = parser.parse_args()
    codec = ColorizerCodec.load(weights=args.colorizer_weights, device="cpu")
    rows = [panels_of(codec, photo(name), seed) for seed, name in enumerate(PHOTOS)]
    compose(rows).save(args.output, optimize=True)
    for name, row in zip(PHOTOS, rows):
        print(f"{name}: " + "; ".join(label for _, label in row[1:]))
    print(f"{args.output}: {args.output.stat().st_size // 1024} KB, colouriser {codec.name}")


if __name__ == "__main__":
    main()

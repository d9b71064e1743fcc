"""README picture: photo | gray | restored, and a 4x crop of a smooth area of the gray.

Runs the shipped default model through the public API on scikit-image's "chelsea" photo (public
domain, shipped inside scikit-image) and writes one PNG. The crop is the smoothest 45x45 window of
the photo's luma (least local variation), enlarged 4x pixel for pixel, so what the pattern adds
there is shown as stored, not smoothed by resizing. Prints the image's restored PSNR and gray
structure (the SSIM structure term between the gray and the photo's luma).

    python benchmarks/readme_figure.py -o docs/readme_figure.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import invgray_cli as invgray
from invgray_cli import metrics
from invgray_cli.colour import luma_bt601

PANEL_HEIGHT = 180  # every panel is shown at this height
ZOOM = 4
CROP = PANEL_HEIGHT // ZOOM  # pixels of the gray in the enlarged crop
LABEL_HEIGHT = 22
GAP = 6


def smoothest_window(luma: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the size x size window whose luma varies least, on a 4-px grid."""
    best, where = np.inf, (0, 0)
    for y in range(0, luma.shape[0] - size + 1, 4):
        for x in range(0, luma.shape[1] - size + 1, 4):
            window = luma[y:y + size, x:x + size]
            spread = float(np.abs(np.diff(window, axis=0)).mean() + np.abs(np.diff(window, axis=1)).mean())
            if spread < best:
                best, where = spread, (y, x)
    return where


def panel(image: Image.Image, height: int) -> Image.Image:
    width = round(image.width * height / image.height)
    return image.resize((width, height), Image.LANCZOS)


def compose(photo: np.ndarray, gray: np.ndarray, restored: np.ndarray, crop_at: tuple[int, int]) -> Image.Image:
    y, x = crop_at
    scale = PANEL_HEIGHT / photo.shape[0]
    gray_panel = panel(Image.fromarray(gray, "L"), PANEL_HEIGHT).convert("RGB")
    box = [round(x * scale), round(y * scale), round((x + CROP) * scale), round((y + CROP) * scale)]
    ImageDraw.Draw(gray_panel).rectangle(box, outline=(230, 40, 40), width=2)
    crop = Image.fromarray(gray[y:y + CROP, x:x + CROP], "L").resize((CROP * ZOOM, CROP * ZOOM), Image.NEAREST)
    panels = [(panel(Image.fromarray(photo), PANEL_HEIGHT), "photo"),
              (gray_panel, "gray (what invgray writes)"),
              (panel(Image.fromarray(restored), PANEL_HEIGHT), "restored from the gray"),
              (crop.convert("RGB"), f"red box of the gray, {ZOOM}x")]
    width = sum(p.width for p, _ in panels) + GAP * (len(panels) - 1)
    canvas = Image.new("RGB", (width, PANEL_HEIGHT + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    left = 0
    for image, label in panels:
        canvas.paste(image, (left, LABEL_HEIGHT))
        draw.text((left + 2, 3), label, fill="black", font=font)
        left += image.width + GAP
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/readme_figure.png"))
    args = parser.parse_args()

    from skimage import data

    photo = np.ascontiguousarray(data.chelsea())
    codec = invgray.load_model(device="cpu")  # the default model
    gray = invgray.encode(photo, codec=codec)
    restored = invgray.decode(gray, codec=codec)
    luma = luma_bt601(photo)
    crop_at = smoothest_window(luma, CROP)
    compose(photo, gray, restored, crop_at).save(args.output, optimize=True)
    print(f"{args.output}: {args.output.stat().st_size // 1024} KB; crop at (y, x) = {crop_at}; "
          f"restored PSNR {metrics.psnr(restored, photo):.2f} dB, "
          f"gray structure {metrics.gray_structure(gray, luma):.4f}")


if __name__ == "__main__":
    main()

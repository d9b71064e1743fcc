"""README figure: restored PSNR against the JPEG quality a gray was re-saved at, per model and set.

Reads the JSON of `invgray eval SET... --jpeg 95 --jpeg 90 --jpeg 75 --jpeg 50 --json` (one file
per model) and writes a small self-contained SVG: one line per (model, set) from the lossless PNG
(drawn at quality 100) down to the lowest quality measured, its mean gray structure in the legend.

    invgray eval ../shared/data/val --jpeg 95 --jpeg 90 --jpeg 75 --jpeg 50 --json > default.json
    invgray eval ... --weights probe.safetensors --json > probe.json
    python benchmarks/jpeg_figure.py default.json probe.json -o docs/jpeg_quality.svg
"""
from __future__ import annotations

from pathlib import Path

from svg_figure import main, text

WIDTH, HEIGHT, MARGIN = 560, 340, 56
X_RANGE = (45.0, 100.0)  # JPEG quality; 100 stands for the lossless PNG
Y_RANGE = (18.0, 42.0)  # restored PSNR dB
SET_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
MODEL_DASHES = ["", "6 3", "2 2"]
NO_COLOUR_DB = 20.0  # about what the gray alone, repeated as RGB, scores


def to_px(x: float, y: float) -> tuple[float, float]:
    (x0, x1), (y0, y1) = X_RANGE, Y_RANGE
    px = MARGIN + (x - x0) / (x1 - x0) * (WIDTH - 2 * MARGIN)
    py = HEIGHT - MARGIN - (min(max(y, y0), y1) - y0) / (y1 - y0) * (HEIGHT - 2 * MARGIN)
    return round(px, 1), round(py, 1)


def curve(mean: dict) -> list[tuple[float, float]]:
    """(quality, PSNR) points: the PNG at 100, then each measured JPEG quality, best first."""
    points = [(100.0, mean["psnr"])]
    points += sorted(((float(k.removeprefix("psnr_jpeg")), v) for k, v in mean.items()
                      if k.startswith("psnr_jpeg") and k.removeprefix("psnr_jpeg").isdigit()),  # not re-saves
                     reverse=True)
    return points


def figure(reports: list[dict]) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    (x0, x1), (y0, y1) = X_RANGE, Y_RANGE
    left, bottom = to_px(x0, y0)
    right, top = to_px(x1, y1)
    parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#444"/>')
    for tick in (50, 60, 70, 75, 80, 90, 95, 100):
        px, _ = to_px(tick, y0)
        parts.append(f'<line x1="{px}" y1="{bottom}" x2="{px}" y2="{bottom + 4}" stroke="#444"/>')
        parts.append(text(px, bottom + 16, "PNG" if tick == 100 else str(tick), 10, "middle"))
    for tick in range(int(y0), int(y1) + 1, 4):
        _, py = to_px(x0, tick)
        parts.append(f'<line x1="{left - 4}" y1="{py}" x2="{left}" y2="{py}" stroke="#444"/>')
        parts.append(text(left - 7, py + 4, str(tick), 10, "end"))
    parts.append(text((left + right) / 2, HEIGHT - 12, "JPEG quality the gray was re-saved at", 11, "middle"))
    parts.append(text(14, (top + bottom) / 2, "restored PSNR dB", 11, "middle",
                      f'transform="rotate(-90 14 {(top + bottom) / 2})"'))
    _, none_y = to_px(x0, NO_COLOUR_DB)
    parts.append(f'<line x1="{left}" y1="{none_y}" x2="{right}" y2="{none_y}" stroke="#999" stroke-dasharray="4 3"/>')
    parts.append(text(right - 4, none_y - 4, "no colour (the gray alone)", 10, "end", 'fill="#777"'))
    legend_x, legend_y = left + 10, top + 16
    set_names: list[str] = []
    for m, report in enumerate(reports):
        dash = MODEL_DASHES[m % len(MODEL_DASHES)]
        for name, summary in report["results"]["sets"].items():
            if not summary["count"]:
                continue
            label = Path(name).name
            if label not in set_names:
                set_names.append(label)
            colour = SET_COLOURS[set_names.index(label) % len(SET_COLOURS)]
            points = " ".join(f"{px},{py}" for px, py in (to_px(q, v) for q, v in curve(summary["mean"])))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
                         f'stroke-dasharray="{dash}"/>')
            model = report["model"]["name"] + (" + block code" if report.get("block_code") else "")
            parts.append(text(legend_x + 30, legend_y + 4, f'{model}, {label}: gray structure '
                              f'{summary["mean"]["gray_structure"]:.3f}', 10))
            parts.append(f'<line x1="{legend_x}" y1="{legend_y}" x2="{legend_x + 24}" y2="{legend_y}" '
                         f'stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
            legend_y += 14
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main(figure, __doc__.splitlines()[0], "`invgray eval --jpeg Q ... --json` outputs, one per model")

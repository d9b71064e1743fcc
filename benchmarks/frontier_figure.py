"""README figure: restored PSNR against gray structure for each shipped model, per validation set.

Reads the JSON of `invgray eval SET... --json` (one file per model, the sets as separate
arguments) and writes a small self-contained SVG: one marker per (model, set) at its mean gray
structure and PSNR, a whisker left to the set's worst image, and the paper's Table 2 point.

    invgray eval ../shared/data/val ../shared/data/val_smooth ../shared/data/val_art --json > default.json
    invgray eval ... --model igray_s4w96.photos789_v1 --json > colour.json
    python benchmarks/frontier_figure.py default.json colour.json -o docs/frontier.svg
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's invgray_cli, installed or not

from invgray_cli.train.config import GRAY_RULE  # noqa: E402
from svg_figure import main, text  # noqa: E402

WIDTH, HEIGHT, MARGIN = 560, 340, 56
X_RANGE = (0.86, 1.0)  # gray structure
Y_RANGE = (30.0, 50.0)  # restored PSNR dB (room for the legend below 36)
SET_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
MODEL_MARKERS = ["circle", "square", "diamond"]


def to_px(x: float, y: float) -> tuple[float, float]:
    (x0, x1), (y0, y1) = X_RANGE, Y_RANGE
    px = MARGIN + (x - x0) / (x1 - x0) * (WIDTH - 2 * MARGIN)
    py = HEIGHT - MARGIN - (y - y0) / (y1 - y0) * (HEIGHT - 2 * MARGIN)
    return round(px, 1), round(py, 1)


def marker(shape: str, x: float, y: float, colour: str) -> str:
    if shape == "circle":
        return f'<circle cx="{x}" cy="{y}" r="5" fill="{colour}"/>'
    if shape == "square":
        return f'<rect x="{x - 5}" y="{y - 5}" width="10" height="10" fill="none" stroke="{colour}" stroke-width="2"/>'
    return f'<polygon points="{x},{y - 6} {x + 6},{y} {x},{y + 6} {x - 6},{y}" fill="{colour}"/>'


def figure(reports: list[dict], paper: tuple[float, float] = (0.9799, 36.02)) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    (x0, x1), (y0, y1) = X_RANGE, Y_RANGE
    left, bottom = to_px(x0, y0)
    right, top = to_px(x1, y1)
    parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#444"/>')
    for tick in [x0 + i * 0.02 for i in range(int(round((x1 - x0) / 0.02)) + 1)]:
        px, _ = to_px(tick, y0)
        parts.append(f'<line x1="{px}" y1="{bottom}" x2="{px}" y2="{bottom + 4}" stroke="#444"/>')
        parts.append(text(px, bottom + 16, f"{tick:.2f}", 10, "middle"))
    for tick in range(int(y0), int(y1) + 1, 2):
        _, py = to_px(x0, tick)
        parts.append(f'<line x1="{left - 4}" y1="{py}" x2="{left}" y2="{py}" stroke="#444"/>')
        parts.append(text(left - 7, py + 4, str(tick), 10, "end"))
    parts.append(text((left + right) / 2, HEIGHT - 12, "gray structure vs luma (mean; whisker: worst image)", 11, "middle"))
    parts.append(text(14, (top + bottom) / 2, "restored PSNR dB", 11, "middle",
                      f'transform="rotate(-90 14 {(top + bottom) / 2})"'))
    rule_x, _ = to_px(GRAY_RULE[0], y0)
    parts.append(f'<line x1="{rule_x}" y1="{top}" x2="{rule_x}" y2="{bottom}" stroke="#999" stroke-dasharray="4 3"/>')
    parts.append(text(rule_x + 3, top + 12, f"{GRAY_RULE[0]}", 10, extra='fill="#777"'))

    set_names: list[str] = []
    legend_x = left + 14  # bottom left: the low-structure, low-PSNR corner no model reaches
    legend_y = bottom - 15 * (len(reports) + 5)
    for m, report in enumerate(reports):
        shape = MODEL_MARKERS[m % len(MODEL_MARKERS)]
        for name, summary in report["results"]["sets"].items():
            if not summary["count"]:
                continue  # every image of the set failed: nothing to plot
            label = Path(name).name
            if label not in set_names:
                set_names.append(label)
            colour = SET_COLOURS[set_names.index(label) % len(SET_COLOURS)]
            x, y = to_px(max(summary["mean"]["gray_structure"], x0), min(summary["mean"]["psnr"], y1))
            worst, _ = to_px(max(summary["gray_structure_min"], x0), y0)
            parts.append(f'<line x1="{worst}" y1="{y}" x2="{x}" y2="{y}" stroke="{colour}" stroke-width="1.5"/>')
            parts.append(marker(shape, x, y, colour))
        parts.append(marker(shape, legend_x, legend_y - 4, "#333"))
        parts.append(text(legend_x + 10, legend_y, report["model"]["name"], 10))
        legend_y += 15
    px, py = to_px(*paper)
    parts.append(f'<text x="{px}" y="{py + 5}" font-size="16" text-anchor="middle">★</text>')
    parts.append(text(legend_x - 5, legend_y, "★  paper (VOC2012, Table 2)", 10))
    legend_y += 15
    for i, label in enumerate(set_names):
        parts.append(text(legend_x - 5, legend_y + 15 * i, f"■  {label}", 10,
                          extra=f'fill="{SET_COLOURS[i % len(SET_COLOURS)]}"'))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main(figure, __doc__.splitlines()[0], "`invgray eval --json` outputs, one per model")

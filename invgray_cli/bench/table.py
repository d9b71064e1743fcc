"""The table ``invgray bench`` prints: one row per device and size."""
from __future__ import annotations

from typing import Any

from invgray_cli.bench.runs import SPEED_TARGET, TARGET_SIZE


def _seconds(entry: dict | None, key: str = "median_s") -> str:
    if entry is None or entry.get(key) is None:
        return "–"
    value = entry[key]
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _mib(entry: dict) -> str:
    peak, growth = entry.get("peak_mib"), entry.get("growth_mib")
    if peak is None:
        return "–"
    return f"{peak:.0f}(+{growth:.0f})"


def _ratio(row: dict, op: str) -> str:
    speedup = row.get("speedup")
    if not speedup:
        return "–"
    value = speedup[op]
    hit = (row["width"], row["height"]) == TARGET_SIZE
    colour = "" if not hit else "[green]" if value >= SPEED_TARGET else "[red]"
    return f"{colour}{value:.1f}x"


def _timing(entry: dict | None) -> str:
    return "–" if entry is None else f"{_seconds(entry)} ({_seconds(entry, 'min_s')})"


def render_table(report: dict) -> Any:
    """One row per device and size: median (min) seconds, memory, the paper's figures, speed-ups."""
    from rich.table import Table

    has_paper = any("paper_rebuild" in row for row in report["results"])
    model = report["model"].get("name", "?")
    batch = report.get("batch", 1)
    per_call = f", {batch} images per call" if batch > 1 else ""
    table = Table(title=f"invgray bench — {model}, {report['threads']} threads, median (min) of {report['repeats']}"
                        f"{per_call}")
    # a batch's throughput takes the place of the paper's single-image Table 3 (80 columns hold 7)
    last = "MP/s enc / dec" if batch > 1 else "paper T3 enc / dec"
    headers = ["device", "size", "tile", "encode", "decode", "peak MiB (+growth) enc / dec", last]
    if has_paper:
        headers += ["rebuild encode", "rebuild decode", "speed-up enc / dec"]
    for header in headers:
        table.add_column(header, justify="right",
                         no_wrap=header not in ("paper T3 enc / dec", "MP/s enc / dec", "peak MiB (+growth) enc / dec"))
    for row in report["results"]:
        t3 = row["paper_table3"]
        cells = [
            row["device"], f"{row['width']}x{row['height']}", str(row["tile"] or "whole"),
            _timing(row["encode"]), _timing(row["decode"]),
            f"{_mib(row['encode'])} / {_mib(row['decode'])}",
            (f"{row['encode']['megapixels_per_s']:.1f} / {row['decode']['megapixels_per_s']:.1f}" if batch > 1
             else f"{t3['encode_s']:.3f} / {t3['decode_s']:.3f} s" if t3 else "–"),
        ]
        if has_paper:
            rebuild = row.get("paper_rebuild") or {}
            cells += [_timing(rebuild.get("encode")), _timing(rebuild.get("decode")),
                      f"{_ratio(row, 'encode')} / {_ratio(row, 'decode')}"]
        table.add_row(*cells)
    if has_paper:
        table.caption = (f"target: speed-up >= {SPEED_TARGET:g}x for encode and decode at "
                         f"{TARGET_SIZE[0]}x{TARGET_SIZE[1]} (paper rebuild: whole image, random weights)")
    return table



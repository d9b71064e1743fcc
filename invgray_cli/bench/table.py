"""Stage bench: the tables ``invgray bench`` prints: one per device, two rows (encode, decode) per size.

Narrow on purpose: at 80 columns every cell and header shows whole (a row per operation rather
than encode and decode side by side; the device, its tile and precision in the title; the paper
rebuild's median without its min, which the ``--json`` report keeps).
"""
from __future__ import annotations

from typing import Any

from invgray_cli.bench.runs import SPEED_TARGET, TARGET_SIZE

OPERATIONS = ("encode", "decode")


def _timing(entry: dict | None, with_min: bool = True) -> str:
    """``512.0 (147.3) ms``: the median and min of the repeats, in the median's unit."""
    if entry is None or entry.get("median_s") is None:
        return "–"
    median, low = entry["median_s"], entry.get("min_s")
    scale, unit, digits = (1000, "ms", 1) if median < 1 else (1, "s", 2)
    shown = f"{median * scale:.{digits}f}"
    if with_min and low is not None:
        shown += f" ({low * scale:.{digits}f})"
    return f"{shown} {unit}"


def _mib(entry: dict) -> str:
    peak, growth = entry.get("peak_mib"), entry.get("growth_mib")
    if peak is None:
        return "–"
    return f"{peak:.0f} (+{growth:.0f})"


def _ratio(row: dict, op: str) -> str:
    speedup = row.get("speedup")
    if not speedup:
        return "–"
    value = speedup[op]
    hit = (row["width"], row["height"]) == TARGET_SIZE
    colour = "" if not hit else "[green]" if value >= SPEED_TARGET else "[red]"
    return f"{colour}{value:.1f}x"


def _last_cell(row: dict, op: str, batch: int) -> str:
    """Throughput of a batch, else the paper's single-image Table 3 figure."""
    if batch > 1:
        return f"{row[op]['megapixels_per_s']:.1f}"
    t3 = row["paper_table3"]
    return "–" if not t3 else f"{t3[op + '_s']:.3f} s"


def _device_table(device: str, rows: list[dict], report: dict) -> Any:
    from rich import box
    from rich.table import Table

    has_paper = any("paper_rebuild" in row for row in rows)
    batch = report.get("batch", 1)
    facts = report.get("devices", {}).get(device, {})
    tile = facts.get("tile")
    setup = ", ".join(part for part in (facts.get("name"), f"tile {tile or 'whole'}", facts.get("precision")) if part)
    per_call = f", {batch} images per call" if batch > 1 else ""
    table = Table(title=f"invgray bench on {device} ({setup}) — {report['model'].get('name', '?')}, "
                        f"{report['threads']} threads, median (min) of {report['repeats']}{per_call}",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True, pad_edge=False)
    headers = ["size", "", "median (min)", "peak MiB", "MP/s" if batch > 1 else "paper T3"]
    if has_paper:
        headers += ["rebuild", "speed-up"]
    for header in headers:
        table.add_column(header, justify="right")
    for row in rows:
        rebuild = row.get("paper_rebuild") or {}
        for op in OPERATIONS:
            cells = [f"{row['width']}x{row['height']}" if op == OPERATIONS[0] else "", op, _timing(row[op]),
                     _mib(row[op]), _last_cell(row, op, batch)]
            if has_paper:
                cells += [_timing(rebuild.get(op), with_min=False), _ratio(row, op)]
            table.add_row(*cells)
    notes = ["peak MiB (+ growth during the call)"] + ([] if batch > 1 else ["paper T3: the paper's Table 3"])
    if has_paper:
        notes += ["rebuild: the paper's network, random weights, whole image (median)",
                  f"target: speed-up >= {SPEED_TARGET:g}x for encode and decode at {TARGET_SIZE[0]}x{TARGET_SIZE[1]}"]
    table.caption = "; ".join(notes)
    return table


def render_bench_tables(report: dict) -> Any:
    """One table per device: per size, the median (min) seconds of encode and decode, peak memory,
    the paper's Table 3 (or, for a batch, megapixels per second) and, with --paper, the rebuild's
    seconds and our speed-up over it."""
    from rich.console import Group

    devices: dict[str, list[dict]] = {}
    for row in report["results"]:
        devices.setdefault(row["device"], []).append(row)
    return Group(*(_device_table(device, rows, report) for device, rows in devices.items()))




FOLDER_STAGES = ("read", "nets", "other", "write")


def _share(value: float) -> str:
    return f"{100 * value:.0f}%"


def _folder_table(device: str, rows: list[dict], report: dict) -> Any:
    from rich import box
    from rich.table import Table

    facts = report.get("devices", {}).get(device, {})
    setup = ", ".join(part for part in (facts.get("name"), f"tile {facts.get('tile') or 'whole'}",
                                        facts.get("precision")) if part)
    megapixels = rows[0]["megapixels"] if rows else 0.0
    table = Table(title=f"invgray bench --folder on {device} ({setup}) — {report['model'].get('name', '?')}, "
                        f"{report['threads']} threads, {report['photos']} photos ({megapixels:.1f} MP), "
                        f"median of {report['repeats']}",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True, pad_edge=False)
    for header in ("", "", "s", "img/s", "MP/s", *FOLDER_STAGES, "wait"):
        table.add_column(header, justify="right" if header else "left")
    for index, row in enumerate(rows):
        first = index == 0 or row["operation"] != rows[index - 1]["operation"]
        mode = row["mode"] if row["workers"] == 0 else f"{row['mode']} ({row['workers']}+{row['workers']})"
        table.add_row(row["operation"] if first else "", mode, f"{row['seconds']:.2f}", f"{row['images_per_s']:.2f}",
                      f"{row['megapixels_per_s']:.2f}", *(_share(row["stage_shares"][s]) for s in FOLDER_STAGES),
                      _share(row["waiting"]))
    speedup = facts.get("speedup") or {}
    notes = ["read, nets, other (stages around the nets), write: share of the seconds spent in each, added over "
             "threads; wait: share of the run the nets' thread waited",
             "overlapped (N+N): reading and writing on N threads each"]
    if speedup:
        notes.append("overlapped / one at a time: " + ", ".join(f"{op} {value:.2f}x" for op, value in speedup.items()))
    if "identical_outputs" in facts:
        notes.append("same bytes written: " + ("yes" if facts["identical_outputs"] else "NO"))
    failed = max((row.get("failed", 0) for row in rows), default=0)
    if failed:
        notes.append(f"{failed} file(s) failed and are left out")
    table.caption = "; ".join(notes)
    return table


def render_folder_tables(report: dict) -> Any:
    """One table per device: encode and decode of the folder, one at a time and overlapped: seconds,
    images and megapixels per second, the share of each stage and the nets' thread's waiting."""
    from rich.console import Group

    devices: dict[str, list[dict]] = {}
    for row in report["results"]:
        devices.setdefault(row["device"], []).append(row)
    return Group(*(_folder_table(device, rows, report) for device, rows in devices.items()))

"""``invgray bench``: encode and decode speed and peak memory, beside the paper's Table 3.

Times the codec's array path as a user runs it (uint8 in, tiled, uint8 out) on synthetic
square images. Warm-up runs are not timed; CUDA is synchronised before each clock read;
median and min of several repeats are reported. With ``--paper`` the random-weight rebuild
of the paper's network (``models/paper.py``) is timed in the
same run, whole image at once as the paper's Table 3, and the speed ratio is given.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset before each measurement);
on CPU the process's peak resident set size (VmHWM, reset through /proc/self/clear_refs
before each measurement) and its growth over the resident size just before — the growth is
what one more image costs, the peak includes torch and the loaded model.
This module imports torch lazily so the CLI starts fast.
"""
from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

from .errors import InvgrayError
from .report import envelope, model_facts

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .codec import Codec

DEFAULT_SIZES = "256,512,1024"
MAX_SIZE = 16384
SPEED_TARGET = 8.0  # issue 3: ours >= 8x faster than the paper's architecture at 1024^2, each direction
TARGET_SIZE = (1024, 1024)
# Xia et al. 2018, Table 3: seconds (encode, decode). CPU: the authors' machine; GPU: GTX 980 Ti.
PAPER_TABLE3 = {
    "cpu": {(256, 256): (0.939, 0.825), (512, 512): (3.717, 3.284), (1024, 1024): (15.117, 13.133)},
    "cuda": {(256, 256): (0.034, 0.029), (512, 512): (0.113, 0.086), (1024, 1024): (0.384, 0.321)},
}
MEMORY_NOTE = (
    "cpu: peak resident set size of the process (VmHWM, reset via /proc/self/clear_refs before each "
    "measurement) and its growth over the resident size just before; cuda: torch.cuda.max_memory_allocated"
)
# not installed with the package: found in the source checkout that holds invgray_cli/
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")

Size = tuple[int, int]  # (width, height)


# ---------------------------------------------------------------- parsing


def parse_sizes(text: str) -> list[Size]:
    """'256,512' or '640x480,1024' -> [(w, h), ...]; one-line error for anything else."""
    sizes: list[Size] = []
    for part in (p.strip().lower() for p in text.split(",")):
        fields = part.split("x")
        if not part or len(fields) > 2 or not all(f.isdigit() for f in fields):
            raise InvgrayError(f"bad size '{part}' in --sizes; give N or WxH, comma-separated, e.g. 256,512,640x480")
        width, height = int(fields[0]), int(fields[-1])
        if not (1 <= width <= MAX_SIZE and 1 <= height <= MAX_SIZE):
            raise InvgrayError(f"size '{part}' in --sizes is out of range 1..{MAX_SIZE}")
        sizes.append((width, height))
    return sizes


def parse_devices(text: str | None) -> list[str]:
    """Comma-separated device names; default cpu, plus cuda when one is present."""
    import torch

    if text is None:
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    devices = [d.strip().lower() for d in text.split(",") if d.strip()]
    if not devices:
        raise InvgrayError("--device needs at least one of cpu, cuda, cuda:N")
    return devices


# ---------------------------------------------------------------- measuring


def synthetic_photo(size: Size, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 HxWx3 test image: colour gradients plus noise (noisy enough that the gray guard acts on it: the worst case of its cost)."""
    import numpy as np

    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / max(width, 1), y / max(height, 1), 0.5 + 0.5 * np.sin((x + y) / 17.0)], axis=2) * 200
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _read_status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_cpu_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class MemoryProbe:
    """Start/stop a peak-memory measurement on one device."""

    device: torch.device

    def start(self) -> int | None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return torch.cuda.memory_allocated(self.device)
        rss = _read_status_kib("VmRSS") if _reset_cpu_peak() else None
        return None if rss is None else rss * 1024

    def stop(self, before: int | None) -> dict[str, float | None]:
        import torch

        mib = 2**20
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            return {"peak_mib": peak / mib, "growth_mib": (peak - (before or 0)) / mib}
        hwm = _read_status_kib("VmHWM")
        if before is None or hwm is None:
            return {"peak_mib": None, "growth_mib": None}
        return {"peak_mib": hwm * 1024 / mib, "growth_mib": max(0, hwm * 1024 - before) / mib}


def _synchronise(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
    """Untimed warm-ups, then ``repeats`` timed calls of ``fn``: seconds and peak memory."""
    probe = MemoryProbe(device)
    before = probe.start()
    for _ in range(warmup):
        fn()
    _synchronise(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _synchronise(device)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times, **probe.stop(before)}


# ---------------------------------------------------------------- what is timed


def random_codec(device: str, tile: int | None) -> Codec:
    """The default architecture with random weights, for timing before trained weights exist."""
    import torch

    from .codec import Codec
    from .models.net import InvertibleGray, NetConfig
    from .models.registry import ModelInfo

    torch.manual_seed(0)
    net = InvertibleGray(NetConfig())
    for p in net.parameters():  # no all-zero layers, so nothing is cheaper than it will be trained
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.02)
    info = ModelInfo("random-init", "", net.divisibility, net.receptive_field)
    return Codec.from_model(net, info, device=device, tile=tile)


def bench_codec(codec: Codec, size: Size, warmup: int, repeats: int, batch: int = 1) -> dict[str, Any]:
    """Seconds per call of the array path: one image, or ``batch`` images of the size in one call
    (``encode_batch``/``decode_batch``), with the megapixels per second that makes."""
    rgb = synthetic_photo(size)
    gray = codec.encode_array(rgb)
    if batch == 1:
        calls = {"encode": lambda: codec.encode_array(rgb), "decode": lambda: codec.decode_array(gray)}
    else:
        photos, grays = [rgb] * batch, [gray] * batch
        calls = {"encode": lambda: codec.encode_batch(photos), "decode": lambda: codec.decode_batch(grays)}
    result: dict[str, Any] = {}
    for op, call in calls.items():
        timing = measure(call, codec.device, warmup, repeats)
        timing["megapixels_per_s"] = batch * size[0] * size[1] / 1e6 / timing["median_s"]
        result[op] = timing
    return result


def bench_paper(paper: ModuleType, device: torch.device, size: Size, warmup: int, repeats: int) -> dict[str, Any] | None:
    """The paper rebuild, whole image in one pass (as its Table 3); None where its size rule forbids."""
    import torch

    width, height = size
    if width % paper.DIVISIBILITY or height % paper.DIVISIBILITY:
        return None
    torch.manual_seed(0)
    encoder = paper.PaperEncoder().to(device).eval()
    decoder = paper.PaperDecoder().to(device).eval()
    rgb = torch.rand(1, 3, height, width, device=device)
    with torch.inference_mode():
        gray = encoder(rgb)

        def encode() -> None:
            encoder(rgb)

        def decode() -> None:
            decoder(gray)

        result = {
            "encode": measure(encode, device, warmup, repeats),
            "decode": measure(decode, device, warmup, repeats),
        }
    del encoder, decoder, rgb, gray
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


# ---------------------------------------------------------------- the report


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _paper_table3(device_type: str, size: Size) -> dict[str, float] | None:
    row = PAPER_TABLE3.get(device_type, {}).get(size)
    return {"encode_s": row[0], "decode_s": row[1]} if row else None


def run_bench(
    sizes: list[Size],
    devices: list[str],
    load_codec: Callable[[str], Codec],
    warmup: int = 1,
    repeats: int = 5,
    paper: bool = False,
    on_step: Callable[[str], None] | None = None,
    batch: int = 1,
) -> dict:
    """Time every size on every device; returns the ``invgray bench --json`` document."""
    import torch

    from .models import paper as paper_arch

    paper_module = paper_arch if paper else None
    results, device_info, model = [], {}, model_facts(None, None)
    for spec in devices:
        codec = load_codec(spec)
        model = model_facts(codec.info.name, codec.info.sha256)
        device_info[str(codec.device)] = {
            "name": device_name(codec.device),
            "tile": codec.tile,
            "dtype": str(codec.dtype).replace("torch.", ""),
        }
        for size in sizes:
            if on_step:
                on_step(f"{codec.device} {size[0]}x{size[1]} invgray")
            row = {"device": str(codec.device), "width": size[0], "height": size[1], "tile": codec.tile,
                   "batch": batch}
            row.update(bench_codec(codec, size, warmup, repeats, batch))
            row["paper_table3"] = _paper_table3(codec.device.type, size)
            if paper_module is not None:
                if on_step:
                    on_step(f"{codec.device} {size[0]}x{size[1]} paper rebuild")
                rebuild = bench_paper(paper_module, codec.device, size, warmup, repeats)
                row["paper_rebuild"] = rebuild
                row["speedup"] = None if rebuild is None else {
                    op: rebuild[op]["median_s"] / (row[op]["median_s"] / batch) for op in ("encode", "decode")
                }
            results.append(row)
        del codec
    return envelope(
        "invgray-bench",
        "encode/decode seconds per call (median and min of repeats after untimed warm-ups), megapixels "
        "per second and peak memory of the codec's array path (uint8 in and out, tiled) on synthetic images, "
        "`batch` images of a size per call"
        + ("; paper_rebuild = random-weight rebuild of the paper's network, whole image" if paper else ""),
        model,
        ",".join(device_info),
        threads=torch.get_num_threads(),
        devices=device_info,
        warmup=warmup,
        repeats=repeats,
        batch=batch,
        memory=MEMORY_NOTE,
        speed_target={"ratio": SPEED_TARGET, "size": list(TARGET_SIZE)} if paper else None,
        results=results,
    )


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
    headers = ["device", "size", "tile", "encode", "decode", "MP/s enc / dec", "peak MiB (+growth) enc / dec",
               "paper T3 enc / dec"]
    if has_paper:
        headers += ["rebuild encode", "rebuild decode", "speed-up enc / dec"]
    for header in headers:
        table.add_column(header, justify="right", no_wrap=header not in ("paper T3 enc / dec", "peak MiB (+growth) enc / dec"))
    for row in report["results"]:
        t3 = row["paper_table3"]
        cells = [
            row["device"], f"{row['width']}x{row['height']}", str(row["tile"] or "whole"),
            _timing(row["encode"]), _timing(row["decode"]),
            f"{row['encode']['megapixels_per_s']:.1f} / {row['decode']['megapixels_per_s']:.1f}",
            f"{_mib(row['encode'])} / {_mib(row['decode'])}",
            f"{t3['encode_s']:.3f} / {t3['decode_s']:.3f} s" if t3 else "–",
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


@click.command("bench")
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True, help="Square edges N or WxH, comma-separated.")
@click.option("--device", "devices", help="Comma-separated: cpu, cuda, cuda:N (default: cpu, and cuda if present).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Timed runs per measurement.")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Untimed runs before timing.")
@click.option("--tile", type=click.IntRange(min=0), help="Tile edge in pixels, 0 = whole image (default: from the device).")
@click.option("--weights", type=click.Path(dir_okay=False), help="A weights file of your own.")
@click.option("--model", "model_name", help="Shipped model name (see `invgray models`); default: the first.")
@click.option("--random", "random_init", is_flag=True, help="Time the default architecture with random weights.")
@click.option("--paper", is_flag=True, help="Also time the random-weight rebuild of the paper's network.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images of each size per encode/decode call (the batch path a GPU wants).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or table on stderr.")
def bench_command(
    sizes: str,
    devices: str | None,
    repeats: int,
    warmup: int,
    tile: int | None,
    weights: str | None,
    model_name: str | None,
    random_init: bool,
    paper: bool,
    batch: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Time encode and decode per image size and device, beside the paper's Table 3."""
    import json

    from rich.console import Console

    if random_init and (weights or model_name):
        raise click.UsageError("--random times random weights; leave out --weights/--model, or --random")
    size_list = parse_sizes(sizes)
    device_list = parse_devices(devices)
    console = Console(stderr=True, quiet=quiet)

    def load_codec(device: str) -> Codec:
        from .codec import Codec

        if random_init:
            return random_codec(device, tile)
        return Codec.load(model=model_name, weights=weights, device=device, tile=tile)

    with console.status("benchmarking", spinner="dots") as status:
        report = run_bench(size_list, device_list, load_codec, warmup=warmup, repeats=repeats, paper=paper,
                           on_step=lambda text: status.update(f"benchmarking {text}"), batch=batch)
    console.print(render_table(report))
    if as_json:
        click.echo(json.dumps(report, indent=2))

"""Timing and peak memory of one call, on CPU or CUDA, and the sizes and devices asked for.

Warm-up runs are not timed; CUDA is synchronised before each clock read; median and min of
several repeats are reported. Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset
before each measurement); on CPU the process's peak resident set size (VmHWM, reset through
/proc/self/clear_refs before each measurement) and its growth over the resident size just
before: the growth is what one more image costs, the peak includes torch and the loaded model.
torch is imported lazily so the CLI starts fast.
"""
from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invgray_cli.errors import InvgrayError

if TYPE_CHECKING:
    import numpy as np
    import torch

MAX_SIZE = 16384
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


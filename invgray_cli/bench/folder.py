"""Folder throughput as users feel it (``invgray bench --folder DIR``): the photos of a folder encoded
to gray PNGs, and those grays decoded back to colour PNGs, files read and written as ``invgray
encode DIR -o OUT`` and ``invgray decode`` do it (codec/files.py), twice in the same run: one file
at a time (the loop of 0.6) and overlapped (io/overlap.py: reading and writing on worker threads).

Each run gives images and megapixels per second, and the seconds spent in each stage: reading
(open and decode the file), the nets, the other stages around them (gray guard, sync pattern),
writing (compress and write the file, atomically). Stage seconds are added up over the threads
that ran them, so an overlapped run's add up to more than its wall time; ``waiting`` is the share
of the wall time the nets' thread had nothing to do. Warm-up runs (the first photo) are not timed.
"""
from __future__ import annotations

import dataclasses
import filecmp
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from invgray_cli.errors import InvgrayError

if TYPE_CHECKING:
    import torch

    from invgray_cli.codec.nets import Codec
    from invgray_cli.io.overlap import Stages

STAGES = ("read", "nets", "other", "write")
ONE_AT_A_TIME = "one at a time"
OVERLAPPED = "overlapped"
OPERATIONS = ("encode", "decode")
T = TypeVar("T")


class StageClock:
    """Seconds per stage, added up over the threads that run them."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    def timed(self, stage: str, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn``, its seconds added to ``stage``."""
        def call(*args: Any, **kwargs: Any) -> T:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - start)

        return call


def timed_codec(codec: Codec, clock: StageClock) -> Codec:
    """``codec`` whose nets' seconds go to ``clock``'s "nets" (the rest of the run stage is "other")."""
    from invgray_cli.codec.nets import Codec

    @dataclasses.dataclass(frozen=True, eq=False)
    class TimedCodec(Codec):
        def run_encoder(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            return clock.timed("nets", super().run_encoder)(*args, **kwargs)

        def run_decoder(self, *args: Any, **kwargs: Any) -> list:
            return clock.timed("nets", super().run_decoder)(*args, **kwargs)

    return TimedCodec(**{field.name: getattr(codec, field.name) for field in dataclasses.fields(codec)})


def photos_in(folder: Path) -> list[Path]:
    """The images below ``folder`` as encode would take them (invgray's own outputs left out)."""
    from invgray_cli.io.inputs import OWN_OUTPUTS, expand_inputs

    found = [item.source for item in expand_inputs([str(folder)], skip_suffixes=OWN_OUTPUTS).items
             if item.source is not None and item.problem is None]
    if not found:
        raise InvgrayError(f"no images found in {folder}")
    return found


Numbered = tuple[int, Path]  # a file of the run, numbered in input order (its output's name)


def encode_stages(codec: Codec, out: Path, clock: StageClock) -> Stages:
    """Photo paths to gray PNGs in ``out``, as ``invgray encode`` reads, encodes and writes them;
    each write gives (the gray's path, what was written)."""
    from invgray_cli.codec.files import encode_read_photos, write_gray
    from invgray_cli.io.images import read_color
    from invgray_cli.io.overlap import Stages

    timed = timed_codec(codec, clock)

    def run(batch: list[tuple[Numbered, Any]]) -> list[Any]:
        return encode_read_photos(timed, [photo for _, photo in batch], block_code=False)

    def write(item: Numbered, made: Any) -> tuple[Path, Any]:
        dest = out / f"{item[0]:05d}.gray.png"
        return dest, write_gray(made, dest)

    return Stages(read=clock.timed("read", lambda item: read_color(item[1])), run=_run_stage(clock, run),
                  write=clock.timed("write", write))


def decode_stages(codec: Codec, out: Path, clock: StageClock) -> Stages:
    """Gray paths to colour PNGs in ``out``, as ``invgray decode`` reads, restores and writes them;
    each write gives (the colour image's path, what was written)."""
    from invgray_cli.codec.files import restore_read_grays, write_restored
    from invgray_cli.io.images import read_gray
    from invgray_cli.io.overlap import Stages

    timed = timed_codec(codec, clock)

    def run(batch: list[tuple[Numbered, Any]]) -> list[Any]:
        return restore_read_grays([(str(path), gray, timed, None) for (_, path), gray in batch])

    def write(item: Numbered, made: Any) -> tuple[Path, Any]:
        dest = out / f"{item[0]:05d}.color.png"
        return dest, write_restored(made, dest)

    return Stages(read=clock.timed("read", lambda item: read_gray(item[1])), run=_run_stage(clock, run),
                  write=clock.timed("write", write))


def _run_stage(clock: StageClock, run: Callable[[list], list]) -> Callable[[list], list]:
    """``run`` timed as "other", less the nets' seconds it holds (added to "nets" as they ran)."""
    def timed_run(batch: list) -> list:
        nets_before, start = clock.seconds["nets"], time.perf_counter()
        try:
            return run(batch)
        finally:
            clock.add("other", time.perf_counter() - start - (clock.seconds["nets"] - nets_before))

    return timed_run


def time_folder_run(paths: list[Path], stages_for: Callable[[StageClock], Stages], workers: int,
                    batch: int) -> tuple[dict[str, Any], list[Path]]:
    """One operation over numbered ``paths``: its timing (see the module) and the files it wrote."""
    from invgray_cli.io.overlap import overlapped

    clock = StageClock()
    stages = stages_for(clock)
    start = time.perf_counter()
    finished = list(overlapped(list(enumerate(paths)), stages, workers, batch))
    seconds = time.perf_counter() - start
    written = [done.result for done in finished if done.error is None]
    failures = [done.error for done in finished if done.error is not None]
    megapixels = sum(image.width * image.height for _, image in written) / 1e6
    busy = clock.seconds["nets"] + clock.seconds["other"]
    total = sum(clock.seconds.values()) or 1.0
    timing = {
        "mode": ONE_AT_A_TIME if workers == 0 else OVERLAPPED, "workers": workers, "batch": batch,
        "images": len(written), "failed": len(failures), "megapixels": megapixels, "seconds": seconds,
        "images_per_s": len(written) / seconds, "megapixels_per_s": megapixels / seconds,
        "stage_seconds": dict(clock.seconds),
        "stage_shares": {stage: value / total for stage, value in clock.seconds.items()},
        "waiting": max(0.0, 1.0 - busy / seconds),
        "first_failure": None if not failures else str(failures[0]),
    }
    return timing, [path for path, _ in written]


def bench_folder(codec: Codec, photos: list[Path], workers: int, batch: int = 1, repeats: int = 1,
                 warmup: int = 1) -> dict[str, Any]:
    """Encode the photos and decode their grays, one at a time and overlapped (``workers``
    threads each side, ``batch`` photos per net call), ``repeats`` times each (the order of the two
    alternating); the median run of each, by seconds, and whether both wrote the same bytes."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    identical = True
    with tempfile.TemporaryDirectory(prefix="invgray-bench-") as scratch:
        root = Path(scratch)
        for round_index in range(warmup):  # untimed: lazy loads, first-call costs
            _round(codec, photos[:1], root / f"warmup{round_index}", 0, 1)
        for round_index in range(repeats):
            modes = [(ONE_AT_A_TIME, 0, 1), (OVERLAPPED, workers, batch)]
            outputs: dict[str, dict[str, list[Path]]] = {}
            for mode, mode_workers, mode_batch in modes if round_index % 2 == 0 else modes[::-1]:
                folder = root / f"{round_index}-{mode.replace(' ', '-')}"
                timings, outputs[mode] = _round(codec, photos, folder, mode_workers, mode_batch)
                for op, timing in timings.items():
                    runs.setdefault((op, mode), []).append(timing)
            identical &= all(_same_files(outputs[ONE_AT_A_TIME][op], outputs[OVERLAPPED][op]) for op in OPERATIONS)
            for mode in outputs:
                shutil.rmtree(root / f"{round_index}-{mode.replace(' ', '-')}")
    median = {key: _median_run(timings) for key, timings in runs.items()}
    results = [{"operation": op} | median[(op, mode)] for op in OPERATIONS for mode in (ONE_AT_A_TIME, OVERLAPPED)]
    speedup = {op: median[(op, ONE_AT_A_TIME)]["seconds"] / median[(op, OVERLAPPED)]["seconds"] for op in OPERATIONS}
    return {"results": results, "speedup": speedup, "identical_outputs": identical}


def _median_run(timings: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median seconds (the faster of the middle two for an even count)."""
    return sorted(timings, key=lambda timing: timing["seconds"])[(len(timings) - 1) // 2]


def _same_files(first: list[Path], second: list[Path]) -> bool:
    """Whether two runs wrote the same files, byte for byte."""
    return len(first) == len(second) and all(filecmp.cmp(a, b, shallow=False) for a, b in zip(first, second))


def _round(codec: Codec, photos: list[Path], folder: Path, workers: int,
           batch: int) -> tuple[dict[str, dict[str, Any]], dict[str, list[Path]]]:
    """Encode ``photos`` into ``folder``/grays, then decode those into ``folder``/colour."""
    grays_out, colour_out = folder / "grays", folder / "colour"
    grays_out.mkdir(parents=True)
    colour_out.mkdir()
    encode, grays = time_folder_run(photos, lambda clock: encode_stages(codec, grays_out, clock), workers, batch)
    if not grays:
        raise InvgrayError(f"no photo in the folder could be encoded: {encode['first_failure']}")
    decode, colours = time_folder_run(grays, lambda clock: decode_stages(codec, colour_out, clock), workers, batch)
    return {"encode": encode, "decode": decode}, {"encode": grays, "decode": colours}


def run_folder_bench(folder: Path, devices: list[str], load_codec: Callable[[str], Codec], workers: int | None = None,
                     batch: int = 1, repeats: int = 1, warmup: int = 1,
                     on_step: Callable[[str], None] | None = None) -> dict:
    """The folder bench on every device; returns the ``invgray bench --folder --json`` document.
    ``workers`` None: the number encode and decode use on the device (io/overlap.py)."""
    import torch

    from invgray_cli.bench.measure import device_name
    from invgray_cli.io.overlap import default_workers
    from invgray_cli.report import envelope, model_facts

    photos = photos_in(folder)
    results, device_info, model = [], {}, model_facts(None, None)
    for spec in devices:
        codec = load_codec(spec)
        model = model_facts(codec.info.name, codec.info.sha256)
        threads = default_workers(codec.device.type) if workers is None else workers
        if on_step:
            on_step(f"{codec.device}: {len(photos)} photos")
        measured = bench_folder(codec, photos, threads, batch, repeats, warmup)
        device_info[str(codec.device)] = {"name": device_name(codec.device), "tile": codec.tile,
                                          "precision": codec.precision, "workers": threads,
                                          "speedup": measured["speedup"],
                                          "identical_outputs": measured["identical_outputs"]}
        results += [{"device": str(codec.device)} | row for row in measured["results"]]
        del codec
    return envelope(
        "invgray-bench",
        "a folder of photos encoded to gray PNGs and the grays decoded to colour PNGs, as `invgray encode/decode "
        "DIR -o OUT` read and write them: one file at a time (0.6's loop) and overlapped (reading and writing on "
        "`workers` threads each); the median run by seconds, images and megapixels per second, seconds per stage "
        "added over threads (read, nets, other stages, write), `waiting`: share of the run the nets' thread idled",
        model,
        ",".join(device_info),
        threads=torch.get_num_threads(),
        devices=device_info,
        folder=str(folder),
        photos=len(photos),
        warmup=warmup,
        repeats=repeats,
        batch=batch,
        results=results,
    )

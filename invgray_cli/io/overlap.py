"""Stage 1 (io): folders as a pipeline. Each item goes through three stages: ``read`` (open and decode
the input image) and ``write`` (compress and write the output: PNG's zlib, JPEG) run on worker
threads, while ``run`` (the nets) runs on the calling thread, so files are read and written while
the nets work. Queues are bounded, results come back in input order, and an item's failure is
that item's alone.

zlib, libjpeg and Pillow's decoders release the GIL, so the worker threads overlap the nets; the
nets stay on one thread (torch parallelises them itself, and CUDA work is issued from one place).
With ``workers`` 0 every stage runs in turn on the calling thread: the loop of one file at a time.
"""
from __future__ import annotations

import functools
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Read = TypeVar("Read")
Made = TypeVar("Made")
Out = TypeVar("Out")

# Worker threads for reading, and as many for writing. On the CPU one each: torch already runs the
# nets on every core, one reader and one writer overlap a file's reading and writing with them,
# and every further thread would take a core from torch's. With the nets on a GPU the cores are
# free and writing is the slowest stage (a 1024² colour PNG took 0.26 s of CPU on a 2-core EPYC;
# the nets take milliseconds there): a writer per core, up to 8. Reading is one file at a time
# whatever the count (images.py decodes under a lock), but a 1024² JPEG took 0.013 s.
CPU_WORKERS = 1
MAX_GPU_WORKERS = 8


def default_workers(device_type: str, cpu_count: int | None = None) -> int:
    """Worker threads per side (reading, writing) for nets on ``device_type`` ("cpu", "cuda")."""
    if device_type != "cuda":
        return CPU_WORKERS
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(CPU_WORKERS, min(MAX_GPU_WORKERS, cores - 1))


@dataclass(frozen=True)
class Stages(Generic[Item, Read, Made, Out]):
    """What is done to each item. ``read`` and ``write`` run on worker threads and must not share
    state between items; ``run`` gets a batch of (item, what was read) in input order, on the
    calling thread, and returns what it made of each, in the same order."""

    read: Callable[[Item], Read]
    run: Callable[[list[tuple[Item, Read]]], list[Made]]
    write: Callable[[Item, Made], Out]


@dataclass(frozen=True)
class Finished(Generic[Item, Out]):
    """One item's result, or the exception that stopped it (at whichever stage)."""

    item: Item
    result: Out | None = None
    error: Exception | None = None


def overlapped(items: Iterable[Item], stages: Stages[Item, Read, Made, Out], workers: int = CPU_WORKERS,
               batch: int = 1) -> Iterator[Finished[Item, Out]]:
    """Each item through ``stages``, yielded in input order as soon as it and those before it are written.

    At most ``workers + batch`` items are read ahead and ``workers`` wait to be written (memory
    stays bounded, whatever the folder). Up to ``batch`` consecutive items go to ``run`` at once;
    a batch whose ``run`` fails is run again one item at a time, so only the items at fault fail.
    KeyboardInterrupt and SystemExit stop the run: writes under way finish (each is atomic),
    the rest are never started.
    """
    if workers < 0 or batch < 1:
        raise ValueError(f"workers must be >= 0 and batch >= 1, got {workers} and {batch}")
    if workers == 0:
        yield from _one_at_a_time(items, stages, batch)
        return
    readers = ThreadPoolExecutor(workers, thread_name_prefix="invgray-read")
    writers = ThreadPoolExecutor(workers, thread_name_prefix="invgray-write")
    try:
        queue = iter(items)
        reads: deque[tuple[Item, Future[Read]]] = deque()
        writes: deque[tuple[Item, Future[Out] | Exception]] = deque()

        def read_ahead() -> None:
            for item in itertools.islice(queue, max(0, workers + batch - len(reads))):
                reads.append((item, readers.submit(stages.read, item)))

        read_ahead()
        while reads:
            taken = [reads.popleft() for _ in range(min(batch, len(reads)))]
            read_ahead()
            for item, made in _made(stages.run, [(item, future.result) for item, future in taken]):
                writes.append((item, made if isinstance(made, Exception) else writers.submit(stages.write, item, made)))
                while writes and (len(writes) > workers or _settled(writes[0][1])):
                    yield _finished(*writes.popleft())
        while writes:
            yield _finished(*writes.popleft())
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True, cancel_futures=True)


def _one_at_a_time(items: Iterable[Item], stages: Stages[Item, Read, Made, Out],
                   batch: int) -> Iterator[Finished[Item, Out]]:
    """The stages in turn on the calling thread, ``batch`` items at a time."""
    queue = iter(items)
    while group := list(itertools.islice(queue, batch)):
        for item, made in _made(stages.run, [(item, functools.partial(stages.read, item)) for item in group]):
            if isinstance(made, Exception):
                yield Finished(item, error=made)
                continue
            try:
                written = stages.write(item, made)
            except Exception as exc:
                yield Finished(item, error=exc)
            else:
                yield Finished(item, written)


def _made(run: Callable[[list[tuple[Item, Read]]], list[Made]],
          reads: Sequence[tuple[Item, Callable[[], Read]]]) -> list[tuple[Item, Made | Exception]]:
    """What ``run`` made of each item, in input order, or the exception its read or its run raised.
    ``reads`` gives each item's read (a finished read's result, or the read itself)."""
    failed: dict[int, Exception] = {}
    ready: list[tuple[Item, Read]] = []
    for index, (item, read) in enumerate(reads):
        try:
            ready.append((item, read()))
        except Exception as exc:
            failed[index] = exc
    made = iter(_run_batch(run, ready))
    return [(item, failed[index] if index in failed else next(made)[1]) for index, (item, _) in enumerate(reads)]


def _run_batch(run: Callable[[list[tuple[Item, Read]]], list[Made]],
               ready: Sequence[tuple[Item, Read]]) -> list[tuple[Item, Made | Exception]]:
    """``run`` on the batch, or where it fails on each item alone (its exception as its result)."""
    if not ready:
        return []
    try:
        made = run(list(ready))
    except Exception as exc:
        if len(ready) == 1:
            return [(ready[0][0], exc)]
        return [pair for one in ready for pair in _run_batch(run, [one])]
    if len(made) != len(ready):
        raise ValueError(f"run gave {len(made)} results for {len(ready)} items")
    return [(item, result) for (item, _), result in zip(ready, made)]


def _settled(entry: Future[Out] | Exception) -> bool:
    return isinstance(entry, Exception) or entry.done()


def _finished(item: Item, entry: Future[Out] | Exception) -> Finished[Item, Out]:
    """The item's result once written (waiting for its write), or its error."""
    if isinstance(entry, Exception):
        return Finished(item, error=entry)
    try:
        return Finished(item, entry.result())
    except Exception as exc:
        return Finished(item, error=exc)

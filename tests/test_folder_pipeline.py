"""Folders as a pipeline (issue 23): reading and writing on worker threads while the nets run, results
in input order, failures per file, bounded queues; the same bytes as one file at a time, and every
rule of a folder run kept (no overwrite, --force, --skip-existing, exit codes, Ctrl-C). And
``invgray bench --folder``, which times both."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import assert_one_line_error, files_in, photo, run
from invgray_cli.io.overlap import CPU_WORKERS, Stages, default_workers, overlapped

# ---- the pipeline alone ---------------------------------------------------------------------------


def jittered(seconds: float) -> None:
    time.sleep(seconds * np.random.default_rng(threading.get_ident() % 2**32).random())


def doubling_stages(log: dict[str, list]) -> Stages:
    """read: the item; run: each doubled (batches logged with the thread that ran them); write: +1."""
    def read(item: int) -> int:
        jittered(0.004)
        log["read threads"].append(threading.get_ident())
        return item

    def run_batch(batch: list[tuple[int, int]]) -> list[int]:
        log["batches"].append([item for item, _ in batch])
        log["run threads"].append(threading.get_ident())
        return [value * 2 for _, value in batch]

    def write(item: int, made: int) -> int:
        jittered(0.004)
        log["write threads"].append(threading.get_ident())
        return made + 1

    return Stages(read, run_batch, write)


@pytest.mark.parametrize("workers,batch", [(0, 1), (1, 1), (2, 1), (3, 4), (0, 3)])
def test_results_come_in_input_order_and_the_nets_run_on_the_calling_thread(workers: int, batch: int) -> None:
    log: dict[str, list] = {"batches": [], "read threads": [], "run threads": [], "write threads": []}
    finished = list(overlapped(range(23), doubling_stages(log), workers, batch))
    assert [done.item for done in finished] == list(range(23))
    assert [done.result for done in finished] == [2 * i + 1 for i in range(23)]
    assert all(done.error is None for done in finished)
    assert [item for group in log["batches"] for item in group] == list(range(23))  # batches in input order
    assert max(len(group) for group in log["batches"]) == batch
    assert set(log["run threads"]) == {threading.get_ident()}
    workers_used = set(log["read threads"]) | set(log["write threads"])
    assert (threading.get_ident() in workers_used) == (workers == 0)


@pytest.mark.parametrize("workers,batch", [(1, 1), (2, 1), (2, 3)])
def test_the_queues_are_bounded(workers: int, batch: int) -> None:
    """However long the folder, only a few items are read and not yet written."""
    lock = threading.Lock()
    state = {"in flight": 0, "most": 0}

    def read(item: int) -> int:
        with lock:
            state["in flight"] += 1
            state["most"] = max(state["most"], state["in flight"])
        return item

    def write(item: int, made: int) -> int:
        time.sleep(0.002)  # writing is the slow stage: the queues fill up
        with lock:
            state["in flight"] -= 1
        return made

    finished = list(overlapped(range(60), Stages(read, lambda batch_: [v for _, v in batch_], write), workers, batch))
    assert len(finished) == 60 and state["in flight"] == 0
    assert state["most"] <= 2 * workers + 2 * batch + 1


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failure_is_its_items_alone_whatever_the_stage(workers: int) -> None:
    def read(item: int) -> int:
        if item == 2:
            raise ValueError("unreadable 2")
        return item

    def run_batch(batch: list[tuple[int, int]]) -> list[int]:
        if any(item == 5 for item, _ in batch):
            raise ValueError("the nets refuse 5")
        return [value for _, value in batch]

    def write(item: int, made: int) -> int:
        if item == 7:
            raise OSError("disk full at 7")
        return made

    finished = list(overlapped(range(10), Stages(read, run_batch, write), workers, batch=3))
    assert [done.item for done in finished] == list(range(10))
    errors = {done.item: str(done.error) for done in finished if done.error is not None}
    assert errors == {2: "unreadable 2", 5: "the nets refuse 5", 7: "disk full at 7"}  # 3 and 4 shared 5's batch
    assert [done.result for done in finished if done.error is None] == [0, 1, 3, 4, 6, 8, 9]


def test_an_interrupt_stops_the_run_and_lets_writes_under_way_finish() -> None:
    started, written = [], []

    def run_batch(batch: list[tuple[int, int]]) -> list[int]:
        if batch[0][0] == 6:
            raise KeyboardInterrupt
        return [value for _, value in batch]

    def write(item: int, made: int) -> int:
        started.append(item)
        time.sleep(0.01)
        written.append(item)
        return made

    with pytest.raises(KeyboardInterrupt):
        for _ in overlapped(range(20), Stages(lambda item: item, run_batch, write), workers=2):
            pass
    assert sorted(started) == sorted(written) and set(written) <= set(range(6))  # none half done, none after


def test_default_workers() -> None:
    assert default_workers("cpu") == CPU_WORKERS == 1
    assert default_workers("cuda", cpu_count=16) == 8 and default_workers("cuda", cpu_count=4) == 3
    assert default_workers("cuda", cpu_count=1) == CPU_WORKERS
    with pytest.raises(ValueError):
        next(overlapped([1], Stages(lambda i: i, lambda b: [v for _, v in b], lambda i, m: m), workers=-1))


# ---- encode and decode of folders -----------------------------------------------------------------


def photo_folder(folder: Path) -> list[Path]:
    """Photos of two sizes (so a batch could mix them), one with alpha, one in a sub-folder."""
    return [photo(folder / "a.jpg", 40, 24, seed=1), photo(folder / "b.png", 40, 24, seed=2),
            photo(folder / "c.png", 33, 17, mode="RGBA", seed=3), photo(folder / "sub" / "d.jpg", 40, 24, seed=4),
            photo(folder / "e.jpg", 21, 30, seed=5)]


def test_a_folder_through_the_pipeline_writes_the_bytes_of_one_file_at_a_time(tmp_path: Path, weights: Path) -> None:
    photos = photo_folder(tmp_path / "photos")
    assert run("encode", tmp_path / "photos", "-o", tmp_path / "grays", "--weights", weights).exit_code == 0
    for source in photos:  # one file at a time: a run of one file has nothing to overlap
        rel = source.relative_to(tmp_path / "photos")
        target = tmp_path / "single_grays" / rel.parent / (source.stem + ".gray.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        assert run("encode", source, "-o", target, "--weights", weights).exit_code == 0
    assert files_in(tmp_path / "grays") == files_in(tmp_path / "single_grays")
    assert len(files_in(tmp_path / "grays")) == 5
    for name in files_in(tmp_path / "grays"):
        assert (tmp_path / "grays" / name).read_bytes() == (tmp_path / "single_grays" / name).read_bytes(), name

    assert run("decode", tmp_path / "grays", "-o", tmp_path / "colour", "--weights", weights).exit_code == 0
    for name in files_in(tmp_path / "grays"):
        target = tmp_path / "single_colour" / name.replace(".gray.png", ".color.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        assert run("decode", tmp_path / "grays" / name, "-o", target, "--weights", weights).exit_code == 0
    assert files_in(tmp_path / "colour") == files_in(tmp_path / "single_colour")
    for name in files_in(tmp_path / "colour"):
        assert (tmp_path / "colour" / name).read_bytes() == (tmp_path / "single_colour" / name).read_bytes(), name


def test_a_batch_of_same_size_photos_writes_the_same_bytes(tmp_path: Path, tiny_model) -> None:
    """The codec's batches (same-size photos through the net together) as the folder pipeline forms them."""
    from invgray_cli.bench.folder import bench_folder
    from invgray_cli.codec.nets import Codec
    from invgray_cli.models.zoo import ModelInfo

    codec = Codec.from_model(tiny_model, ModelInfo("tiny.test", "0" * 64, tiny_model.divisibility,
                                                   tiny_model.receptive_field), device="cpu")
    measured = bench_folder(codec, photo_folder(tmp_path / "photos"), workers=2, batch=3, repeats=1, warmup=0)
    assert measured["identical_outputs"] is True
    assert {row["batch"] for row in measured["results"]} == {1, 3}
    assert all(row["images"] == 5 for row in measured["results"])


def test_a_folder_run_reports_in_input_order_and_fails_only_the_bad_file(tmp_path: Path, weights: Path) -> None:
    photo_folder(tmp_path / "photos")
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = run("encode", tmp_path / "photos", "-o", tmp_path / "grays", "--weights", weights, "--json")
    assert result.exit_code == 1
    files = json.loads(result.stdout)["results"]["files"]
    names = [Path(f["input"]).relative_to(tmp_path / "photos").as_posix() for f in files]
    assert names == ["a.jpg", "b.png", "broken.jpg", "c.png", "e.jpg", "sub/d.jpg"]  # the order files were found in
    assert [f["status"] for f in files] == ["ok", "ok", "failed", "ok", "ok", "ok"]
    assert_one_line_error(result, 1, "broken.jpg", "truncated or corrupt image")
    assert len(files_in(tmp_path / "grays")) == 5 and not list(tmp_path.rglob("*.part"))


def test_a_folder_run_keeps_the_overwrite_rules(tmp_path: Path, weights: Path) -> None:
    photo_folder(tmp_path / "photos")
    out = tmp_path / "grays"
    out.mkdir()
    (out / "b.gray.png").write_bytes(b"mine")
    result = run("encode", tmp_path / "photos", "-o", out, "--weights", weights)
    assert_one_line_error(result, 1, "b.gray.png exists; use --force")
    assert (out / "b.gray.png").read_bytes() == b"mine" and len(files_in(out)) == 5

    (out / "c.gray.png").unlink()
    result = run("encode", tmp_path / "photos", "-o", out, "--weights", weights, "--skip-existing")
    assert result.exit_code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("invgray: note:")]
    assert len(notes) == 1 and notes[0].startswith("invgray: note: skipped 4 files: its output exists")
    assert Image.open(out / "c.gray.png").mode == "LA" and (out / "b.gray.png").read_bytes() == b"mine"

    result = run("encode", tmp_path / "photos", "-o", out, "--weights", weights, "--force")
    assert result.exit_code == 0, result.stderr
    assert Image.open(out / "b.gray.png").mode == "L" and files_in(out) == {
        "a.gray.png", "b.gray.png", "c.gray.png", "e.gray.png", "sub/d.gray.png"}


def test_an_interrupt_while_writing_a_folder_leaves_no_partial_file(tmp_path: Path, weights: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    photo_folder(tmp_path / "photos")
    real_save = Image.Image.save

    def dying_save(self, fp, *args, **kwargs):  # on a writer thread
        real_save(self, fp, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", dying_save)
    result = run("encode", tmp_path / "photos", "-o", tmp_path / "grays", "--weights", weights)
    assert_one_line_error(result, 130, "interrupted")
    assert files_in(tmp_path / "grays") == set()  # neither a gray nor a temporary file


def test_ctrl_c_during_a_folder_run_leaves_only_whole_files(tmp_path: Path, weights: Path) -> None:
    """A real process and a real SIGINT while the writer threads are busy: exit 130, every file
    there is whole, no temporary file is left."""
    for index in range(12):
        photo(tmp_path / "photos" / f"p{index:02d}.png", 40, 24, seed=index)
    script = tmp_path / "slow_writes.py"
    script.write_text(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job ignores it\n"
        "from PIL import Image\n"
        "real_save = Image.Image.save\n"
        "def slow_save(self, *args, **kwargs):\n"
        "    time.sleep(0.3)\n"
        "    real_save(self, *args, **kwargs)\n"
        "Image.Image.save = slow_save\n"
        "from invgray_cli.cli.app import main\n"
        f"sys.argv = ['invgray', 'encode', {str(tmp_path / 'photos')!r}, '-o', {str(tmp_path / 'grays')!r}, "
        f"'--weights', {str(weights)!r}, '--device', 'cpu']\n"
        "main()\n")
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "grays").glob("*.gray.png")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, process.stderr.read()
    assert "invgray: error: interrupted" in process.stderr.read()
    written = files_in(tmp_path / "grays")
    assert 0 < len(written) < 12 and all(name.endswith(".gray.png") for name in written), written
    for name in written:
        Image.open(tmp_path / "grays" / name).load()  # whole


# ---- invgray bench --folder ------------------------------------------------------------------------


def test_bench_folder_reports_throughput_and_where_the_time_goes(tmp_path: Path, weights: Path) -> None:
    photo_folder(tmp_path / "photos")
    result = run("bench", "--folder", tmp_path / "photos", "--weights", weights, "--device", "cpu", "--workers", "1",
                 "--warmup", "0", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["name"] == "invgray-bench" and report["photos"] == 5 and report["repeats"] == 1
    assert report["model"]["name"] == "tiny.test" and set(report["versions"]) >= {"invgray", "torch"}
    facts = report["devices"]["cpu"]
    assert facts["workers"] == 1 and facts["identical_outputs"] is True
    assert set(facts["speedup"]) == {"encode", "decode"}
    rows = report["results"]
    assert [(row["operation"], row["mode"]) for row in rows] == [
        ("encode", "one at a time"), ("encode", "overlapped"), ("decode", "one at a time"), ("decode", "overlapped")]
    megapixels = (3 * 40 * 24 + 33 * 17 + 21 * 30) / 1e6
    for row in rows:
        assert row["images"] == 5 and row["failed"] == 0 and row["megapixels"] == pytest.approx(megapixels)
        assert row["images_per_s"] == pytest.approx(5 / row["seconds"])
        assert row["megapixels_per_s"] == pytest.approx(megapixels / row["seconds"])
        assert set(row["stage_seconds"]) == {"read", "nets", "other", "write"}
        assert all(value > 0 for value in row["stage_seconds"].values())
        assert sum(row["stage_shares"].values()) == pytest.approx(1.0) and 0 <= row["waiting"] <= 1
    assert facts["speedup"]["encode"] == pytest.approx(rows[0]["seconds"] / rows[1]["seconds"])
    flat = " ".join(result.stderr.split())
    assert "overlapped (1+1)" in flat and "same bytes written: yes" in flat and "5 photos" in flat
    assert not files_in(tmp_path / "photos") - {"a.jpg", "b.png", "c.png", "sub/d.jpg", "e.jpg"}  # wrote nothing there


@pytest.mark.parametrize("extra,needle", [(["--paper"], "--folder"), (["--sizes", "64"], "--folder")])
def test_bench_folder_refuses_the_synthetic_options(tmp_path: Path, extra: list[str], needle: str) -> None:
    result = run("bench", "--folder", tmp_path, "--random", *extra)
    assert result.exit_code == 2 and needle in result.stderr


def test_bench_workers_needs_a_folder() -> None:
    result = run("bench", "--random", "--workers", "2")
    assert result.exit_code == 2 and "--workers is for a folder run" in result.stderr


@pytest.mark.parametrize("width", [80, 120])
def test_bench_folder_table_shows_every_cell_whole(width: int) -> None:
    from rich.console import Console

    from invgray_cli.bench.table import render_folder_tables

    def row(op: str, mode: str, workers: int, seconds: float) -> dict:
        shares = {"read": 0.031, "nets": 0.905, "other": 0.041, "write": 0.023}
        return {"device": "cpu", "operation": op, "mode": mode, "workers": workers, "batch": 1, "images": 1000,
                "failed": 0, "megapixels": 1048.6, "seconds": seconds, "images_per_s": 1000 / seconds,
                "megapixels_per_s": 1048.6 / seconds, "stage_shares": shares, "waiting": 0.012}

    report = {"model": {"name": "igray_s4w96.invisible_v2"}, "threads": 16, "photos": 1000, "repeats": 1,
              "devices": {"cpu": {"name": "AMD EPYC 9654 96-Core Processor", "tile": 1024, "precision": "fp32",
                                  "workers": 8, "speedup": {"encode": 1.123, "decode": 1.05},
                                  "identical_outputs": True}},
              "results": [row("encode", "one at a time", 0, 1234.56), row("encode", "overlapped", 8, 1100.0),
                          row("decode", "one at a time", 0, 999.9), row("decode", "overlapped", 8, 950.2)]}
    console = Console(width=width, record=True, force_terminal=False)
    console.print(render_folder_tables(report))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width and "…" not in text, text
    lines = [line.split() for line in text.splitlines()]
    assert ["encode", "one", "at", "a", "time", "1234.56", "0.81", "0.85", "3%", "90%", "4%", "2%", "1%"] in lines
    assert ["overlapped", "(8+8)", "950.20", "1.05", "1.10", "3%", "90%", "4%", "2%", "1%"] in lines
    assert "encode 1.12x, decode 1.05x" in " ".join(text.split())

"""The command line's happy paths: round trips, batches, pipes, overwrite rules, --json, info, models."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import (
    TINY_NAME,
    assert_one_line_error,
    files_in,
    python_alone,
    open_png,
    photo,
    run,
    run_json,
)
from invgray_cli.cli import app as cli_module, runner
from invgray_cli.codec.nets import Codec
from invgray_cli.io.chunk import CHUNK_KEY


def test_round_trip_rgb(tmp_path: Path, weights: Path) -> None:
    src = photo(tmp_path / "a.jpg", 37, 21)
    result = run("encode", src, "--weights", weights)
    assert result.exit_code == 0, result.stderr
    gray = open_png(tmp_path / "a.gray.png")
    assert gray.mode == "L" and gray.size == (37, 21)
    assert json.loads(gray.text[CHUNK_KEY])["model"] == TINY_NAME

    result = run("decode", tmp_path / "a.gray.png", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    colour = open_png(tmp_path / "a.color.png")
    assert colour.mode == "RGB" and colour.size == (37, 21)
    assert "warning" not in result.stderr


def test_round_trip_rgba_keeps_alpha(tmp_path: Path, weights: Path) -> None:
    src = photo(tmp_path / "a.png", 16, 9, mode="RGBA")
    assert run("encode", src, "--weights", weights).exit_code == 0
    gray = open_png(tmp_path / "a.gray.png")
    assert gray.mode == "LA"
    assert run("decode", tmp_path / "a.gray.png", "-o", tmp_path / "back.png", "--weights", weights).exit_code == 0
    colour = open_png(tmp_path / "back.png")
    assert colour.mode == "RGBA" and colour.getchannel("A").tobytes() == Image.open(src).getchannel("A").tobytes()


def test_decode_uses_the_model_named_in_the_chunk(tmp_path: Path, registered: Path) -> None:
    src = photo(tmp_path / "a.jpg")
    assert run("encode", src, "--model", TINY_NAME).exit_code == 0
    result, doc = run_json("decode", tmp_path / "a.gray.png", "-o", tmp_path / "a.jpg.png")
    assert result.exit_code == 0 and doc["results"]["files"][0]["model"] == TINY_NAME
    assert "warning" not in result.stderr


def test_decode_output_format_from_extension(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.jpg")
    run("encode", tmp_path / "a.jpg", "--weights", weights)
    assert run("decode", tmp_path / "a.gray.png", "-o", tmp_path / "c.jpg", "--weights", weights).exit_code == 0
    assert Image.open(tmp_path / "c.jpg").format == "JPEG"


def test_batch_folder_mirrors_tree_and_skips_non_images(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "photos"
    photo(src / "a.jpg")
    photo(src / "sub" / "b.png", mode="RGBA")
    photo(src / "sub" / "deeper" / "c.webp")
    (src / "notes.txt").write_text("not an image")
    result, doc = run_json("encode", src, "-o", tmp_path / "grays", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert files_in(tmp_path / "grays") == {"a.gray.png", "sub/b.gray.png", "sub/deeper/c.gray.png"}
    assert "notes.txt" in result.stderr and "skipped" in result.stderr
    assert doc["results"]["counts"] == {"ok": 3, "skipped": 1, "failed": 0} and doc["results"]["ok"] is True
    (passed_over,) = [f for f in doc["results"]["files"] if f["status"] != "ok"]
    assert passed_over == {**passed_over, "input": str(src / "notes.txt"), "output": None, "status": "skipped",
                           "note": "not an image file name"}
    assert all(f["model"] == TINY_NAME and f["bytes"] > 0 and f["seconds"] >= 0
               for f in doc["results"]["files"] if f["status"] == "ok")

    result = run("decode", tmp_path / "grays", "-o", tmp_path / "colours", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert files_in(tmp_path / "colours") == {"a.color.png", "sub/b.color.png", "sub/deeper/c.color.png"}


def test_batch_beside_inputs_force_and_skip_existing(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "in" / "a.jpg")
    photo(tmp_path / "in" / "s" / "b.jpg")
    assert run("encode", tmp_path / "in", "--weights", weights).exit_code == 0
    before = files_in(tmp_path / "in")
    assert before == {"a.jpg", "a.gray.png", "s/b.jpg", "s/b.gray.png"}
    stamp = (tmp_path / "in" / "a.gray.png").stat().st_mtime_ns

    result, doc = run_json("encode", tmp_path / "in", "--weights", weights)  # outputs are not re-encoded
    assert result.exit_code == 1 and doc["results"]["counts"]["failed"] == 2
    assert "--force" in doc["results"]["files"][0]["error"]
    assert (tmp_path / "in" / "a.gray.png").stat().st_mtime_ns == stamp

    result, doc = run_json("encode", tmp_path / "in", "--skip-existing", "--weights", weights)
    assert result.exit_code == 0 and doc["results"]["counts"] == {"ok": 0, "skipped": 4, "failed": 0}
    assert sorted(f["note"] for f in doc["results"]["files"]).count("its output exists") == 2  # and the 2 grays

    result, doc = run_json("encode", tmp_path / "in", "--force", "--weights", weights)
    assert result.exit_code == 0 and doc["results"]["counts"]["ok"] == 2
    assert files_in(tmp_path / "in") == before


def test_glob_and_several_files(tmp_path: Path, weights: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.png"):
        photo(tmp_path / "in" / name)
    result = run("encode", str(tmp_path / "in" / "*.jpg"), tmp_path / "in" / "c.png", "-o", tmp_path / "out",
                 "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert files_in(tmp_path / "out") == {"a.gray.png", "b.gray.png", "c.gray.png"}


def test_stdin_to_stdout(tmp_path: Path, weights: Path) -> None:
    data = photo(tmp_path / "a.png", 20, 12).read_bytes()
    result = run("encode", "-", "--weights", weights, stdin=data)
    assert result.exit_code == 0, result.stderr
    gray = open_png(result.stdout_bytes)
    assert gray.mode == "L" and gray.size == (20, 12) and CHUNK_KEY in gray.text
    result = run("decode", "-", "-o", "-", "--weights", weights, stdin=result.stdout_bytes)
    assert result.exit_code == 0, result.stderr
    colour = open_png(result.stdout_bytes)
    assert colour.format == "PNG" and colour.mode == "RGB" and colour.size == (20, 12)
    assert files_in(tmp_path) == {"a.png", "w/tiny.safetensors"}


def test_one_file_to_stdout_and_stdin_to_file(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.png")
    result = run("encode", tmp_path / "a.png", "-o", "-", "--weights", weights)
    assert result.exit_code == 0 and open_png(result.stdout_bytes).mode == "L"
    result = run("encode", "-", "-o", tmp_path / "g.png", "--weights", weights,
                 stdin=(tmp_path / "a.png").read_bytes())
    assert result.exit_code == 0 and open_png(tmp_path / "g.png").mode == "L"


def test_no_overwrite_without_force(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.jpg")
    (tmp_path / "out.png").write_bytes(b"precious")
    result = run("encode", tmp_path / "a.jpg", "-o", tmp_path / "out.png", "--weights", weights)
    assert_one_line_error(result, 1, "out.png exists", "--force")
    assert (tmp_path / "out.png").read_bytes() == b"precious"
    assert run("encode", tmp_path / "a.jpg", "-o", tmp_path / "out.png", "--force", "--weights", weights).exit_code == 0
    assert open_png(tmp_path / "out.png").mode == "L"


@pytest.mark.parametrize("command, name", [("encode", "a.png"), ("decode", "a.gray.png")])
def test_output_never_replaces_input(tmp_path: Path, weights: Path, command: str, name: str) -> None:
    photo(tmp_path / "a.png")
    run("encode", tmp_path / "a.png", "--weights", weights)
    target = tmp_path / name
    data = target.read_bytes()
    (tmp_path / "link.png").symlink_to(target)
    for alias in (target, tmp_path / "." / name, tmp_path / "link.png"):
        result = run(command, target, "-o", alias, "--force", "--weights", weights)
        assert_one_line_error(result, 1, "would replace its input")
        assert target.read_bytes() == data


def test_output_folder_policy(tmp_path: Path, weights: Path) -> None:
    """A single output file's folder must exist; an -o DIR (several inputs, or a trailing slash) is created."""
    photo(tmp_path / "a.jpg")
    photo(tmp_path / "b.jpg")
    result = run("encode", tmp_path / "a.jpg", "-o", tmp_path / "missing" / "g.png", "--weights", weights)
    assert_one_line_error(result, 1, "does not exist", "create it first")
    assert not (tmp_path / "missing").exists()
    result = run("encode", tmp_path / "a.jpg", "-o", f"{tmp_path / 'new'}/", "--weights", weights)
    assert result.exit_code == 0 and (tmp_path / "new" / "a.gray.png").is_file()
    result = run("encode", tmp_path / "a.jpg", tmp_path / "b.jpg", "-o", tmp_path / "made" / "deep", "--weights", weights)
    assert result.exit_code == 0 and files_in(tmp_path / "made") == {"deep/a.gray.png", "deep/b.gray.png"}


def test_one_failure_does_not_stop_the_batch(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "b.png").write_bytes(photo(tmp_path / "x.png").read_bytes()[:60])  # truncated
    photo(tmp_path / "in" / "c.jpg")
    result, doc = run_json("encode", tmp_path / "in", "-o", tmp_path / "out", "--weights", weights)
    assert result.exit_code == 1
    assert_one_line_error(result, 1, "b.png")
    assert [f["status"] for f in doc["results"]["files"]] == ["ok", "failed", "ok"]
    assert doc["results"]["ok"] is False and "b.png" in doc["results"]["files"][1]["error"]
    assert files_in(tmp_path / "out") == {"a.gray.png", "c.gray.png"}


def test_model_is_loaded_once_per_run(tmp_path: Path, registered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        photo(tmp_path / "in" / f"{name}.jpg", seed=ord(name))
    calls: list[tuple] = []
    real_load = Codec.load.__func__

    def counting_load(cls, *args, **kwargs):
        calls.append(args)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Codec, "load", classmethod(counting_load))
    assert run("encode", tmp_path / "in", "-o", tmp_path / "g").exit_code == 0
    assert len(calls) == 1
    calls.clear()
    assert run("decode", tmp_path / "g", "-o", tmp_path / "c").exit_code == 0
    assert len(calls) == 1


def test_decode_of_gray_without_chunk_warns(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "plain.png", mode="L")  # a gray re-saved by another tool: no invgray chunk
    result = run("decode", tmp_path / "plain.png", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("invgray: warning:")]
    assert len(warnings) == 1 and "plain.png" in warnings[0] and "no invgray chunk" in warnings[0]
    assert open_png(tmp_path / "plain.color.png").mode == "RGB"
    result, doc = run_json("decode", tmp_path / "plain.png", "--force", "--weights", weights)
    assert result.exit_code == 0 and "no invgray chunk" in doc["results"]["files"][0]["warning"]


def test_tiled_run_through_the_cli(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.png", 70, 45)
    for name, tile in (("t.png", 32), ("w.png", 0)):  # fp32 on any device: CUDA runs without TF32
        result = run("encode", tmp_path / "a.png", "-o", tmp_path / name, "--tile", tile, "--weights", weights,
                     "--precision", "fp32")
        assert result.exit_code == 0, result.stderr
    tiled = np.asarray(open_png(tmp_path / "t.png"), dtype=int)
    whole = np.asarray(open_png(tmp_path / "w.png"), dtype=int)
    assert np.abs(tiled - whole).max() <= 1 and (tiled == whole).mean() >= 0.999


def test_tile_progress_bar_comes_and_goes() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(file=io.StringIO()))
    on_tile, cleanup = runner._tile_callback(progress, "a.png")
    on_tile(0, 1)
    assert not progress.tasks  # a single tile shows no bar
    on_tile(1, 4)
    assert progress.tasks[0].completed == 1 and progress.tasks[0].total == 4
    cleanup()
    assert not progress.tasks
    assert runner._tile_callback(None, "a.png")[0] is None


def test_quiet_prints_nothing_but_errors(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "n.txt").write_text("x")
    result = run("encode", tmp_path / "in", "-q", "--weights", weights)
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""


@pytest.mark.parametrize("args, needle", [
    (["encode"], "Missing argument"),
    (["encode", "a.jpg", "--bogus"], "No such option"),
    (["frobnicate"], "No such command"),
    (["encode", "a.jpg", "--force", "--skip-existing"], "contradict"),
    (["encode", "a.jpg", "b.jpg", "-o", "-"], "single input"),
    (["encode", "a.jpg", "-o", "-", "--json"], "--json"),
    (["encode", "-", "a.jpg"], "only input"),
    (["encode", "a.jpg", "-o", "g.bmp"], "invgray writes a gray as .png, .tif or .webp"),
    (["decode", "a.jpg", "-o", "c.xyz"], "cannot tell the image format"),
    (["encode", "a.jpg", "--model", "invisible_v2", "--weights", "w.safetensors"], "give one"),
    (["encode", "a.jpg", "--model", "invisble_v2"], "did you mean 'invisible_v2'?"),
    (["encode", "a.jpg", "--tile", "-3"], "--tile"),
    (["encode", "a.jpg", "--device", "gpu0"], "not a device"),
    (["encode", "a.jpg", "b.jpg", "-o", "file.txt"], "must be a folder"),
])
def test_usage_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], needle: str) -> None:
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "a.jpg")
    photo(tmp_path / "b.jpg")
    (tmp_path / "file.txt").write_text("x")
    before = files_in(tmp_path)
    assert_one_line_error(run(*args), 2, needle)
    assert files_in(tmp_path) == before


def test_info(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.jpg", 30, 20)
    run("encode", tmp_path / "a.jpg", "--weights", weights)
    result = run("info", tmp_path / "a.gray.png")
    assert result.exit_code == 0 and TINY_NAME in result.stdout and "30x20" in result.stdout
    result, report = run_json("info", tmp_path / "a.gray.png")
    doc = report["results"][0]
    sha = doc["invgray"]["sha256"]
    assert doc["width"] == 30 and doc["height"] == 20 and doc["mode"] == "L"
    assert doc["invgray"]["model"] == TINY_NAME and doc["invgray"]["format"] == 3 and len(sha) >= 8
    assert doc["invgray"]["version"]
    assert doc["decode_path"] == "refuse" and "does not ship" in doc["decode_rule"]  # as decode without --weights
    result, report = run_json("info", tmp_path / "a.jpg", tmp_path / "a.gray.png")  # several files, one record each
    assert result.exit_code == 0 and [r["input"] for r in report["results"]] == [str(tmp_path / "a.jpg"),
                                                                                  str(tmp_path / "a.gray.png")]
    assert report["results"][0]["invgray"] is None and report["name"] == "invgray-info"
    assert "no invgray chunk" in run("info", tmp_path / "a.jpg").stdout
    result = run("info", "-", stdin=(tmp_path / "a.gray.png").read_bytes())
    assert result.exit_code == 0 and TINY_NAME in result.stdout


def test_models_empty_and_registered(monkeypatch: pytest.MonkeyPatch, registered: Path) -> None:
    result, doc = run_json("models")
    first = doc["results"]["entries"][0]
    assert result.exit_code == 0 and first["name"] == TINY_NAME and first["default"] is True
    assert first["role"] == "codec" and first["bytes"] == registered.stat().st_size
    table = run("models").stdout
    assert TINY_NAME in table and first["sha256"][:12] in table
    from invgray_cli.models import zoo

    monkeypatch.setattr(zoo, "ZOO", [])
    result = run("models")
    assert result.exit_code == 0 and "no shipped weights" in result.stdout
    assert run_json("models")[1]["results"]["entries"] == []


@pytest.mark.parametrize("args", [["--help"], ["-h"], []])
def test_help_lists_every_command(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0 and result.stdout.startswith("Usage: invgray")
    for name in ("encode", "decode", "info", "models", "eval", "bench", "train"):
        assert name in result.stdout


def test_absent_lazy_command_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli_module.COMMANDS, "ghost", ("invgray_cli.no_such_module", "ghost_command"))
    assert "ghost" not in run("--help").stdout
    assert_one_line_error(run("ghost"), 2, "No such command")


def test_version_does_not_import_torch() -> None:
    code = ("import sys\n"
            "import invgray_cli.cli.app as c\n"
            "try:\n    c.cli.main(['--version'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "c.cli.main(['--help'], standalone_mode=False)\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    out = python_alone(code)
    assert "invgray 0." in out and "encode" in out
    done = subprocess.run([sys.executable, "-m", "invgray_cli", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("invgray ")


def test_unexpected_error_is_one_line_unless_debug(tmp_path: Path, weights: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    photo(tmp_path / "a.jpg")

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Codec, "run_encoder", broken)
    result = run("encode", tmp_path / "a.jpg", "--weights", weights)
    assert_one_line_error(result, 1, "RuntimeError: boom", "--debug")
    result = run("--debug", "encode", tmp_path / "a.jpg", "--weights", weights)
    assert result.exit_code == 1 and "Traceback" in result.stderr
    assert files_in(tmp_path) == {"a.jpg", "w/tiny.safetensors"}


def test_encode_then_decode_the_same_folder(tmp_path: Path, weights: Path) -> None:
    """Outputs beside the inputs: decode takes only the grays, a second encode takes only the photos."""
    photo(tmp_path / "in" / "a.jpg")
    photo(tmp_path / "in" / "sub" / "b.png")
    assert run("encode", tmp_path / "in", "--weights", weights).exit_code == 0
    result, doc = run_json("decode", tmp_path / "in", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert doc["results"]["counts"] == {"ok": 2, "skipped": 2, "failed": 0}  # the photos, named in one note
    assert result.stderr.count("a colour image, not an invgray gray") == 1
    assert sorted(Path(f["input"]).name for f in doc["results"]["files"] if f["status"] == "skipped") == ["a.jpg", "b.png"]
    assert files_in(tmp_path / "in") == {"a.jpg", "a.gray.png", "a.color.png",
                                         "sub/b.png", "sub/b.gray.png", "sub/b.color.png"}
    result, doc = run_json("encode", tmp_path / "in", "--skip-existing", "--weights", weights)
    assert result.exit_code == 0 and [f["input"] for f in doc["results"]["files"] if f["note"] == "its output exists"] == [
        str(tmp_path / "in" / "a.jpg"), str(tmp_path / "in" / "sub" / "b.png")]
    assert "an invgray output" in result.stderr


def test_cuda_without_a_gpu(tmp_path: Path, weights: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    photo(tmp_path / "a.jpg")
    assert_one_line_error(run("encode", tmp_path / "a.jpg", "--device", "cuda", "--weights", weights), 1,
                          "no CUDA", "--device cpu")
    assert files_in(tmp_path) == {"a.jpg", "w/tiny.safetensors"}

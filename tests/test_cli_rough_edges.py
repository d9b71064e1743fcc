"""The new user's list (issue 10): each rough edge, reproduced and held fixed."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, files_in, photo, python_alone, run


def test_several_inputs_with_a_file_name_for_o_is_refused(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.jpg")
    photo(tmp_path / "b.jpg")
    result = run("encode", tmp_path / "a.jpg", tmp_path / "b.jpg", "-o", tmp_path / "out.png", "--weights", weights)
    assert_one_line_error(result, 2, "looks like a file name", "folder")
    assert not (tmp_path / "out.png").exists()


def test_o_naming_the_input_folder_writes_beside_the_inputs(tmp_path: Path, weights: Path) -> None:
    photos = tmp_path / "photos"
    photo(photos / "a.jpg")
    photo(photos / "sub" / "b.jpg")
    result = run("encode", photos, "-o", photos, "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert files_in(photos) == {"a.jpg", "a.gray.png", "sub/b.jpg", "sub/b.gray.png"}


def test_files_inside_the_output_folder_are_passed_over_with_a_note(tmp_path: Path, weights: Path) -> None:
    photos = tmp_path / "photos"
    photo(photos / "a.jpg")
    photo(photos / "grays" / "old.jpg")  # a photo the user keeps in what is now the output folder
    result = run("encode", photos, "-o", photos / "grays", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    (note,) = [line for line in result.stderr.splitlines() if "note: skipped" in line]
    assert "inside the output folder" in note and "old.jpg" in note
    assert files_in(photos / "grays") == {"old.jpg", "a.gray.png"}


@pytest.mark.parametrize("command", ["encode", "decode", "eval"])
def test_a_bad_device_is_the_same_usage_error_everywhere(tmp_path: Path, command: str) -> None:
    photo(tmp_path / "a.png")
    assert_one_line_error(run(command, tmp_path / "a.png", "--device", "tpu"), 2, "'tpu' is not a device")


@pytest.mark.parametrize("command", ["encode", "decode", "eval"])
def test_a_tiny_tile_is_refused_rather_than_run_slowly(tmp_path: Path, command: str) -> None:
    photo(tmp_path / "a.png")
    assert_one_line_error(run(command, tmp_path / "a.png", "--tile", 1), 2, "too small", "at least 32")


def test_smallest_cli_tile_is_the_tilers() -> None:
    from invgray_cli.cli.options import SMALLEST_TILE
    from invgray_cli.codec.tiling import MIN_TILE

    assert SMALLEST_TILE == MIN_TILE


def test_a_read_only_file_system_is_the_users_error_not_a_bug(tmp_path: Path, weights: Path, monkeypatch) -> None:
    import errno

    from invgray_cli.io import filesystem

    real_open = filesystem.os.open

    def read_only(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if flags & filesystem.os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(filesystem.os, "open", read_only)
    photo(tmp_path / "a.jpg")
    result = run("encode", tmp_path / "a.jpg", "-o", tmp_path / "a.png", "--weights", weights)
    line = assert_one_line_error(result, 1, "a.png", "cannot write", "Read-only file system")
    assert "a bug in invgray" not in line


def test_a_full_disk_is_the_users_error_not_a_bug(tmp_path: Path, weights: Path, monkeypatch) -> None:
    import errno

    from invgray_cli.io import filesystem

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(filesystem.os, "fsync", full)
    photo(tmp_path / "a.jpg")
    result = run("encode", tmp_path / "a.jpg", "-o", tmp_path / "a.png", "--weights", weights)
    line = assert_one_line_error(result, 1, "a.png", "cannot write", "No space left on device")
    assert "a bug in invgray" not in line
    assert not list(tmp_path.rglob("*.part"))


def test_sigterm_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A real process, killed while it writes: the .part file goes with it."""
    script = tmp_path / "slow_write.py"
    script.write_text(
        "import sys, time\n"
        "from invgray_cli.cli.app import exit_on_sigterm\n"
        "from invgray_cli.io.filesystem import atomic_write\n"
        "exit_on_sigterm()\n"
        "def write(handle):\n"
        "    handle.write(b'x')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(30)\n"
        f"atomic_write({str(tmp_path / 'out.png')!r}, write)\n")
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow_write.py"]


def test_chunk_errors_name_the_gray(tmp_path: Path, weights: Path) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("invgray", "{not json")
    Image.new("L", (8, 8), 128).save(tmp_path / "x.gray.png", pnginfo=info)
    result = run("decode", tmp_path / "x.gray.png", "-o", tmp_path / "x.png")
    assert_one_line_error(result, 1, "x.gray.png", "chunk", "damaged")


def test_an_animation_says_only_its_first_frame_is_encoded(tmp_path: Path, weights: Path) -> None:
    from PIL import Image

    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    result = run("encode", tmp_path / "anim.gif", "-o", tmp_path / "g.png", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert "anim.gif: an animation of 3 frames: only the first is encoded" in result.stderr
    photo(tmp_path / "still.png")
    still = run("encode", tmp_path / "still.png", "-o", tmp_path / "s.png", "--weights", weights)
    assert "warning" not in still.stderr


def test_rgba_decoded_to_jpeg_says_the_alpha_is_flattened(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.png", mode="RGBA")
    assert run("encode", tmp_path / "a.png", "-o", tmp_path / "a.gray.png", "--weights", weights).exit_code == 0
    result = run("decode", tmp_path / "a.gray.png", "-o", tmp_path / "a.jpg", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert "JPEG has no transparency" in result.stderr and "flattened onto white" in result.stderr
    kept = run("decode", tmp_path / "a.gray.png", "-o", tmp_path / "b.png", "--weights", weights)
    assert "transparency" not in kept.stderr


def test_models_reads_at_80_columns(monkeypatch, registered: Path) -> None:  # noqa: F811
    monkeypatch.setenv("COLUMNS", "80")
    result = run("models")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "shipped weights in" not in line]  # a path: any length
    assert lines and max(len(line) for line in lines) <= 80, result.stdout
    assert "(default)" in result.stdout


def test_the_cli_keeps_freed_memory_for_the_next_net_call() -> None:
    """A process-wide allocator choice, so it is checked in a process of its own."""
    import platform

    out = python_alone(
        "from invgray_cli.cli import app\n"
        "calls = []\n"
        "app.keep_freed_memory = lambda: calls.append(1) or True\n"
        "app.cli.main = lambda **kwargs: None\n"
        "app.main()\n"
        "print(len(calls))\n"
        "import importlib; importlib.reload(app)\n"
        "print(app.keep_freed_memory())\n")
    called, took_effect = out.split()
    assert called == "1"
    libc, version = platform.libc_ver()
    glibc_taking_it = libc == "glibc" and tuple(map(int, version.split("."))) >= (2, 36)  # checked on 2.36
    if sys.platform.startswith("linux") and glibc_taking_it:
        assert took_effect == "True"
    elif not sys.platform.startswith("linux"):
        assert took_effect == "False"
    else:  # an older glibc caps the mmap threshold at 32 MB (then nothing is set); musl has no mallopt
        assert took_effect in ("True", "False")


def test_where_glibc_refuses_the_mmap_threshold_the_trim_threshold_is_left_alone(monkeypatch) -> None:
    """Setting the trim threshold alone would stop glibc raising its mmap threshold past 128 KB."""
    from invgray_cli.cli import app

    calls: list[tuple[int, int]] = []

    class OlderGlibc:
        @staticmethod
        def mallopt(parameter: int, value: int) -> int:
            calls.append((parameter, value))
            return 0 if value > 32 << 20 else 1

    monkeypatch.setattr(app.sys, "platform", "linux")
    monkeypatch.setattr(app.ctypes, "CDLL", lambda name: OlderGlibc())
    assert app.keep_freed_memory() is False
    assert calls == [(app._M_MMAP_THRESHOLD, app._KEEP_BYTES)]

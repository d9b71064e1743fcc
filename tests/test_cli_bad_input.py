"""Every bad input through the command line: one-line message, the right exit code, nothing left behind."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import (
    assert_one_line_error,
    ship_only,
    files_in,
    open_png,
    photo,
    run,
    run_json,
)
from invgray_cli.io.chunk import CHUNK_KEY


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A PNG whose header claims side x side pixels (a few bytes on disk)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b""))
                     + png_chunk(b"IEND", b""))
    return path


def jpeg_bytes(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def make_bad(kind: str, folder: Path) -> Path:
    """An input of the named bad kind inside ``folder``."""
    path = folder / {"truncated-jpeg": "t.jpg", "text-as-png": "notes.png", "directory": "dir.png"}.get(kind, f"{kind}.png")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated-png":
        path.write_bytes(photo(folder / "full.png", 40, 30).read_bytes()[:100])
        (folder / "full.png").unlink()
    elif kind == "truncated-jpeg":
        path.write_bytes(jpeg_bytes()[:300])
    elif kind == "text-as-png":
        path.write_text("this is not a picture\n")
    elif kind == "directory":
        path.mkdir()
    return path


BAD_FILES = {
    "empty": "empty",
    "truncated-png": "truncated or corrupt",
    "truncated-jpeg": "truncated or corrupt",
    "text-as-png": "not an image",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["encode", "decode", "info"])
def test_bad_file(tmp_path: Path, weights: Path, kind: str, command: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    bad = make_bad(kind, folder)
    before = files_in(folder)
    extra = [] if command == "info" else ["--weights", weights]
    assert_one_line_error(run(command, bad, *extra), 1, bad.name, BAD_FILES[kind])
    assert files_in(folder) == before


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_bad_bytes_on_stdin(weights: Path, command: str) -> None:
    assert_one_line_error(run(command, "-", "--weights", weights, stdin=b""), 1, "<stdin>", "empty")
    assert_one_line_error(run(command, "-", "--weights", weights, stdin=b"hello"), 1, "<stdin>", "not an image")


def test_directory_where_a_file_is_expected(tmp_path: Path, weights: Path) -> None:
    folder = make_bad("directory", tmp_path)
    assert_one_line_error(run("info", folder), 1, "is a directory")
    photo(tmp_path / "a.jpg")
    assert_one_line_error(run("encode", tmp_path / "a.jpg", "--weights", tmp_path), 1, "not a file")
    assert files_in(tmp_path) == {"a.jpg", "w/tiny.safetensors"}


def test_empty_folder_is_an_error(tmp_path: Path, weights: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    assert_one_line_error(run("encode", tmp_path / "empty", "--weights", weights), 1, "no images found")


@pytest.mark.parametrize("command", ["encode", "decode", "info"])
def test_missing_path(tmp_path: Path, weights: Path, command: str) -> None:
    extra = [] if command == "info" else ["--weights", weights]
    assert_one_line_error(run(command, tmp_path / "nope.jpg", *extra), 1, "nope.jpg", "no such file")
    assert files_in(tmp_path) == {"w/tiny.safetensors"}


def test_missing_path_among_good_ones(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.jpg")
    result, doc = run_json("encode", tmp_path / "a.jpg", tmp_path / "nope.jpg", str(tmp_path / "*.none"),
                           "-o", tmp_path / "out", "--weights", weights)
    assert result.exit_code == 1
    assert [f["status"] for f in doc["results"]["files"]] == ["ok", "failed", "failed"]  # in argument order
    assert files_in(tmp_path / "out") == {"a.gray.png"}


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_decompression_bomb_and_max_pixels(tmp_path: Path, weights: Path, command: str) -> None:
    bomb = bomb_png(tmp_path / "bomb.png")
    line = assert_one_line_error(run(command, bomb, "--weights", weights), 1, "bomb.png", "decompression-bomb",
                                 "--max-pixels 900000000")
    assert "30000x30000" in line
    assert files_in(tmp_path) == {"bomb.png", "w/tiny.safetensors"}
    photo(tmp_path / "small.png", 20, 20)
    assert_one_line_error(run("encode", tmp_path / "small.png", "--max-pixels", 100, "--weights", weights), 1,
                          "--max-pixels 400")
    assert run("encode", tmp_path / "small.png", "--max-pixels", 400, "--weights", weights).exit_code == 0


def test_info_of_a_bomb_reads_only_the_header(tmp_path: Path) -> None:
    result = run("info", bomb_png(tmp_path / "bomb.png"))
    assert result.exit_code == 0 and "30000x30000" in result.stdout


def test_decode_of_a_colour_photo(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "holiday.jpg", 40, 30)
    assert_one_line_error(run("decode", tmp_path / "holiday.jpg", "--weights", weights), 1,
                          "holiday.jpg", "colour image", "invgray encode")
    assert files_in(tmp_path) == {"holiday.jpg", "w/tiny.safetensors"}


def test_decode_of_unknown_format_version(tmp_path: Path, weights: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(CHUNK_KEY, '{"format":99,"model":"x.y","sha256":"00","version":"9.0"}')
    Image.new("L", (8, 8), 128).save(tmp_path / "future.png", pnginfo=info)
    assert_one_line_error(run("decode", tmp_path / "future.png", "--weights", weights), 1, "format 99", "upgrade")
    assert_one_line_error(run("info", tmp_path / "future.png"), 1, "format 99")
    assert files_in(tmp_path) == {"future.png", "w/tiny.safetensors"}


def test_decode_of_gray_from_an_unknown_model(tmp_path: Path, registered: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(CHUNK_KEY, '{"format":1,"model":"other.model","sha256":"00","version":"0.1.0"}')
    Image.new("L", (8, 8), 128).save(tmp_path / "g.png", pnginfo=info)
    assert_one_line_error(run("decode", tmp_path / "g.png"), 1, "other.model", "--weights")


def test_tampered_shipped_weights(tmp_path: Path, registered: Path) -> None:
    photo(tmp_path / "a.jpg")
    data = bytearray(registered.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor
    registered.write_bytes(bytes(data))
    line = assert_one_line_error(run("encode", tmp_path / "a.jpg"), 1, "sha256", "tampered")
    assert "restore" in line
    assert files_in(tmp_path) == {"a.jpg", "w/tiny.safetensors"}


def test_unreadable_weights_file(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.jpg")
    photo(tmp_path / "b.jpg")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"garbage")
    result, doc = run_json("encode", tmp_path / "a.jpg", tmp_path / "b.jpg", "--weights", broken)
    assert_one_line_error(result, 1, "broken.safetensors")  # said once, though both files failed
    assert [f["status"] for f in doc["results"]["files"]] == ["failed", "failed"]
    assert files_in(tmp_path) == {"a.jpg", "b.jpg", "broken.safetensors", "w/tiny.safetensors"}


def test_no_shipped_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ship_only(monkeypatch, None)
    photo(tmp_path / "a.jpg")
    assert_one_line_error(run("encode", tmp_path / "a.jpg"), 1, "no shipped weights", "--weights")
    assert files_in(tmp_path) == {"a.jpg"}


@pytest.mark.parametrize("size", [(1, 1), (1, 5000), (5000, 1), (3, 7)])
def test_tiny_and_thin_images(tmp_path: Path, weights: Path, size: tuple[int, int]) -> None:
    photo(tmp_path / "a.png", *size)
    assert run("encode", tmp_path / "a.png", "--weights", weights).exit_code == 0
    assert open_png(tmp_path / "a.gray.png").size == size
    assert run("decode", tmp_path / "a.gray.png", "--weights", weights).exit_code == 0
    assert open_png(tmp_path / "a.color.png").size == size


@pytest.mark.parametrize("mode", ["P", "CMYK", "I;16", "LA"])
def test_other_modes_are_converted(tmp_path: Path, weights: Path, mode: str) -> None:
    base = Image.open(photo(tmp_path / "base.png", 12, 10))
    converted = base.convert("L").convert("I;16") if mode == "I;16" else base.convert(mode)
    src = tmp_path / ("a.jpg" if mode == "CMYK" else "a.png")
    converted.save(src)
    assert run("encode", src, "--weights", weights).exit_code == 0
    gray = open_png(tmp_path / "a.gray.png")
    assert gray.size == (12, 10) and gray.mode == ("LA" if mode == "LA" else "L")


def test_exif_rotated_jpeg(tmp_path: Path, weights: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.open(photo(tmp_path / "base.png", 40, 20)).save(tmp_path / "r.jpg", exif=exif)
    assert run("encode", tmp_path / "r.jpg", "--weights", weights).exit_code == 0
    assert open_png(tmp_path / "r.gray.png").size == (20, 40)


def test_interrupted_write_leaves_nothing(tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo(tmp_path / "a.jpg")
    real_save = Image.Image.save

    def dying_save(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", dying_save)
    result = run("encode", tmp_path / "a.jpg", "--weights", weights)
    assert_one_line_error(result, 130, "interrupted")
    assert files_in(tmp_path) == {"a.jpg", "w/tiny.safetensors"}  # the temporary file is gone too

"""Issue 26's rough edges 4-7, held fixed: what encode does with invgray's own grays, grays as
lossless TIFF and WebP, skipped files summed up in one line, and the hints decode and colorize give."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import assert_one_line_error, files_in, photo, run, run_json
from invgray_cli.io.chunk import CHUNK_KEY
from invgray_cli.io.images import read_gray, read_header
from test_colorize import colorizer_weights  # noqa: F401  (a fixture)


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("invgray: note:")]


# ---------------------------------------------------------------- 4: encode given invgray's grays


def test_encode_of_a_folder_of_grays_names_what_it_skipped(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "photos" / "a.jpg")
    photo(tmp_path / "photos" / "b.png", seed=1)
    assert run("encode", tmp_path / "photos", "-o", tmp_path / "grays", "--weights", weights).exit_code == 0
    (tmp_path / "grays" / "b.gray.png").rename(tmp_path / "grays" / "renamed.png")  # known by its chunk
    result = run("encode", tmp_path / "grays", "--weights", weights)
    line = assert_one_line_error(result, 1, "no images found in", "skipped 2 files", "a.gray.png", "renamed.png",
                                 "`invgray decode` restores")
    assert "(.gray.png)" in line and "it carries invgray's chunk" in line
    assert files_in(tmp_path / "grays") == {"a.gray.png", "renamed.png"}


def test_encode_refuses_a_named_invgray_gray(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.jpg")
    assert run("encode", tmp_path / "a.jpg", "--weights", weights).exit_code == 0
    result = run("encode", tmp_path / "a.gray.png", "-o", tmp_path / "again.png", "--weights", weights)
    assert_one_line_error(result, 1, "a.gray.png: is an invgray gray", "invgray's chunk", "`invgray decode` restores",
                          "not encoded")
    assert "encoded 0 files, 1 failed" in result.stderr and not (tmp_path / "again.png").exists()
    # a gray that lost its chunk is still told by its name; a colour photo with that name is encoded
    photo(tmp_path / "plain.gray.png", mode="L")
    assert_one_line_error(run("encode", tmp_path / "plain.gray.png", "-o", tmp_path / "p.png", "--weights", weights),
                          1, "named like an invgray gray", "rename it")
    photo(tmp_path / "colour.gray.png")
    assert run("encode", tmp_path / "colour.gray.png", "-o", tmp_path / "c.png", "--weights", weights).exit_code == 0


# ---------------------------------------------------------------- 5: lossless TIFF and WebP grays


@pytest.mark.parametrize("suffix, fmt", [(".tif", "TIFF"), (".tiff", "TIFF"), (".webp", "WEBP")])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_a_gray_as_lossless_tiff_or_webp_is_the_png_gray_and_decodes_back(tmp_path: Path, weights: Path, suffix: str,
                                                                         fmt: str, mode: str) -> None:
    photo(tmp_path / "a.png", 40, 28, mode=mode)
    assert run("encode", tmp_path / "a.png", "-o", tmp_path / "a.gray.png", "--weights", weights).exit_code == 0
    result = run("encode", tmp_path / "a.png", "-o", tmp_path / f"a{suffix}", "--weights", weights)
    assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr
    header = read_header(tmp_path / f"a{suffix}")
    assert header.format == fmt and CHUNK_KEY in header.text  # the chunk is carried
    png, other = read_gray(tmp_path / "a.gray.png"), read_gray(tmp_path / f"a{suffix}")
    assert np.array_equal(png.gray, other.gray) and other.text == png.text  # lossless: the same gray
    assert (other.alpha is None) == (mode == "RGB") and (other.alpha is None or np.array_equal(other.alpha, png.alpha))
    decoded = run("decode", tmp_path / f"a{suffix}", "-o", tmp_path / "back.png", "--weights", weights)
    assert decoded.exit_code == 0 and "chunk" not in decoded.stderr, decoded.stderr
    assert run("decode", tmp_path / "a.gray.png", "-o", tmp_path / "from_png.png", "--weights", weights).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), np.asarray(Image.open(tmp_path / "from_png.png")))


def test_a_webp_gray_in_a_folder_is_decoded_not_taken_for_a_photo(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "grays").mkdir()
    assert run("encode", tmp_path / "in" / "a.png", "-o", tmp_path / "grays" / "a.webp", "--weights", weights).exit_code == 0
    result, doc = run_json("decode", tmp_path / "grays", "-o", tmp_path / "out", "--weights", weights)
    assert result.exit_code == 0 and doc["results"]["counts"]["ok"] == 1, result.stderr
    assert files_in(tmp_path / "out") == {"a.color.png"}


def test_info_reads_a_webp_gray_and_names_a_file_it_cannot_read(tmp_path: Path, weights: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    photo(tmp_path / "a.png")
    assert run("encode", tmp_path / "a.png", "-o", tmp_path / "a.webp", "--weights", weights).exit_code == 0
    damaged = PngInfo()
    damaged.add_text(CHUNK_KEY, "{not json")
    Image.new("L", (32, 32), 128).save(tmp_path / "d.png", pnginfo=damaged)
    result = run("info", tmp_path / "d.png", tmp_path / "a.webp")
    assert_one_line_error(result, 1, f"{tmp_path / 'd.png'}: ", "damaged")  # named; the other still described
    webp = result.stdout
    assert webp.startswith(f"{tmp_path / 'a.webp'}:") and "WEBP RGB" in webp
    # read as the gray it is (decode's path shown); the tiny test model is not shipped, so decode
    # would refuse it: said as such, not as --no-fallback
    assert "decode: refused [refuse:" in webp and "does not ship" in webp and "--no-fallback" not in webp


@pytest.mark.parametrize("name", ["g.bmp", "g.gif", "g"])
def test_other_gray_formats_are_refused_with_a_true_message(tmp_path: Path, weights: Path, name: str) -> None:
    photo(tmp_path / "a.png")
    line = assert_one_line_error(run("encode", tmp_path / "a.png", "-o", tmp_path / name, "--weights", weights), 2,
                                 ".png, .tif or .webp (lossless, carrying its chunk)", ".jpg")
    assert "destroy" not in line
    assert files_in(tmp_path) == {"a.png", "w/tiny.safetensors"}


def test_a_webp_too_large_for_the_format_is_refused(tmp_path: Path) -> None:
    from invgray_cli.errors import InvgrayError
    from invgray_cli.io.writing import write_gray_lossless

    with pytest.raises(InvgrayError, match="at most 16383 px a side"):
        write_gray_lossless(np.zeros((4, 16384), np.uint8), None, {}, tmp_path / "g.webp", "WEBP")
    assert not (tmp_path / "g.webp").exists()


# ---------------------------------------------------------------- 7: skips summed up; decode's and colorize's hints


def test_skip_existing_sums_the_skips_up_in_one_line(tmp_path: Path, weights: Path) -> None:
    for i in range(5):
        photo(tmp_path / "in" / f"p{i}.png", seed=i)
    assert run("encode", tmp_path / "in", "-o", tmp_path / "out", "--weights", weights).exit_code == 0
    result, doc = run_json("encode", tmp_path / "in", "-o", tmp_path / "out", "--skip-existing", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    (note,) = _notes(result.stderr)
    assert "skipped 5 files: its output exists — p0.png, p1.png, p2.png and 2 more; --json lists them all" in note
    skipped = [f for f in doc["results"]["files"] if f["status"] == "skipped"]
    assert [Path(f["input"]).name for f in skipped] == [f"p{i}.png" for i in range(5)]
    assert all(f["note"] == "its output exists" and f["output"] for f in skipped)
    assert "encoded 0 files, 5 skipped" in result.stderr


def test_decoding_a_folder_with_photos_sums_them_up_in_one_line(tmp_path: Path, weights: Path) -> None:
    for i in range(4):
        photo(tmp_path / "in" / f"p{i}.jpg", seed=i)
    assert run("encode", tmp_path / "in" / "p0.jpg", "--weights", weights).exit_code == 0
    (tmp_path / "in" / "readme.txt").write_text("not an image")
    result, doc = run_json("decode", tmp_path / "in", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    (note,) = _notes(result.stderr)
    assert note == ("invgray: note: skipped 5 files: a colour image, not an invgray gray — p0.jpg, p1.jpg, p2.jpg "
                    "and 1 more; not an image file name — readme.txt; --json lists them all")
    assert doc["results"]["counts"] == {"ok": 1, "skipped": 5, "failed": 0}
    notes = {Path(f["input"]).name: f["note"] for f in doc["results"]["files"] if f["status"] == "skipped"}
    assert notes == {**{f"p{i}.jpg": "a colour image, not an invgray gray" for i in range(4)},
                     "readme.txt": "not an image file name"}
    assert not _notes(run("decode", tmp_path / "in", "--weights", weights, "--force", "-q").stderr)


def test_decode_help_says_crops_need_no_option() -> None:
    text = " ".join(run("decode", "--help").stdout.split())
    assert "found by its sync pattern, with no option (--find-frame is for old grays without one)" in text
    assert "--find-frame Only for grays made before invgray 0.2, which carry no sync pattern" in text
    assert "--find-frame decodes a gray with no chunk that was cropped" not in text


def test_colorize_says_what_it_is_for(tmp_path: Path, colorizer_weights: Path) -> None:  # noqa: F811
    from PIL.PngImagePlugin import PngInfo

    from invgray_cli.io.chunk import make_chunk

    colour = photo(tmp_path / "colour.png", 32, 24)
    photo(tmp_path / "plain.png", 32, 24, mode="L")
    info = PngInfo()
    for key, value in make_chunk("tiny.test", "0" * 64).items():
        info.add_text(key, value)
    Image.open(tmp_path / "plain.png").save(tmp_path / "coded.png", pnginfo=info)  # a gray as encode writes it
    result, doc = run_json("colorize", colour, tmp_path / "coded.png", tmp_path / "plain.png", "-o", tmp_path / "out",
                           "--colorizer-weights", colorizer_weights, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    warnings = {Path(f["input"]).name: f["warning"] for f in doc["results"]["files"]}
    assert "colorize colourises grays" in warnings["colour.png"]
    assert "`invgray decode` restores its hidden colour" in warnings["coded.png"]
    assert warnings["plain.png"] is None
    assert "colour.png: a colour photo: colorize colourises grays" in result.stderr

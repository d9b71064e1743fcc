"""Image reading/writing policy and every bad input of the io layer."""
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from invgray_cli.errors import InvgrayError
from invgray_cli.io.filesystem import atomic_write
from invgray_cli.io.images import DEFAULT_MAX_PIXELS, read_color, read_gray
from invgray_cli.io.writing import flatten_on_white, format_for_path, write_color, write_gray_png


def _rgb(height=12, width=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(image: Image.Image, path: Path, **params) -> Path:
    image.save(path, **params)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def forged_png(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` with no pixel data: cheap to build and to reject."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".part")]


# ---- bad inputs ---------------------------------------------------------------------------------


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(InvgrayError, match=r"e\.png: file is empty"):
        read_color(tmp_path / "e.png")
    with pytest.raises(InvgrayError, match="empty"):
        read_color(b"")


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated(tmp_path, fmt, suffix):
    buffer = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buffer, fmt)
    path = tmp_path / f"t.{suffix}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InvgrayError, match=r"t\.\w+: truncated or corrupt image"):
        read_color(path)


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("just some text\n")
    with pytest.raises(InvgrayError, match=r"notes\.png: not an image Pillow can read"):
        read_color(tmp_path / "notes.png")


def test_directory_and_missing(tmp_path):
    with pytest.raises(InvgrayError, match="is a directory"):
        read_color(tmp_path)
    with pytest.raises(InvgrayError, match=r"missing\.jpg: no such file"):
        read_gray(tmp_path / "missing.jpg")


def test_decompression_bomb_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(forged_png(30000, 30000))
    with pytest.raises(InvgrayError, match=r"900 MP.*--max-pixels 900000000"):
        read_color(path)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS  # Pillow's global guard restored


def test_8k_header_is_under_the_default_limit(tmp_path):
    path = tmp_path / "8k.png"
    path.write_bytes(forged_png(7680, 4320))
    with pytest.raises(InvgrayError, match="truncated or corrupt"):  # passes the guard, then has no pixels
        read_color(path)


def test_max_pixels_argument(tmp_path):
    path = _save(Image.fromarray(_rgb(100, 100)), tmp_path / "a.png")
    with pytest.raises(InvgrayError, match="--max-pixels 10000"):
        read_color(path, max_pixels=9999)
    assert read_color(path, max_pixels=10000).rgb.shape == (100, 100, 3)
    assert read_color(path, max_pixels=None).rgb.shape == (100, 100, 3)


def test_float_images_refused(tmp_path):
    path = _save(Image.fromarray(np.ones((4, 4), np.float32)), tmp_path / "f.tiff")
    with pytest.raises(InvgrayError, match="float"):
        read_color(path)


# ---- conversion policy --------------------------------------------------------------------------


def test_rgb_png_exact(tmp_path):
    rgb = _rgb()
    image = read_color(_save(Image.fromarray(rgb), tmp_path / "a.png"))
    assert np.array_equal(image.rgb, rgb) and image.alpha is None and image.rgb.dtype == np.uint8


def test_rgba_keeps_alpha(tmp_path):
    rgba = np.dstack([_rgb(), np.arange(120, dtype=np.uint8).reshape(12, 10)])
    image = read_color(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert np.array_equal(image.rgb, rgba[:, :, :3]) and np.array_equal(image.alpha, rgba[:, :, 3])


def test_palette_with_and_without_transparency(tmp_path):
    palette_image = Image.fromarray(_rgb()).quantize(16)
    plain = read_color(_save(palette_image, tmp_path / "p.png"))
    assert plain.alpha is None and np.array_equal(plain.rgb, np.asarray(palette_image.convert("RGB")))
    transparent = read_color(_save(palette_image, tmp_path / "t.png", transparency=0))
    assert transparent.alpha is not None and set(np.unique(transparent.alpha)) <= {0, 255}


def test_cmyk_jpeg(tmp_path):
    image = read_color(_save(Image.new("CMYK", (9, 7), (0, 255, 255, 0)), tmp_path / "c.jpg"))
    assert image.rgb.shape == (7, 9, 3)
    assert np.abs(image.rgb.astype(int) - [255, 0, 0]).max() <= 8  # red


def test_exif_rotation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    base = np.zeros((4, 8, 3), np.uint8)
    base[:, :4] = 255  # left half white
    image = read_color(_save(Image.fromarray(base), tmp_path / "r.jpg", exif=exif, quality=100))
    assert image.rgb.shape == (8, 4, 3)
    assert image.rgb[:3].mean() > 200 and image.rgb[-3:].mean() < 50  # left half became the top


def test_sixteen_bit_png_scaled(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 1000, 65280]], np.uint16)
    image = read_color(_save(Image.fromarray(values), tmp_path / "d.png"))
    expected = np.array([[0, 1, 128], [255, 4, 254]], np.uint8)
    assert np.array_equal(image.rgb[:, :, 0], expected) and np.array_equal(image.rgb[:, :, 2], expected)
    assert np.array_equal(read_gray(tmp_path / "d.png").gray, expected)


def test_gray_input_to_encode_becomes_rgb(tmp_path):
    gray = _rgb()[:, :, 0]
    image = read_color(_save(Image.fromarray(gray, "L"), tmp_path / "g.png"))
    assert all(np.array_equal(image.rgb[:, :, c], gray) for c in range(3))
    la = read_color(_save(Image.fromarray(np.dstack([gray, gray]), "LA"), tmp_path / "la.png"))
    assert np.array_equal(la.alpha, gray)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5000), (5000, 1)])
def test_extreme_shapes(tmp_path, shape):
    rgb = np.full((*shape, 3), 7, np.uint8)
    assert read_color(_save(Image.fromarray(rgb), tmp_path / "x.png")).rgb.shape == (*shape, 3)


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF", "BMP"])
def test_other_formats(tmp_path, fmt):
    rgb = _rgb()
    path = _save(Image.fromarray(rgb), tmp_path / f"x.{fmt.lower()}", format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert np.array_equal(read_color(path).rgb, rgb)


def test_bytes_and_stream_sources(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_rgb()).save(buffer, "PNG")
    assert read_color(buffer.getvalue()).rgb.shape == (12, 10, 3)
    buffer.seek(0)
    assert read_color(buffer).rgb.shape == (12, 10, 3)


# ---- reading grays ------------------------------------------------------------------------------


def test_read_gray_refuses_colour_photo(tmp_path):
    with pytest.raises(InvgrayError, match=r"photo\.jpg: is a colour image, not an invgray gray"):
        read_gray(_save(Image.fromarray(_rgb(32, 32)), tmp_path / "photo.jpg"))


def test_read_gray_accepts_gray_saved_as_rgb(tmp_path):
    gray = _rgb(32, 32)[:, :, 0]
    image = read_gray(_save(Image.fromarray(gray).convert("RGB"), tmp_path / "g.jpg", quality=95))
    assert image.gray.shape == (32, 32) and np.abs(image.gray.astype(int) - gray).mean() < 6


def test_gray_png_round_trip_with_text_and_alpha(tmp_path):
    gray, alpha = _rgb()[:, :, 0], _rgb(seed=1)[:, :, 1]
    write_gray_png(gray, alpha, {"invgray": '{"format":1}', "note": "ünïcode"}, tmp_path / "g.png")
    opened = Image.open(tmp_path / "g.png")
    assert opened.mode == "LA" and opened.format == "PNG"
    back = read_gray(tmp_path / "g.png")
    assert np.array_equal(back.gray, gray) and np.array_equal(back.alpha, alpha)
    assert back.text == {"invgray": '{"format":1}', "note": "ünïcode"}
    write_gray_png(gray, None, {}, tmp_path / "l.png")
    assert Image.open(tmp_path / "l.png").mode == "L" and read_gray(tmp_path / "l.png").alpha is None
    _no_leftovers(tmp_path)


# ---- writing ------------------------------------------------------------------------------------


def test_write_color_formats_and_alpha_policy(tmp_path):
    rgb, alpha = _rgb(), np.zeros((12, 10), np.uint8)
    write_color(rgb, alpha, tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").mode == "RGBA"
    write_color(rgb, alpha, tmp_path / "c.jpg")  # transparent everywhere: flattened onto white
    jpeg = Image.open(tmp_path / "c.jpg")
    assert jpeg.format == "JPEG" and jpeg.mode == "RGB" and np.asarray(jpeg).min() >= 240
    write_color(rgb, None, tmp_path / "c.webp")
    assert Image.open(tmp_path / "c.webp").format == "WEBP"
    stream = io.BytesIO()
    write_color(rgb, None, stream)
    assert stream.getvalue().startswith(b"\x89PNG")
    _no_leftovers(tmp_path)


def test_flatten_on_white():
    rgb = np.array([[[0, 0, 0], [200, 100, 0]]], np.uint8)
    out = flatten_on_white(rgb, np.array([[0, 255]], np.uint8))
    assert out.tolist() == [[[255, 255, 255], [200, 100, 0]]]


def test_unknown_extension(tmp_path):
    with pytest.raises(InvgrayError, match=r"cannot tell the image format from '\.xyz'"):
        write_color(_rgb(), None, tmp_path / "c.xyz")
    assert format_for_path("a.JPEG") == "JPEG" and format_for_path("b.tif") == "TIFF"
    assert not list(tmp_path.iterdir())


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "out.png"

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(dest, fail)
    assert not list(tmp_path.iterdir())
    dest.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(dest, lambda h: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert dest.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.png"]
    atomic_write(dest, lambda h: h.write(b"new"))
    assert dest.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # like an ordinary new file, not 0600


def test_atomic_write_missing_folder(tmp_path):
    with pytest.raises(InvgrayError, match="output folder .*missing.* does not exist"):
        write_gray_png(np.zeros((2, 2), np.uint8), None, {}, tmp_path / "missing" / "g.png")


def test_animation_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    image = read_color(tmp_path / "a.gif")
    assert image.rgb.shape == (4, 6, 3) and image.rgb[0, 0, 0] > 200 and image.rgb[0, 0, 2] < 50


def test_unconvertible_mode_refused(tmp_path, monkeypatch):
    path = _save(Image.new("CMYK", (4, 4)), tmp_path / "c.tiff")

    def refuse(self, mode=None, *args, **kwargs):
        raise ValueError(f"conversion from {self.mode} to {mode} not supported")

    monkeypatch.setattr(Image.Image, "convert", refuse)
    with pytest.raises(InvgrayError, match=r"c\.tiff: images in colour mode CMYK are not supported"):
        read_color(path)


def test_thirty_two_bit_integer_clipped_to_sixteen(tmp_path):
    values = np.array([[-5, 0, 65535, 70000]], np.int32)
    image = read_color(_save(Image.fromarray(values, "I"), tmp_path / "i.tiff"))
    assert image.rgb[:, :, 0].tolist() == [[0, 0, 255, 255]]


def test_limit_message_for_small_limits(tmp_path):
    path = _save(Image.fromarray(_rgb(10, 10)), tmp_path / "a.png")
    with pytest.raises(InvgrayError, match=r"10x10 \(100 pixels\) is over the 50 pixels decompression-bomb limit"):
        read_color(path, max_pixels=50)


def test_read_header(tmp_path):
    from invgray_cli.io.images import read_header

    write_gray_png(np.zeros((3, 5), np.uint8), None, {"invgray": "{}"}, tmp_path / "g.png")
    header = read_header(tmp_path / "g.png")
    assert (header.width, header.height, header.mode, header.format) == (5, 3, "L", "PNG")
    assert header.text == {"invgray": "{}"}
    (tmp_path / "bomb.png").write_bytes(forged_png(30000, 30000))
    with pytest.raises(InvgrayError, match="truncated or corrupt"):  # no limit applies; it has no pixel data
        read_header(tmp_path / "bomb.png")
    (tmp_path / "t.png").write_text("text")
    with pytest.raises(InvgrayError, match="not an image"):
        read_header(tmp_path / "t.png")
    buffer = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buffer, "PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:-30])
    with pytest.raises(InvgrayError, match="truncated or corrupt"):
        read_header(tmp_path / "cut.png")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "GIF"])
def test_damaged_files_give_invgray_errors_only(fmt):
    """Random truncations and byte flips: either a readable image or a one-line InvgrayError."""
    buffer = io.BytesIO()
    Image.fromarray(_rgb(24, 24)).save(buffer, fmt)
    data = buffer.getvalue()
    rng = np.random.default_rng(1)
    for trial in range(40):
        damaged = bytearray(data[: rng.integers(1, len(data))] if trial % 2 else data)
        for position in rng.integers(0, len(damaged), size=3):
            damaged[position] = rng.integers(0, 256)
        for reader in (read_color, read_gray):
            try:
                reader(bytes(damaged))
            except InvgrayError as exc:
                assert "\n" not in str(exc)


def test_pngs_are_written_at_the_stated_zlib_level():
    """Colour and gray PNGs alike use PNG_COMPRESS_LEVEL (Pillow's default 6 took 2-3x as long)."""
    from invgray_cli.io import writing

    rng = np.random.default_rng(0)
    rgb = (np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3) + rng.normal(0, 3, (48, 64, 3))).clip(0, 255).astype(np.uint8)
    written, gray_written = io.BytesIO(), io.BytesIO()
    writing.write_color(rgb, None, written)
    writing.write_gray_png(rgb[..., 0], None, {}, gray_written)
    for image, data in ((Image.fromarray(rgb), written), (Image.fromarray(rgb[..., 0]), gray_written)):
        at_level, at_default = io.BytesIO(), io.BytesIO()
        image.save(at_level, "PNG", compress_level=writing.PNG_COMPRESS_LEVEL)
        image.save(at_default, "PNG")
        assert data.getvalue() == at_level.getvalue() != at_default.getvalue()

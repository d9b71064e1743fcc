"""Shared helpers for the command-line tests: synthetic images, a runner, output checks."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result
from PIL import Image

from invgray_cli.cli.app import cli


def photo(path: Path, width: int = 24, height: int = 18, mode: str = "RGB", seed: int = 0) -> Path:
    """A small random image in ``mode`` (RGB, RGBA, L) saved to ``path`` (format from the extension)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode).save(path)
    return path


def run(*args: object, stdin: bytes | None = None) -> Result:
    """Invoke ``invgray ARGS`` in-process; stdout and stderr stay apart."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin)


def run_json(*args: object) -> tuple[Result, dict]:
    result = run(*args, "--json")
    return result, json.loads(result.stdout)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("invgray: error:")]


def assert_one_line_error(result: Result, code: int, *needles: str) -> str:
    """Exit ``code``, exactly one ``invgray: error:`` line holding every needle, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def python_alone(code: str, timeout: float = 120) -> str:
    """The standard output of ``code`` run by a Python process of its own (for what a process
    decides once: its imports, its allocator), which must exit 0."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def files_in(folder: Path) -> set[str]:
    """Every file below ``folder``, hidden ones (temporary .part files) included."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def open_png(data: bytes | Path) -> Image.Image:
    image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    image.load()
    return image


TINY_NAME = "tiny.test"  # the name the conftest fixtures register the tiny model under


def codec_entry(path: Path, name: str = TINY_NAME, **facts: object):
    """A zoo entry for the codec weights file at ``path``, as the file is named (``facts``: other
    fields, e.g. ``gray_floor``)."""
    from dataclasses import replace

    from invgray_cli.models.zoo import make_entry

    return replace(make_entry(path, name, "tiny random test model", "MIT"), file=path.name, **facts)


def ship_only(monkeypatch, folder: Path | None, *entries) -> None:
    """Make ``entries`` the whole zoo (its first codec model the default; none: nothing ships, not
    even a colouriser) and ``folder``, where their files are, the weights folder."""
    from invgray_cli.models import zoo

    if folder is not None:
        monkeypatch.setenv(zoo.WEIGHTS_DIR_ENV, str(folder))
    monkeypatch.setattr(zoo, "ZOO", list(entries))


def ship_companion(monkeypatch, path: Path, role, serves: str = TINY_NAME, **facts: object) -> None:
    """Add the file at ``path`` (in the weights folder) to the zoo as the ``role`` (a zoo.Role) of the
    codec model called ``serves``."""
    from invgray_cli.models import zoo
    from invgray_cli.models.weights import load_weights

    loaded = load_weights(path, role.kind)
    entry = zoo.WeightsEntry(name=f"{role.key}.test", role=role, file=path.name, sha256=loaded.sha256,
                             config=loaded.net.config.to_dict(), card="", description="tiny test companion",
                             licence="MIT", serves=serves, **facts)
    monkeypatch.setattr(zoo, "ZOO", [*zoo.ZOO, entry])


def restore_array(codec, gray, has_chunk: bool = False, fallback: bool = True, search_frame: bool = False):
    """The decode decision on a bare uint8 gray, as read from a file with (``has_chunk``) or
    without the codec's chunk."""
    from invgray_cli.codec.decode import DecodeOptions, restore
    from invgray_cli.io.images import GrayImage

    from invgray_cli.io.chunk import make_chunk

    text = make_chunk(codec.info.name, codec.info.sha256 or "0" * 16) if has_chunk else {}
    return restore(codec, GrayImage(gray, None, text), DecodeOptions(fallback, search_frame))


def decode_batch(codec, grays):
    """Bare uint8 grays decoded together (same-size ones in one batch), as arrays."""
    from invgray_cli.codec.decode import decode_grays
    from invgray_cli.io.images import GrayImage

    return [restored.rgb for restored in decode_grays(codec, [GrayImage(gray, None) for gray in grays])]


def encode_batch(codec, photos):
    """uint8 photos encoded together, their grays as arrays."""
    from invgray_cli.codec.encode import encode_photos

    return [encoded.gray for encoded in encode_photos(codec, photos)]

"""Shared helpers for the command-line tests: synthetic images, a runner, output checks."""
from __future__ import annotations

import io
import json
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


def files_in(folder: Path) -> set[str]:
    """Every file below ``folder``, hidden ones (temporary .part files) included."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def open_png(data: bytes | Path) -> Image.Image:
    image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    image.load()
    return image


TINY_NAME = "tiny.test"  # the name the conftest fixtures register the tiny model under

"""Stage 1 (io): which files a run reads. Command-line inputs (files, folders, quoted globs, ``-``)
expanded into the files to process, with the files passed over on purpose and why.

Nothing here touches an image's pixels; where each file's output goes is ``paths.py``.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

STDIO = "-"
# Extensions Pillow reads out of the box; files met inside folders or globs with any other are skipped.
IMAGE_SUFFIXES = frozenset({
    ".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".tif", ".tiff", ".bmp", ".dib", ".gif",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k", ".jpx", ".pcx", ".sgi", ".qoi",
})
GRAY_SUFFIX = ".gray.png"
COLOR_SUFFIX = ".color.png"
COLORIZED_SUFFIX = ".colorized.png"  # `invgray colorize`
EVAL_SUFFIX = ".eval.png"  # `invgray eval --save-dir` strips
OWN_OUTPUTS = (GRAY_SUFFIX, COLOR_SUFFIX, COLORIZED_SUFFIX, EVAL_SUFFIX)  # invgray's files: never photos to measure or train on
OUTPUT_HINTS = {GRAY_SUFFIX: ", a gray that `invgray decode` restores"}  # said when a folder's file is skipped
Refuse = Callable[[Path], "str | None"]  # why a file found in a folder is not for this command


@dataclass(frozen=True)
class InputItem:
    """One file to process. ``source`` None is stdin; ``rel`` is its place below -o DIR."""

    source: Path | None
    rel: Path
    discovered: bool = False  # found inside a folder or glob rather than named by the user
    problem: str | None = None  # why this argument gave no file (missing path, empty glob)

    @property
    def label(self) -> str:
        return "<stdin>" if self.source is None else str(self.source)


@dataclass(frozen=True)
class Skipped:
    """A file found in a folder or glob and passed over on purpose, and why."""

    path: Path
    rel: Path
    reason: str


@dataclass(frozen=True)
class Expansion:
    items: list[InputItem]  # in argument order; arguments that gave nothing carry a ``problem``
    skipped: list[Skipped]  # files passed over on purpose, in the order met

    @property
    def notes(self) -> list[str]:
        """One line per file passed over."""
        return [f"skipped {s.path}: {s.reason}" for s in self.skipped]

    @property
    def missing(self) -> list[tuple[str, str]]:
        """(argument, why it gave no file) for missing paths and empty globs."""
        return [(str(i.source), i.problem) for i in self.items if i.problem is not None]


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def has_glob_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def glob_base(pattern: str) -> Path:
    """The leading part of a glob pattern without wildcards: matches are mirrored relative to it."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if has_glob_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _walk_folder(folder: Path) -> list[Path]:
    """Files below ``folder``, sorted, skipping hidden files and folders (``.git``, ``.DS_Store``)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    return found


def resolved(path: Path) -> Path:
    """``path`` made absolute with its links followed, as far as they lead: a symbolic link loop
    (an error of the input, reported when it is opened) stays as it is named."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python < 3.13's word for a link loop
        return Path(os.path.abspath(path))


def _within(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        resolved(path).relative_to(resolved(folder))
    except ValueError:
        return False
    return True


def expand_inputs(args: Sequence[str], skip_suffixes: Sequence[str] = (), exclude: Path | None = None,
                  refuse: Refuse | None = None) -> Expansion:
    """Turn command-line inputs (files, folders, quoted globs, ``-``) into the files to process.

    Files named by the user are always tried. Files found in folders or globs are kept only
    when their extension is an image's, are not invgray outputs this command should not
    take (``skip_suffixes``, e.g. ``.gray.png`` and ``.color.png`` for encode), are not
    refused by ``refuse`` (a reason, e.g. decode's "a colour image") and do not lie under ``exclude`` (the output folder).
    Each file is listed once, in argument order.
    """
    items: list[InputItem] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for arg in args:
        if arg == STDIO:
            items.append(InputItem(None, Path("stdin")))
            continue
        files, problem = _files_named_by(arg)
        if problem:
            items.append(InputItem(Path(arg), Path(arg), problem=problem))
        for path, rel, discovered in files:
            reason = _passed_over(path, skip_suffixes, exclude, refuse) if discovered else None
            if reason:
                skipped.append(Skipped(path, rel, reason))
                continue
            key = resolved(path)
            if key not in seen:
                seen.add(key)
                items.append(InputItem(path, rel, discovered))
    return Expansion(items, skipped)


def _files_named_by(arg: str) -> tuple[list[tuple[Path, Path, bool]], str | None]:
    """The files one argument names, each (path, its place below -o DIR, found in a folder or glob),
    and why it names none (a missing path, a glob that matches nothing)."""
    path = Path(arg)
    if path.is_dir():
        return _folder_files(path, path), None
    if path.exists() or os.path.lexists(path):
        return [(path, Path(path.name), False)], None
    if not has_glob_magic(arg):
        return [], f"{arg}: no such file or folder"
    matches = sorted(glob.glob(arg, recursive=True))
    base = glob_base(arg)
    files: list[tuple[Path, Path, bool]] = []
    for match in map(Path, matches):
        files += _folder_files(match, base) if match.is_dir() else [(match, match.relative_to(base), True)]
    return files, None if matches else f"no file matches the pattern {arg!r}"


def _folder_files(folder: Path, base: Path) -> list[tuple[Path, Path, bool]]:
    """The files below ``folder`` as ``_files_named_by`` gives them, placed relative to ``base``."""
    return [(path, path.relative_to(base), True) for path in _walk_folder(folder)]


def _passed_over(path: Path, skip_suffixes: Sequence[str], exclude: Path | None, refuse: Refuse | None) -> str | None:
    """Why a file found in a folder or glob is not taken (see :func:`expand_inputs`), or None."""
    if not is_image_name(path):
        return "not an image file name"
    own = next((x for x in skip_suffixes if path.name.lower().endswith(x)), None)
    if own:
        return f"an invgray output ({own}){OUTPUT_HINTS.get(own, '')}"
    if _within(path, exclude):
        return f"inside the output folder {exclude}"
    return refuse(path) if refuse is not None else None

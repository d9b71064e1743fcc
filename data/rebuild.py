#!/usr/bin/env python3
"""Rebuild the extra training photos (/work/photos/train_extra) from data/manifest.tsv.

Every photo in the manifest is a byte-identical copy of one file of a public GitHub repository,
at the commit the manifest names. This script reads those files out of local git mirrors; it
never uses the network itself.

Before running it, bring each source repository in once with the session tool `fetch`
(``fetch github:<owner>/<name>``), which leaves a bare git directory at
``/work/.mirror/<owner>+<name>/repo`` (or ``.../repo/.git``). The repositories are listed in
data/README.md and in the ``source_repo`` column of the manifest; run
``python3 data/rebuild.py --list-repos`` to print them. If a later snapshot no longer holds the
recorded commit, the script stops and says which repository and commit are missing.

Usage:
    python3 data/rebuild.py                 # extract every file, check sha256 and size
    python3 data/rebuild.py --check-only    # only verify the files already in place
    python3 data/rebuild.py --prune         # also delete files under --dest not in the manifest

Needs only python3, numpy and Pillow (for the size check), plus the ``git`` command.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_MANIFEST = HERE / "manifest.tsv"
DEFAULT_MIRROR = Path("/work/.mirror")
DEFAULT_DEST = Path("/work/photos/train_extra")
COPY = "none (byte-identical copy)"


@dataclass(frozen=True)
class Entry:
    """One manifest line."""

    relpath: str
    repo: str
    commit: str
    repo_path: str
    sha256: str
    width: int
    height: int
    conversion: str


def read_manifest(path: Path) -> list[Entry]:
    """Parse the tab-separated manifest (header line first)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [Entry(r["relpath"], r["source_repo"], r["commit"], r["repo_path"], r["sha256"],
                  int(r["width"]), int(r["height"]), r["conversion"]) for r in rows]


def git_dir(mirror: Path, repo: str) -> Path:
    """The bare git directory `fetch` left for owner/name."""
    base = mirror / repo.replace("/", "+") / "repo"
    if (base / ".git").is_dir():
        return base / ".git"
    if (base / "objects").is_dir():
        return base
    raise SystemExit(f"no mirror for {repo} under {mirror}: run `fetch github:{repo}` first")


class BlobReader:
    """Streams file contents out of one mirror with `git cat-file --batch`."""

    def __init__(self, gdir: Path) -> None:
        self.proc = subprocess.Popen(["git", "--git-dir", str(gdir), "cat-file", "--batch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def read(self, commit: str, path: str) -> bytes | None:
        """Bytes of `path` at `commit`, or None when the mirror lacks them."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{commit}:{path}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":
            return None
        data = self.proc.stdout.read(int(header[2]))
        self.proc.stdout.read(1)  # trailing newline
        return data

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_file(dest: Path, e: Entry) -> str | None:
    """None if the file under dest matches the manifest entry, else what is wrong."""
    target = dest / e.relpath
    if not target.is_file():
        return "missing"
    if sha256(target.read_bytes()) != e.sha256:
        return "sha256 differs"
    with Image.open(target) as im:
        if im.size != (e.width, e.height):
            return f"size {im.size} != {(e.width, e.height)}"
    return None


def write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)


def extract(entries: list[Entry], mirror: Path, dest: Path) -> list[str]:
    """Write every entry from its mirror; return error lines."""
    errors: list[str] = []
    readers: dict[str, BlobReader] = {}
    try:
        for e in entries:
            if e.conversion != COPY:
                errors.append(f"{e.relpath}: unsupported conversion {e.conversion!r}")
                continue
            if e.repo not in readers:
                readers[e.repo] = BlobReader(git_dir(mirror, e.repo))
            data = readers[e.repo].read(e.commit, e.repo_path)
            if data is None:
                errors.append(f"{e.relpath}: {e.repo}@{e.commit}:{e.repo_path} not in the mirror "
                              f"(run `fetch github:{e.repo}`; the snapshot must hold that commit)")
                continue
            if sha256(data) != e.sha256:
                errors.append(f"{e.relpath}: sha256 of the mirrored file differs from the manifest")
                continue
            write_atomic(dest / e.relpath, data)
    finally:
        for r in readers.values():
            r.close()
    return errors


def extra_files(entries: list[Entry], dest: Path) -> list[Path]:
    """Files under dest that the manifest does not list."""
    wanted = {e.relpath for e in entries}
    return sorted(p for p in dest.rglob("*") if p.is_file() and str(p.relative_to(dest)) not in wanted)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="where `fetch` left the mirrors")
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    ap.add_argument("--check-only", action="store_true", help="verify files in place, extract nothing")
    ap.add_argument("--prune", action="store_true", help="delete files under --dest not in the manifest")
    ap.add_argument("--list-repos", action="store_true", help="print the source repositories and exit")
    args = ap.parse_args(argv)

    entries = read_manifest(args.manifest)
    if len({e.relpath for e in entries}) != len(entries):
        raise SystemExit("manifest lists a path twice")
    if args.list_repos:
        for repo in sorted({e.repo for e in entries}):
            print(repo)
        return 0
    errors = [] if args.check_only else extract(entries, args.mirror, args.dest)
    errors += [f"{e.relpath}: {why}" for e in entries if (why := check_file(args.dest, e))]
    extras = extra_files(entries, args.dest) if args.dest.is_dir() else []
    for p in extras:
        if args.prune:
            p.unlink()
        else:
            errors.append(f"{p}: not in the manifest (use --prune to delete)")
    for line in errors:
        print(line, file=sys.stderr)
    print(f"{len(entries)} photos in the manifest, {len(errors)} problems", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

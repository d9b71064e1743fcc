"""Stage 1 (io): files on disk. Inputs opened without surprises, outputs written atomically.

An input is opened without blocking (a FIFO with no writer would wait for ever) and judged by the
open handle, with a one-line reason when it is not a regular file. An output is written to a
temporary file in its folder, then put in place with ``os.replace`` (or, where nothing may be
overwritten, a hard link that fails if the name is taken); the temporary files of killed runs are
found by their lock and removed.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no locks, so temporary files of killed runs stay where they are
    fcntl = None

from invgray_cli.errors import InvgrayError, OutputExists

PART_SUFFIX = ".part"  # temporary files: .NAME.XXXXXXXX.part beside the output NAME
NEW_PART_GRACE_S = 5.0  # an empty temporary file this young may be a live run's that has not locked it yet
# whether atomic_write may replace an existing file; a context variable, so threads and tasks each
# keep their own (see keeping_existing_files)
_REPLACE_EXISTING: ContextVar[bool] = ContextVar("invgray_replace_existing", default=True)
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK})


# what a path is when it is not a regular file, as the user is told
_NOT_A_FILE = ((stat.S_ISDIR, "is a directory, expected an image file"),
               (stat.S_ISFIFO, "is a named pipe (FIFO), not a file; to read a stream, pipe it to stdin and give '-'"),
               (stat.S_ISCHR, "is a character device, not an image file"),
               (stat.S_ISBLK, "is a block device, not an image file"),
               (stat.S_ISSOCK, "is a socket, not an image file"))


def open_failure(path: Path, exc: OSError) -> str:
    """Why ``path`` could not be opened, in the user's words (``exc`` is what ``open`` raised)."""
    if exc.errno == errno.ENOENT:
        return "no such file" + (" (a symbolic link to a missing file)" if os.path.islink(path) else "")
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop (the link leads back to itself); fix or remove the link"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot open ({exc.strerror or exc})"


def open_input(path: Path) -> BinaryIO:
    """``path`` opened for reading, or a one-line error saying why not. Opened without blocking (a
    FIFO with no writer would wait for ever) and judged by the open handle, so the file read is the
    file checked."""
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, os.O_RDONLY | nonblocking)
    except OSError as exc:
        raise InvgrayError(f"{path}: {open_failure(path, exc)}") from None
    try:
        facts = os.fstat(fd)
        problem = next((why for test, why in _NOT_A_FILE if test(facts.st_mode)), None)
        if problem is None and facts.st_size == 0:
            problem = "file is empty"
        if problem is not None:
            raise InvgrayError(f"{path}: {problem}")
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def keeping_existing_files() -> Iterator[None]:
    """Within it (in this thread or task), writes to a path never replace a file: :func:`atomic_write`
    claims the name in one step or raises OutputExists. The CLI's promise without --force, kept
    where the name is finally taken, whichever codec function writes the file."""
    token = _REPLACE_EXISTING.set(False)
    try:
        yield
    finally:
        _REPLACE_EXISTING.reset(token)


def atomic_write(dest: str | Path, write_fn: Callable[[BinaryIO], None], replace: bool | None = None) -> None:
    """Call ``write_fn`` on a temporary file beside ``dest``, then put it in place: with ``replace``
    renamed over whatever is there; without, ``dest`` is claimed only while no file has that name, in
    one step (OutputExists otherwise), so of two runs racing for one name exactly one writes. ``replace``
    None: False inside :func:`keeping_existing_files`, else True.

    An error or interrupt leaves ``dest`` untouched and no temporary file behind; the temporary files
    for ``dest`` that killed runs left (SIGKILL, a power cut) are removed first.
    """
    replace = _REPLACE_EXISTING.get() if replace is None else replace
    dest = Path(dest)
    folder = dest.parent
    if not folder.is_dir():
        raise InvgrayError(f"{dest}: output folder {folder} does not exist")
    remove_stale_parts(dest)
    tmp, fd = _create_part(dest)
    try:
        _lock(fd, wait=True)  # held until the file is in place: a live run's file is never stale
        with os.fdopen(fd, "wb") as handle:
            write_fn(handle)
            handle.flush()
            os.fsync(handle.fileno())
            _put_in_place(tmp, dest, replace)
    except OSError as e:  # a full disk, a vanished folder
        tmp.unlink(missing_ok=True)
        raise InvgrayError(f"{dest}: cannot write ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_part(dest: Path) -> tuple[Path, int]:
    """A new temporary file ``.NAME.XXXXXXXX.part`` beside ``dest``: (its path, an open descriptor)."""
    while True:
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}{PART_SUFFIX}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except PermissionError:
            raise InvgrayError(f"{dest}: cannot write into {dest.parent} (permission denied)") from None
        except OSError as e:  # a read-only file system, ...: the user's to fix, not a bug
            raise InvgrayError(f"{dest}: cannot write ({e.strerror or e})") from None


def _put_in_place(tmp: Path, dest: Path, replace: bool) -> None:
    """Rename ``tmp`` onto ``dest``; without ``replace`` only where no file has that name, in one step
    (a hard link, or on file systems without them an O_EXCL claim of the name, then the rename)."""
    if replace:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise OutputExists(dest) from None
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        try:
            os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise OutputExists(dest) from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


def _lock(fd: int, wait: bool) -> bool:
    """Whether an exclusive lock on ``fd`` is now held: False where another process holds it (when
    not waiting) or the file system has no locks."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:  # held elsewhere, or no locks here (ENOLCK, EOPNOTSUPP)
        return False
    return True


def remove_stale_parts(dest: str | Path) -> list[Path]:
    """Remove the temporary files of ours for ``dest`` that no live run holds (their writer was
    killed); returns them. A live run locks its file from creation until it is in place."""
    dest = Path(dest)
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.[0-9a-f]{{8}}{re.escape(PART_SUFFIX)}")
    try:
        with os.scandir(dest.parent) as entries:
            candidates = [dest.parent / e.name for e in entries if pattern.fullmatch(e.name)]
    except OSError:
        return []
    return [path for path in candidates if _remove_if_stale(path)]


def _remove_if_stale(path: Path) -> bool:
    """Unlink ``path`` when it is a regular file nobody holds locked and not one just created (its
    writer may not have locked it yet); whether it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        facts = os.fstat(fd)
        just_created = facts.st_size == 0 and time.time() - facts.st_mtime < NEW_PART_GRACE_S
        if not stat.S_ISREG(facts.st_mode) or just_created or not _lock(fd, wait=False):
            return False
        if os.lstat(path).st_ino != facts.st_ino:
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)

"""The local partition swap (renameat2 RENAME_EXCHANGE, or two renames) and crash repair.

A compaction job lives in ``<root>/.tagarchive/compact/<dataset>/<job>/``: ``staged/`` (the new
partition directory), ``job.json`` (which partition it replaces, written once staging is done) and,
after a fallback swap, ``retired/`` (the old directory). A killed run leaves its job; the next run's
``recover()`` puts back a directory a two-rename swap left missing, merges files a crawl published
into a partition it recreated meanwhile, and deletes the rest (see storage/compact/local.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from storage.compact.common import SCRATCH
from storage.errors import UnsafePathError
from storage.locks import swapping
from storage.paths import check_partition_value, ensure_inside_root, ensure_state_path
from storage.schemas import DatasetSpec

logger = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _load_renameat2() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    path, fd = ctypes.c_char_p, ctypes.c_int
    function.argtypes = [fd, path, fd, path, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where this system or filesystem cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _retire(directory: Path, retired: Path) -> None:
    os.rename(directory, retired)


def _install(staged: Path, directory: Path) -> None:
    os.rename(staged, directory)


def _restore(retired: Path, directory: Path) -> None:
    with contextlib.suppress(OSError):
        os.rename(retired, directory)


def swap_in(staged: Path, directory: Path, job: Path) -> bool:
    """Put ``staged`` at ``directory``; True if in one atomic exchange, False if two renames."""
    if exchange(staged, directory):
        return True
    retired = job / "retired"
    _retire(directory, retired)
    try:
        _install(staged, directory)
    except BaseException:
        _restore(retired, directory)
        raise
    return False


def fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)



def discard(job: Path) -> None:
    # What cannot be deleted now (a reader on Windows, permissions) the next run deletes.
    shutil.rmtree(job, ignore_errors=True)


def write_job(job: Path, fragment: str) -> None:
    temp = job / ".job.json.tmp"
    temp.write_text(json.dumps({"partition": fragment}), encoding="utf-8")
    fsync_file(temp)
    os.replace(temp, job / "job.json")
    fsync_dir(job)



# --- leftovers of killed runs -------------------------------------------------------------------


def recover(root: Path, lock_timeout: float, spec: DatasetSpec) -> int:
    """Repair and delete the jobs a killed compaction of this dataset left; returns how many."""
    scratch = ensure_state_path(root, root / SCRATCH / spec.name)
    if not scratch.is_dir():
        return 0
    repaired = 0
    for job in sorted(scratch.iterdir()):
        if job.is_dir() and not job.is_symlink():
            fragment = _read_job(job)
            if fragment is not None:
                _repair(root, lock_timeout, spec, job, fragment)
            discard(job)
        else:
            job.unlink()  # a file, or a symbolic link itself (never what it points at)
        repaired += 1
    return repaired


def _read_job(job: Path) -> str | None:
    try:
        fragment = json.loads((job / "job.json").read_text(encoding="utf-8"))["partition"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # killed before staging finished: nothing to repair
    return fragment if isinstance(fragment, str) else None


def _repair(root: Path, lock_timeout: float, spec: DatasetSpec, job: Path,
            fragment: str) -> None:
    parts = fragment.split("/")
    try:
        for part, key in zip(parts, spec.partition_by, strict=True):
            name, _, value = part.partition("=")
            if name != key:
                raise UnsafePathError(f"{fragment!r} is not a {spec.name} partition")
            check_partition_value(key, value)
    except (ValueError, UnsafePathError):
        logger.warning("ignoring compaction job %s naming %r", job, fragment)
        return
    directory = ensure_inside_root(root, root / spec.name / fragment)
    staged, retired = job / "staged", job / "retired"
    if staged.is_symlink() or retired.is_symlink():
        logger.warning("ignoring compaction job %s: it holds a symbolic link", job)
        return
    with swapping(root, lock_timeout):
        if not directory.exists():
            # Killed between the two renames of the fallback swap.
            source = staged if staged.is_dir() else retired if retired.is_dir() else None
            if source is not None:
                logger.warning("restoring %s from an interrupted compaction", directory)
                os.rename(source, directory)
                fsync_dir(directory.parent)
        elif staged.is_dir() and retired.is_dir():
            # Same, and then a crawl recreated the partition: its files join the staged ones.
            logger.warning("merging %s with an interrupted compaction", directory)
            for name in os.listdir(directory):
                os.rename(directory / name, staged / name)
            os.rename(staged, directory)  # over the now-empty directory
            fsync_dir(directory.parent)



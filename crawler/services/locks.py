"""The scheduler's file locks: the state directory's service lock and one lock per watch.

A lock is an exclusive, non-blocking flock whose file names the pid holding it, so a refused
caller can say who holds it. A crawl inherits its watch's lock (crawler/services/runner.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class LockBusy(Exception):
    """Another process holds a scheduler lock (the state directory, or one watch)."""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[IO[str]]:
    """An exclusive, non-blocking flock on `path`; LockBusy names the pid that holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the with block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise LockBusy(handle.read().strip() or "?") from None
        name_holder(handle, os.getpid())
        yield handle
    finally:
        handle.close()  # closing releases the flock


def name_holder(handle: IO[str], pid: int) -> None:
    """Write `pid` into a lock file this process holds (LockBusy reports it to others)."""
    handle.seek(0)
    handle.truncate()
    handle.write(str(pid))
    handle.flush()


def lock_holder(path: Path) -> int | None:
    """The pid holding the lock at `path`, or None when nobody does."""
    try:
        with file_lock(path):
            return None
    except LockBusy as exc:
        text = str(exc)
        return int(text) if text.isdigit() else -1
    except OSError:
        return None

"""Advisory locks on the archive root: writers publish under it shared, compaction swaps exclusive.

The lock is ``flock`` on the root directory itself (and, for "one compaction per dataset", on the
dataset directory), so no lock file appears in the archive and a killed holder releases it with
its last descriptor. flock works on local filesystems; where it is unavailable (Windows) the
locks are no-ops and compaction must not run while crawls write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from storage.errors import StorageError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# A writer waits at most this long for a compaction's swap (normally milliseconds) before its
# flush fails and keeps its rows for the next one, rather than hanging a crawl on a stopped
# compaction.
PUBLISH_WAIT_S = 60.0
_POLL_S = 0.005


class LockTimeoutError(StorageError, TimeoutError):
    """The archive lock stayed taken longer than the caller would wait."""


class LockBusyError(StorageError, BlockingIOError):
    """Another process holds a lock that is not waited for (a second compaction)."""


def _open_dir(path: Path) -> int:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags)


def _acquire(fd: int, operation: int, timeout: float | None, what: str) -> None:
    """flock with a deadline: LOCK_NB polls, since flock itself cannot time out."""
    assert fcntl is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if deadline is None:
                raise LockBusyError(what) from None
            if time.monotonic() >= deadline:
                raise LockTimeoutError(f"{what} stayed locked for {timeout:g} s") from None
            time.sleep(_POLL_S)


@contextlib.contextmanager
def publishing(root: str | Path, timeout: float = PUBLISH_WAIT_S) -> Iterator[None]:
    """Hold the root's lock shared while a writer publishes a file (cheap: open + flock)."""
    if fcntl is None:
        yield
        return
    try:
        fd = _open_dir(Path(root))
    except OSError as exc:
        # The lock only protects against a concurrent compaction; never fail a crawl's write
        # because of it.
        logger.warning("cannot lock %s for publishing (%s); writing unlocked", root, exc)
        yield
        return
    try:
        try:
            _acquire(fd, fcntl.LOCK_SH, timeout, f"archive root {root}")
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            logger.warning("cannot lock %s for publishing (%s); writing unlocked", root, exc)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def swapping(root: str | Path, timeout: float) -> Iterator[None]:
    """Hold the root's lock exclusively: no writer is between its temp file and its rename."""
    if fcntl is None:
        yield
        return
    fd = _open_dir(Path(root))
    try:
        _acquire(fd, fcntl.LOCK_EX, timeout, f"archive root {root}")
        yield
    finally:
        os.close(fd)


def claim_file(fd: int) -> None:
    """Lock an open file a writer is filling, so file_in_use() sees it as live (best effort).

    The lock goes with the descriptor: a killed writer releases it, and its file, left behind
    under a temp name, is then a leftover that clean-up may delete.
    """
    if fcntl is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def file_in_use(fd: int) -> bool | None:
    """Whether a live writer holds claim_file() on this file: None where locks do not exist.

    When False, the caller now holds the lock itself until it closes ``fd``.
    """
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None  # this filesystem has no flock: only the file's age can tell
    return False


@contextlib.contextmanager
def exclusive(directory: str | Path, busy: str) -> Iterator[None]:
    """Hold ``directory``'s lock exclusively without waiting, or raise LockBusyError(busy)."""
    if fcntl is None:
        yield
        return
    fd = _open_dir(Path(directory))
    try:
        _acquire(fd, fcntl.LOCK_EX, None, busy)
        yield
    finally:
        os.close(fd)

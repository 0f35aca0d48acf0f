"""Exceptions raised by tagarchive's storage layer."""

from __future__ import annotations

import errno
import os
from pathlib import Path

# Errors that mean "this location will not take our bytes", as opposed to a bug or a bad row.
_NOT_WRITABLE_ERRNOS = frozenset(
    code
    for code in (
        errno.EACCES,
        errno.EPERM,
        errno.ENOSPC,
        errno.EROFS,
        getattr(errno, "EDQUOT", None),
        errno.EFBIG,
    )
    if code is not None
)


class StorageError(Exception):
    """Base class for every error raised by tagarchive.storage."""


class UnsafePathError(StorageError, ValueError):
    """A value would build a path outside the output root, or is not allowed in a path."""


class SchemaError(StorageError, ValueError):
    """Rows do not fit a dataset's Arrow schema, or a dataset or partition key is unknown."""


class ArchiveNotFoundError(StorageError, FileNotFoundError):
    """The root does not exist, or holds none of the tagarchive datasets."""


class OutputNotWritableError(StorageError, OSError):
    """The output location refused a write: permissions, a full disk or a read-only filesystem."""


def is_not_writable(exc: OSError) -> bool:
    """Whether an OSError means the output location refuses writes (rather than a transient bug)."""
    return isinstance(exc, PermissionError) or exc.errno in _NOT_WRITABLE_ERRNOS


def wrap_os_error(exc: OSError, path: str | Path) -> StorageError:
    """Turn an OSError from writing ``path`` into a one-line storage error naming the path."""
    code = exc.errno
    # strerror is a short fixed phrase; pyarrow's own messages add "Detail: ..." noise.
    reason = os.strerror(code) if code else (exc.strerror or str(exc)).splitlines()[0]
    if is_not_writable(exc):
        message = f"output not writable: {path}: {reason}"
        # OSError(errno, text) keeps .errno for callers; without an errno it would print "None".
        return OutputNotWritableError(code, message) if code else OutputNotWritableError(message)
    return StorageError(f"could not write {path}: {reason}")

"""Output paths, built from validated values only, so nothing typed or scraped leaves the root."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from storage.errors import SchemaError, UnsafePathError
from storage.schemas import get_spec

# tagarchive's own files under an output root (compaction scratch, quarantine, backfill walks, the
# demo's cookie jar): outside every dataset tree, so no reader's glob ever sees them.
STATE_DIR = ".tagarchive"

# ASCII letters, digits, '_', '-' and inner dots. No leading dot (hidden files, '.', '..'), and no
# trailing dot either: Windows drops it, so 'x.' and 'x' would share one directory.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_-])?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def safe_partition_value(value: str) -> str:
    """Return ``value`` unchanged if it is safe as a path component, else raise UnsafePathError.

    Hostile or odd input is rejected, never "fixed": a fixed value could collide with another.
    """
    if not isinstance(value, str) or not _SAFE_VALUE.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise UnsafePathError(
            f"unsafe path value {shown}: "
            "use 1-64 of [A-Za-z0-9_.-], not starting or ending with '.'"
        )
    return value


def check_partition_value(key: str, value: str) -> str:
    """Validate one partition value; ``date`` must also be a real ISO day (readers cast it)."""
    safe_partition_value(value)
    if key == "date":
        try:
            if not _ISO_DATE.fullmatch(value):
                raise ValueError(value)
            date.fromisoformat(value)
        except ValueError:
            raise UnsafePathError(f"date partition {value!r} is not a YYYY-MM-DD day") from None
    return value


def ensure_inside_root(root: str | Path, path: str | Path) -> Path:
    """Return ``path`` if, with symlinks resolved, it lies inside ``root``; else UnsafePathError."""
    real_root = os.path.realpath(root)
    real_path = os.path.realpath(path)
    try:
        inside = os.path.commonpath([real_root, real_path]) == real_root
    except ValueError:  # different drives on Windows
        inside = False
    if not inside:
        raise UnsafePathError(
            f"{path} resolves to {real_path}, outside the output root {real_root}"
        )
    return Path(path)


def ensure_state_path(root: str | Path, path: str | Path) -> Path:
    """Return ``path``, which must lie under ``<root>/.tagarchive``, or raise UnsafePathError.

    Stricter than ensure_inside_root(): ``.tagarchive`` and every part of ``path`` below it that
    exists must be a real directory (or, for the last part, a file), never a symbolic link, even
    one pointing inside the root. Compaction deletes and renames what it finds there, so a link
    to a dataset or to a folder elsewhere would have it destroy data that is not its own.
    """
    state = Path(root, STATE_DIR)
    path = Path(path)
    try:
        parts = path.relative_to(state).parts
    except ValueError:
        raise UnsafePathError(f"{path} is not under {state}") from None
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePathError(f"{path}: '.' and '..' are not allowed under {state}")
    current = state
    for part in ("", *parts):
        current = current / part if part else current
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            break  # created later, as a real directory, by whoever needs it
        if stat.S_ISLNK(mode):
            raise UnsafePathError(
                f"refusing {current}: it is a symbolic link (to {os.readlink(current)}); "
                f"tagarchive's state directory {state} must be a real directory in the output root"
            )
    return ensure_inside_root(root, path)


def state_path(root: str | Path, *parts: str) -> Path:
    """``<root>/.tagarchive/<parts...>`` (each part one plain name), checked by
    ensure_state_path()."""
    for part in parts:
        if part in ("", ".", "..") or "/" in part or os.sep in part:
            raise UnsafePathError(f"not a plain name under {STATE_DIR}: {part!r}")
    return ensure_state_path(root, Path(root, STATE_DIR, *parts))


def partition_values(dataset: str, parts: Sequence[str]) -> dict[str, str] | None:
    """The partition values of a leaf directory given as its parts below the dataset directory
    (``["platform=x", "date=2026-01-23"]``), or None when that is not a valid partition path."""
    keys = get_spec(dataset).partition_by
    if len(parts) != len(keys):
        return None
    values = {}
    for part, key in zip(parts, keys, strict=True):
        name, sep, value = part.partition("=")
        if name != key or not sep:
            return None
        try:
            values[key] = check_partition_value(key, value)
        except UnsafePathError:
            return None
    return values


def partition_path(root: str | Path, dataset: str, partitions: Mapping[str, str]) -> Path:
    """Build ``root/<dataset>/k=v/...`` in the dataset's partition order, checked to be in root."""
    spec = get_spec(dataset)
    if set(partitions) != set(spec.partition_by):
        raise SchemaError(
            f"{dataset} is partitioned by {', '.join(spec.partition_by)}, "
            f"got {', '.join(map(str, partitions)) or 'nothing'}"
        )
    parts = [f"{key}={check_partition_value(key, partitions[key])}" for key in spec.partition_by]
    return ensure_inside_root(root, Path(root, spec.name, *parts))


def utc_day(moment: datetime) -> str:
    """The UTC day (``YYYY-MM-DD``) of an aware datetime: the ``date=`` partition value."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}; pass a timezone-aware datetime")
    return moment.astimezone(UTC).date().isoformat()


def new_run_id(now: datetime | None = None) -> str:
    """A run id such as ``20260123T140501Z-3f9a1c2b``: UTC time plus 32 random bits."""
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}; pass a timezone-aware datetime")
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"

"""Compaction: rewrite each partition's many small files as one sorted, deduplicated file.

``compact(root)`` picks the back-end by the root: a local directory swaps each partition directory
in one rename (local.py, swap.py); an ``s3://`` root, where nothing can be renamed, publishes an
output and then a commit marker (s3.py; the markers themselves: storage/markers.py, which the
readers share). What both share: common.py. docs/compaction.md and docs/s3.md say more.

Imports run one way: this package imports the readers' modules (storage.parquetfiles,
storage.markers, storage.backends), never the reverse (an import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import date, datetime

from storage.backends import backend_for
from storage.compact import local, s3
from storage.compact.common import (
    COMPACTED_KEY,
    DEDUP_RULES,
    QUARANTINE,
    ROW_GROUP_ROWS,
    RULES_VERSION,
    SCRATCH,
    SWAP_WAIT_S,
    ArchiveMissingError,
    CompactionError,
    CompactionReport,
    DamagedFileError,
    DatasetReport,
    DedupRule,
    Quarantined,
    compaction_cutoff,
    deduplicate,
    fit_schema,
    parse_parquet,
)


def compact(
    root: str | os.PathLike[str],
    datasets: Iterable[str] | None = None,
    before: date | None = None,
    now: datetime | None = None,
    *,
    include_today: bool = False,
    lock_timeout: float = SWAP_WAIT_S,
) -> CompactionReport:
    """Compact every partition dated before ``before`` and before today (UTC), per dataset.

    Raises ArchiveMissingError for a missing root, SchemaError for an unknown dataset and
    LockBusyError when another compaction of a dataset runs; a partition that fails is left as it
    was and named in the report's errors.
    """
    implementation = _BY_BACKEND[backend_for(root).name]
    return implementation(root, datasets, before, now, include_today=include_today,
                          lock_timeout=lock_timeout)


# Each back-end's compaction (storage.backends.SCHEMES names the back-ends): a local root swaps
# directories, S3, where nothing can be renamed, writes an output and then a commit marker.
_BY_BACKEND = {"local": local.compact, "s3": s3.compact}


__all__ = [
    "COMPACTED_KEY",
    "DEDUP_RULES",
    "QUARANTINE",
    "ROW_GROUP_ROWS",
    "RULES_VERSION",
    "SCRATCH",
    "SWAP_WAIT_S",
    "ArchiveMissingError",
    "CompactionError",
    "CompactionReport",
    "DamagedFileError",
    "DatasetReport",
    "DedupRule",
    "Quarantined",
    "compact",
    "compaction_cutoff",
    "deduplicate",
    "fit_schema",
    "parse_parquet",
]

"""Run `tagarchive` with every file write failing as a full or read-only disk fails.

Used by tests/test_faults_storage.py where no small filesystem can be mounted (not root, or no
CAP_SYS_ADMIN): `python -m tests.fault_boot ENOSPC crawl …`. Writes are refused at the lowest
Python-visible layers the storage code uses: `open()` for writing (the WARC archive's temp
files) and pyarrow's Parquet writer (the datasets). Everything above them is the real code.
"""

from __future__ import annotations

import builtins
import errno
import os
import sys
from typing import Any


def refuse_writes(code: int) -> None:
    """Make every new file write under $TAGARCHIVE_FAULT_ROOT fail with OSError(code)."""
    root = os.path.realpath(os.environ["TAGARCHIVE_FAULT_ROOT"])
    error = OSError(code, os.strerror(code))
    real_open = builtins.open

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if (isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wax+")
                and os.path.realpath(os.fspath(file)).startswith(root + os.sep)):
            raise OSError(error.errno, error.strerror, os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    builtins.open = guarded_open
    import pyarrow.parquet as pq

    real_write_table = pq.write_table

    def guarded_write_table(table: Any, where: Any, *args: Any, **kwargs: Any) -> Any:
        if (isinstance(where, (str, os.PathLike))
                and os.path.realpath(os.fspath(where)).startswith(root + os.sep)):
            raise OSError(error.errno, error.strerror, os.fspath(where))
        return real_write_table(table, where, *args, **kwargs)

    pq.write_table = guarded_write_table


if __name__ == "__main__":
    refuse_writes(getattr(errno, sys.argv[1]))
    from crawler.cli.main import main

    sys.exit(main(sys.argv[2:]))

"""`tagarchive serve`: a read-only local web view of the archive, updated as snapshots land.

live (the archive opened once, noticed when its files change) and sql (the SQL box: one
read-only statement on a locked connection, a time limit, a row cap) <- pages (the HTML) <- app
(the Starlette routes and security headers). The CLI command is crawler/cli/serve.py; what it
shows and its security model are in docs/serve.md.
"""

from __future__ import annotations

from crawler.serve.app import ServeOptions, create_app
from crawler.serve.live import LiveArchive
from crawler.serve.sql import SqlBox, SqlError, SqlRefused, SqlTimeout, check_statement

__all__ = [
    "LiveArchive",
    "ServeOptions",
    "SqlBox",
    "SqlError",
    "SqlRefused",
    "SqlTimeout",
    "check_statement",
    "create_app",
]

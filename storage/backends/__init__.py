"""Storage back-ends chosen by the root's URI scheme, from one ``{scheme: backend}`` map.

As Scrapy's ``FilesPipeline.STORE_SCHEMES``: a root without a scheme, or ``file://``, is a local
directory (local.py); ``s3://bucket/prefix`` is S3 or MinIO (s3.py). Callers ask
``backend_for(root)`` and call its methods instead of testing the root themselves.
"""

from __future__ import annotations

import os
from typing import Any

from storage.backends.base import Backend
from storage.backends.local import LocalBackend
from storage.backends.s3 import S3Backend
from storage.fs import S3Root

_LOCAL = LocalBackend()
SCHEMES: dict[str, Backend] = {"": _LOCAL, "file": _LOCAL, "s3": S3Backend()}


def scheme_of(root: Any) -> str:
    """The root's URI scheme in lower case ("" for a plain path: Windows drives included)."""
    if isinstance(root, S3Root):
        return "s3"
    try:
        text = os.fspath(root)
    except TypeError:
        return ""
    if not isinstance(text, str) or "://" not in text:
        return ""
    scheme = text.split("://", 1)[0].lower()
    return scheme if scheme in SCHEMES else ""


def backend_for(root: Any) -> Backend:
    """The back-end that stores ``root``; a scheme not in SCHEMES is a local path, as it always
    was (storage.analysis.resolve_root refuses such roots by name)."""
    return SCHEMES[scheme_of(root)]


__all__ = ["SCHEMES", "Backend", "LocalBackend", "S3Backend", "backend_for", "scheme_of"]

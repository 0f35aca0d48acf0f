"""Where an archive root lives: a local directory, or ``s3://bucket/prefix`` on S3 or MinIO.

A local root keeps the local protocol (temp file, fsync, rename, flock). An S3 root goes through
``pyarrow.fs.S3FileSystem``: an object appears only when its upload completes, so each file is
written once under its final, unique key and never overwritten. See docs/s3.md. This module is
S3's configuration, roots and requests; which back-end serves a root is storage/backends/.

Configuration comes from the environment only, never from the URL (so no secret is ever part of
a root that is logged or stored in the `runs` table):

- endpoint: ``TAGARCHIVE_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``
  (``http://host:port`` or ``https://host:port``; without a scheme, https);
- region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` (``us-east-1`` with a custom endpoint);
- credentials: the AWS SDK's default chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
  ``AWS_PROFILE`` and ``~/.aws``, instance metadata);
- retries: ``TAGARCHIVE_S3_RETRIES`` attempts per request (default 3, the SDK's standard
  strategy with exponential backoff).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from storage.errors import StorageError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

SCHEME = "s3://"
DEFAULT_RETRIES = 3
# Bucket names as S3 allows them (lower case, digits, dots, hyphens; 3-63 characters).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Prefix components: the characters our own keys use; no '.', '..' or empty components.
_COMPONENT = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9_.=-]{0,127}")


class S3Error(StorageError, OSError):
    """An S3 request failed after its retries: one line naming S3, the operation and the key."""


class BadRootError(StorageError, ValueError):
    """An ``s3://`` root that is not a usable bucket/prefix URL (a usage error)."""


def is_remote(root: Any) -> bool:
    """Whether ``root`` names an S3 location rather than a local directory."""
    if isinstance(root, S3Root):
        return True
    try:
        text = os.fspath(root)
    except TypeError:
        return False
    return isinstance(text, str) and text[:5].lower() == SCHEME


@dataclass(frozen=True)
class S3Root:
    """An archive root on S3: a bucket and a key prefix (without leading or trailing '/')."""

    bucket: str
    prefix: str = ""

    @property
    def base(self) -> str:
        """The root as a pyarrow filesystem path: ``bucket/prefix``."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    @property
    def url(self) -> str:
        return SCHEME + self.base

    def path(self, *parts: str) -> str:
        """A path under the root, for the pyarrow filesystem (``bucket/prefix/a/b``)."""
        return "/".join((self.base, *parts))

    def relative(self, path: str) -> str:
        """``path`` (a filesystem path under the root) relative to the root."""
        return path[len(self.base) + 1:] if path.startswith(self.base + "/") else path

    @property
    def fs(self) -> pafs.S3FileSystem:
        return s3_filesystem()

    def __str__(self) -> str:
        return self.url


def parse_s3_url(text: str) -> S3Root:
    """``s3://bucket[/prefix]`` -> S3Root; anything else raises BadRootError (one line).

    Credentials in the URL (``s3://key:secret@bucket``) are refused without echoing them.
    """
    if not is_remote(text):
        raise BadRootError(f"not an s3:// URL: {text!r}")
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise BadRootError("s3:// URLs must not hold credentials: use AWS_ACCESS_KEY_ID/"
                           "AWS_SECRET_ACCESS_KEY or AWS_PROFILE (see docs/s3.md)")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise BadRootError(f"s3:// root must be s3://bucket/prefix, without ?query or #: {text!r}")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise BadRootError(f"not an S3 bucket name: {bucket!r} in {text!r}")
    components = [c for c in parts.path.split("/")]
    if components and components[0] == "":
        components = components[1:]
    if components and components[-1] == "":
        components = components[:-1]  # one trailing '/' is fine
    for component in components:
        if not _COMPONENT.fullmatch(component) or component.endswith("."):
            raise BadRootError(f"unusable S3 prefix component {component!r} in {text!r}: "
                               "use [A-Za-z0-9_.=-], no empty, '.' or '..' parts")
    return S3Root(bucket, "/".join(components))


def as_s3_root(root: Any) -> S3Root:
    return root if isinstance(root, S3Root) else parse_s3_url(os.fspath(root))


def endpoint() -> tuple[str | None, str | None]:
    """(endpoint_override, scheme) from the environment; (None, None) for AWS itself."""
    for name in ("TAGARCHIVE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        if "://" not in value:
            return value.rstrip("/"), "https"
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            raise BadRootError(f"{name} must be http(s)://host[:port], got {value!r}")
        return parts.netloc, parts.scheme
    return None, None


def _retries() -> int:
    text = os.environ.get("TAGARCHIVE_S3_RETRIES", "").strip()
    if not text:
        return DEFAULT_RETRIES
    if not text.isdigit() or int(text) < 1:
        raise BadRootError(f"TAGARCHIVE_S3_RETRIES must be a whole number >= 1, got {text!r}")
    return int(text)


_CACHE: dict[tuple[Any, ...], Any] = {}


def s3_filesystem() -> pafs.S3FileSystem:
    """The S3 filesystem the environment describes (one per configuration, reused)."""
    import pyarrow.fs as pafs

    override, scheme = endpoint()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    if region is None and override is not None:
        region = "us-east-1"  # MinIO and most S3-compatible stores accept any region
    retries = _retries()
    # Credentials are part of the key so a changed environment is noticed; the key is never
    # printed (a pyarrow S3FileSystem's repr holds no secrets either).
    key = (override, scheme, region, retries, os.environ.get("AWS_ACCESS_KEY_ID"),
           os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN"),
           os.environ.get("AWS_PROFILE"))
    fs = _CACHE.get(key)
    if fs is None:
        options: dict[str, Any] = {
            "region": region,
            "background_writes": False,  # an upload's error surfaces at its own close()
            "allow_bucket_creation": False,
            "allow_bucket_deletion": False,
            "force_virtual_addressing": False,  # path-style: what MinIO and moto expect
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=retries),
        }
        if override is not None:
            options.update(endpoint_override=override, scheme=scheme)
        fs = _CACHE[key] = pafs.S3FileSystem(**options)
    return fs


def s3_error(exc: BaseException, action: str, path: str) -> S3Error:
    """One line: ``S3 <action> failed for s3://<path>: <the SDK's reason>``."""
    text = " ".join(str(exc).split())
    # pyarrow says "When uploading ... in bucket 'b': AWS Error X during Y operation: ..."; the
    # useful part is after the first colon that follows the bucket.
    reason = text.split("': ", 1)[1] if "': " in text else text
    reason = reason.split("; Details:", 1)[0]
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return S3Error(f"S3 {action} failed for {SCHEME}{path}: {reason or type(exc).__name__}")


def check_root(root: S3Root) -> None:
    """The bucket exists and answers with these credentials; S3Error otherwise."""
    import pyarrow.fs as pafs

    try:
        info = root.fs.get_file_info(root.bucket)
    except OSError as exc:
        raise s3_error(exc, "bucket check", root.bucket) from None
    if info.type == pafs.FileType.NotFound:
        raise S3Error(f"S3 bucket not found: {SCHEME}{root.bucket} (create it first; "
                      "tagarchive never creates buckets)")


def list_files(root: S3Root, *parts: str) -> list[tuple[str, int]]:
    """Every object under ``root/parts`` (recursive) as (path, size), sorted by path."""
    import pyarrow.fs as pafs

    base = root.path(*parts)
    try:
        infos = root.fs.get_file_info(pafs.FileSelector(base, recursive=True,
                                                        allow_not_found=True))
    except OSError as exc:
        raise s3_error(exc, "listing", base + "/") from None
    return sorted((i.path, i.size or 0) for i in infos if i.type == pafs.FileType.File)


def exists(root: S3Root, path: str) -> bool:
    import pyarrow.fs as pafs

    try:
        return root.fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as exc:
        raise s3_error(exc, "existence check", path) from None


def put_bytes(root: S3Root, path: str, data: bytes | memoryview) -> int:
    """Upload ``data`` as a new object at ``path``; refuses an existing key. Returns the size.

    The object becomes visible only when the upload completes: a failed or killed upload leaves
    nothing at ``path`` (an unfinished multipart upload is invisible; see docs/s3.md).
    """
    if exists(root, path):
        raise StorageError(f"refusing to overwrite existing object {SCHEME}{path}")
    try:
        with root.fs.open_output_stream(path, compression=None) as stream:
            stream.write(data)
    except OSError as exc:
        raise s3_error(exc, "upload", path) from None
    return len(data)


def put_file(root: S3Root, local: str | os.PathLike[str], path: str) -> int:
    """Upload a local file as a new object at ``path`` (see put_bytes)."""
    with open(local, "rb") as handle:
        return put_bytes(root, path, handle.read())


def read_bytes(root: S3Root, path: str) -> bytes:
    try:
        with root.fs.open_input_stream(path, compression=None) as stream:
            return bytes(stream.read())
    except OSError as exc:
        raise s3_error(exc, "download", path) from None


def delete(root: S3Root, path: str) -> None:
    try:
        root.fs.delete_file(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise s3_error(exc, "delete", path) from None

"""The storage back-end interface: what callers used to branch on between local and S3 roots."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as ds

# The Parquet codecs a writer may publish with (pq.write_table's `compression`).
Compression = Literal["gzip", "brotli", "lz4", "zstd", "snappy", "none"]


class Publisher(ABC):
    """Where one DatasetWriter publishes: each file once, whole, under its final name."""

    root: Any  # the root as the writer reports it: an absolute Path, or the s3:// URL

    @abstractmethod
    def partition_dir(self, dataset: str, partitions: dict[str, str]) -> PurePath:
        """The directory (or key prefix) of one partition; the values are already checked."""

    @abstractmethod
    def publish(self, table: pa.Table, final: Any, compression: Compression) -> int:
        """Write ``table`` at ``final`` so that readers see all of it or nothing; its size.
        StorageError (the rows stay with the writer) when it cannot."""


class Shipper(ABC):
    """Where a writer of growing files (the WARC archive) writes them, and how each is published
    once whole: the files are always written in a local directory with the root's layout."""

    scratch: Path  # that directory: the root itself, or a temporary one

    def seal(self, tmp: Path, final: Path) -> None:  # noqa: B027 (nothing to do for uploads)
        """Called while the file is still open and locked (a local rename keeps its lock)."""

    def hold(self, closed: list[tuple[Path, Path]]) -> None:  # noqa: B027
        """Keep closed files for the next ship() (a later file failed to close); a local
        root's files are already in place."""

    @abstractmethod
    def ship(self, closed: list[tuple[Path, Path]], published: list[PurePath]) -> list[PurePath]:
        """Publish closed (tmp, final) files; returns them as published. A failure raises after
        adding those already published to ``published``; the rest are kept for the next call."""

    def close(self) -> None:  # noqa: B027 (nothing to remove for a local root)
        """Remove what is left of the scratch directory once every file is published."""


class Backend(ABC):
    """One kind of archive root. Stateless: every method takes the root (as the user gave it, or
    as ``location()`` returned it), so one instance serves every root of its scheme."""

    name: ClassVar[str]
    # Files are written once under their final name and never renamed, locked or appended to:
    # what needs those (walk state, the demo's cookie jar, `archive clean`) stays local.
    remote: ClassVar[bool]

    @abstractmethod
    def location(self, root: Any) -> Any:
        """The root in this back-end's own form (a Path, an S3Root); a bad root raises
        BadRootError (a usage error)."""

    @abstractmethod
    def url(self, root: Any) -> str:
        """The root as it is shown and stored (the `runs` table)."""

    def check(self, root: Any) -> None:  # noqa: B027 (a local root has nothing to check)
        """The root answers (an S3 bucket exists with these credentials); S3Error otherwise."""

    @abstractmethod
    def exists(self, root: Any, *parts: str) -> bool:
        """Whether anything is stored at ``root/parts``."""

    @abstractmethod
    def list_files(self, root: Any, *parts: str) -> list[tuple[str, int]]:
        """Every file under ``root/parts`` (recursive) as (path, size), sorted by path."""

    @abstractmethod
    def open_input(self, root: Any, path: str) -> BinaryIO:
        """A file ``list_files`` named, opened for reading (a local file is streamed, an S3
        object fetched whole); OSError (S3Error on S3) when it cannot be read."""

    @abstractmethod
    def absolute(self, root: Any, base: Path) -> Any:
        """The root as a file names it (a watch config's ``out``), independent of the working
        directory: a local path taken relative to ``base`` (a Path), an S3 root as its URL (a
        str); BadRootError for a malformed one."""

    @abstractmethod
    def open_dataset(self, root: Any, name: str) -> ds.Dataset:
        """One dataset with its explicit schema, unreadable files left out (storage.reading)."""

    @abstractmethod
    def duckdb_views(self, root: Any, con: duckdb.DuckDBPyConnection
                     ) -> duckdb.DuckDBPyConnection:
        """One DuckDB view per dataset over the root (storage.reading.duckdb_connect)."""

    @abstractmethod
    def publisher(self, root: Any) -> Publisher:
        """A new Publisher for one DatasetWriter over ``root``."""

    @abstractmethod
    def is_dir(self, root: Any, *parts: str) -> bool:
        """Whether ``root/parts`` is a directory (on S3: a prefix that holds objects)."""

    @abstractmethod
    def resolve(self, root: Any) -> str:
        """Check an archive root for reading and return it as the readers take it;
        ArchiveNotFoundError when it holds no dataset (storage.analysis.resolve_root)."""

    @abstractmethod
    def prepare(self, root: Any) -> str:
        """Make the root ready to be written and return it as stored; StorageError (one line)
        when it cannot be (an unwritable directory, a missing bucket)."""

    @abstractmethod
    def state_root(self, root: Any) -> str:
        """A local directory for state that needs a real filesystem (flock, append, fsync):
        the root itself where it is one."""

    @abstractmethod
    def shipper(self, root: Any) -> Shipper:
        """A new Shipper for one ArchiveWriter over ``root``."""

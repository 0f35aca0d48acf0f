"""The storage back-end interface: what callers used to branch on between local and S3 roots."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as ds


class Publisher(ABC):
    """Where one DatasetWriter publishes: each file once, whole, under its final name."""

    root: Any  # the root as the writer reports it: an absolute Path, or the s3:// URL

    @abstractmethod
    def partition_dir(self, dataset: str, partitions: dict[str, str]) -> PurePath:
        """The directory (or key prefix) of one partition; the values are already checked."""

    @abstractmethod
    def publish(self, table: pa.Table, final: Any, compression: str) -> int:
        """Write ``table`` at ``final`` so that readers see all of it or nothing; its size.
        StorageError (the rows stay with the writer) when it cannot."""


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

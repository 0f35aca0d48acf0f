"""The S3 back-end: an archive root at ``s3://bucket/prefix`` (S3 or MinIO; storage/fs.py).

Nothing on S3 can be renamed, locked or appended to: each file is uploaded once under its final,
unique key (storage/writer.py), and compaction publishes an output, then a commit marker
(storage/compact/s3.py). Reading lists the objects and honours the markers (storage/markers.py).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.parquet as pq

from storage.backends.base import Backend, Compression, Publisher, Shipper
from storage.errors import ArchiveNotFoundError, StorageError
from storage.fs import (
    S3Error,
    S3Root,
    as_s3_root,
    check_root,
    delete,
    exists,
    list_files,
    put_bytes,
    put_file,
    read_bytes,
    s3_error,
)
from storage.markers import listing
from storage.parquetfiles import (
    MIN_SIZE,
    PARTITION_DUCKDB_TYPES,
    create_view,
    dataset_schema,
    empty_view_sql,
    misplaced_reason,
    parquet_error_text,
    partition_schema,
    warn_skipped,
)
from storage.schemas import DATASETS, get_spec

if TYPE_CHECKING:
    import duckdb
    import pyarrow.dataset as ds

_CHECK_THREADS = 8
# The publisher's warnings keep the writer's logger: they are about its files.
writer_log = logging.getLogger("storage.writer")


class S3Backend(Backend):
    """An archive root on S3: ``s3://bucket/prefix``."""

    name = "s3"
    remote = True

    def location(self, root: Any) -> S3Root:
        return as_s3_root(root)

    def url(self, root: Any) -> str:
        return self.location(root).url

    def check(self, root: Any) -> None:
        check_root(self.location(root))

    def exists(self, root: Any, *parts: str) -> bool:
        s3 = self.location(root)
        return exists(s3, s3.path(*parts))

    def list_files(self, root: Any, *parts: str) -> list[tuple[str, int]]:
        return list_files(self.location(root), *parts)

    def is_dir(self, root: Any, *parts: str) -> bool:
        return self.exists(root, *parts)  # S3 has no directories: a prefix with objects

    def resolve(self, root: Any) -> str:
        s3 = self.location(root)
        check_root(s3)
        if not any(exists(s3, s3.path(name)) for name in DATASETS):
            raise ArchiveNotFoundError(
                f"no archive at {s3.url}: none of {', '.join(d + '/' for d in DATASETS)} is there"
            )
        return s3.url

    def prepare(self, root: Any) -> str:
        s3 = self.location(root)  # nothing to create: tagarchive never creates buckets
        check_root(s3)
        return s3.url

    def state_root(self, root: Any) -> str:
        """$TAGARCHIVE_STATE_DIR/s3/<bucket>/<prefix>, default ~/.local/state/tagarchive/s3/...:
        no flock, no append and no fsync on S3."""
        base = os.environ.get("TAGARCHIVE_STATE_DIR") or os.path.join(
            os.path.expanduser("~"), ".local", "state", "tagarchive")
        return os.path.join(base, "s3", *self.location(root).base.split("/"))

    def open_input(self, root: Any, path: str) -> BinaryIO:
        return io.BytesIO(read_bytes(self.location(root), path))  # one object, read whole

    def absolute(self, root: Any, base: Path) -> str:
        return self.url(root)

    def publisher(self, root: Any) -> S3Publisher:
        return S3Publisher(root)

    def shipper(self, root: Any) -> S3Shipper:
        return S3Shipper(root)

    def open_dataset(self, root: Any, name: str) -> ds.Dataset:
        return _open_s3_dataset(self.location(root), name, dataset_schema(name))

    def duckdb_views(self, root: Any, con: duckdb.DuckDBPyConnection
                     ) -> duckdb.DuckDBPyConnection:
        return _duckdb_s3_views(self.location(root), con)


# kept, so a scan does not fetch it again) is good for the whole process. Value: the fragment,
# or why the object is unreadable.
_S3_FRAGMENTS: dict[tuple[int, str, int], ds.Fragment | str] = {}


def s3_footer_problem(exc: BaseException, path: str) -> str:
    """Why a Parquet object's footer could not be read, if the bytes are to blame; otherwise
    (the network, permissions) the S3Error to raise."""
    if isinstance(exc, pa.ArrowInvalid) or "deserialize thrift" in str(exc):
        return "not a whole Parquet file: " + parquet_error_text(exc)
    raise s3_error(exc, "download", path) from None


def _check_footers(unchecked: list[tuple[tuple[int, str, int], ds.ParquetFileFragment]],
                   skipped: list[tuple[str, str]]) -> set[int]:
    """Read the footers of fragments not yet known good, a few at a time; remember each verdict
    (_S3_FRAGMENTS), add the unreadable ones to `skipped` and return their ids."""
    def check(item: tuple[tuple[int, str, int], ds.ParquetFileFragment]) -> str | None:
        try:
            item[1].ensure_complete_metadata()  # kept in the fragment for the scan
        except (OSError, pa.ArrowException) as exc:
            return s3_footer_problem(exc, item[0][1])
        return None

    with ThreadPoolExecutor(min(_CHECK_THREADS, len(unchecked))) as pool:
        problems = list(pool.map(check, unchecked))
    bad = set()
    for (key, fragment), problem in zip(unchecked, problems, strict=True):
        _S3_FRAGMENTS[key] = fragment if problem is None else problem
        if problem is not None:
            bad.add(id(fragment))
            skipped.append((f"s3://{key[1]}", problem))
    return bad


def _open_s3_dataset(root: S3Root, name: str, schema: pa.Schema) -> ds.Dataset:
    import pyarrow.dataset as ds  # here: a crawl only writes, and this costs it ~0.2 s

    parts, misplaced = listing(root, name)
    skipped = [(f"s3://{path}", misplaced_reason(name)) for path, _size in misplaced]
    # Fragments made from the listing, sizes included: reading a file then costs its GETs only,
    # not a HEAD first. Partition values come from the key, typed by the explicit schema.
    parquet = ds.ParquetFileFormat()
    partitioning = ds.partitioning(partition_schema(name), flavor="hive")
    base = root.path(get_spec(name).name) + "/"
    fragments: list[ds.Fragment] = []
    unchecked: list[tuple[tuple[int, str, int], ds.ParquetFileFragment]] = []
    for part in parts:
        # Outputs of a committed compaction were written by a compaction that read every input:
        # only the other files (a day or two of crawl files, usually) have their footer checked.
        committed = {marker.output for marker in part.honoured}
        for file in part.visible:
            path, size = part.path(file), part.files[file]
            key = (id(root.fs), path, size)
            known = _S3_FRAGMENTS.get(key)
            if isinstance(known, str):
                skipped.append((f"s3://{path}", known))
                continue
            if known is not None:
                fragments.append(known)
                continue
            if size < MIN_SIZE:
                skipped.append((f"s3://{path}", f"{size} bytes, too small to be Parquet"))
                continue
            # a ParquetFileFormat makes ParquetFileFragments (the stubs say Fragment)
            fragment = cast(ds.ParquetFileFragment, parquet.make_fragment(
                path,
                filesystem=root.fs,
                # the trailing '/' makes the last k=v a directory (parse drops a file name)
                partition_expression=partitioning.parse(path[len(base):].rsplit("/", 1)[0] + "/"),
                file_size=size,
            ))
            fragments.append(fragment)
            if file not in committed:
                unchecked.append((key, fragment))
    if unchecked:
        bad = _check_footers(unchecked, skipped)
        fragments = [f for f in fragments if id(f) not in bad]
    warn_skipped(skipped)
    if not fragments:
        return ds.dataset(schema.empty_table())
    return ds.FileSystemDataset(fragments, schema=schema, format=parquet, filesystem=root.fs)



def _duckdb_s3_views(root: S3Root, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Views over registered pyarrow datasets: DuckDB's own S3 reader (httpfs) is an extension
    downloaded at run time, which fails offline, and it would not honour commit markers."""
    import pyarrow.dataset as ds

    for name, spec in DATASETS.items():
        dataset = _open_s3_dataset(root, name, dataset_schema(name))
        if not isinstance(dataset, ds.FileSystemDataset):  # no files yet
            source = empty_view_sql(con, name)
        else:
            registered = f"__tagarchive_{name}"
            con.register(registered, dataset)
            # open_dataset keeps partition values as text; the local views type them as DuckDB
            # does for hive paths (date -> DATE), so queries behave the same on both roots.
            casts = ", ".join(
                f'CAST("{key}" AS {PARTITION_DUCKDB_TYPES[key]}) AS "{key}"'
                for key in spec.partition_by
                if PARTITION_DUCKDB_TYPES[key] != "VARCHAR"
            )
            replace = f" REPLACE ({casts})" if casts else ""
            source = f'SELECT *{replace} FROM "{registered}"'
        create_view(con, name, source)
    return con


class S3Publisher(Publisher):
    """Serialize in memory, then one upload under the final key: never a partial object."""

    def __init__(self, root: Any) -> None:
        self._s3 = as_s3_root(root)
        self.root = self._s3.url
        self._uncertain: list[str] = []  # keys whose upload failed: maybe stored after all

    def partition_dir(self, dataset: str, partitions: dict[str, str]) -> PurePath:
        # The values were validated when buffered; S3 keys have no symlinks to resolve.
        parts = [f"{k}={v}" for k, v in partitions.items()]
        return PurePosixPath(self._s3.path(get_spec(dataset).name, *parts))

    def publish(self, table: pa.Table, final: Any, compression: Compression) -> int:
        try:
            buffer = pa.BufferOutputStream()
            pq.write_table(table, buffer, compression=compression)
            data = buffer.getvalue()
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"could not write {final}: {type(exc).__name__}: {exc}") from exc
        self._settle_uncertain()
        key = final.as_posix()
        try:
            # Refuses an existing key; S3Error (one line naming S3) when the upload fails.
            return put_bytes(self._s3, key, memoryview(data))
        except S3Error:
            # The rows go back to the buffer and will be written under a new key; if this upload
            # did land (its answer lost), the object must go first or the rows would count twice.
            self._uncertain.append(key)
            raise

    def _settle_uncertain(self) -> None:
        """Delete objects of failed uploads that landed anyway (before their rows are rewritten)."""
        while self._uncertain:
            key = self._uncertain[0]
            if exists(self._s3, key):
                writer_log.warning("removing s3://%s: its upload reported failure, rows rewritten",
                                   key)
                delete(self._s3, key)
            self._uncertain.pop(0)


class S3Shipper(Shipper):
    """Files grow in a local scratch directory with the same layout and are uploaded under
    their final key once closed (an object cannot be appended to)."""

    def __init__(self, root: Any) -> None:
        self._s3 = as_s3_root(root)
        self.scratch = Path(tempfile.mkdtemp(prefix="tagarchive-warc-"))
        self._pending: list[tuple[Path, Path]] = []  # closed locally, not yet uploaded

    def hold(self, closed: list[tuple[Path, Path]]) -> None:
        self._pending += closed

    def ship(self, closed: list[tuple[Path, Path]], published: list[PurePath]) -> list[PurePath]:
        """Upload every closed file (oldest first); a failure keeps it, and the rest, for later."""
        self._pending += closed
        done: list[PurePath] = []  # object keys, not local files
        while self._pending:
            tmp, final = self._pending[0]
            key = self._s3.path(final.relative_to(self.scratch).as_posix())
            size = tmp.stat().st_size
            try:
                put_file(self._s3, tmp, key)
            except StorageError:
                # Unique key: an object of our size there is this file, stored by an attempt
                # whose answer was lost.
                if not _same_size(self._s3, key, size):
                    published.extend(done)
                    raise
            tmp.unlink()
            self._pending.pop(0)
            done.append(PurePosixPath(key))
        return done

    def close(self) -> None:
        if not self._pending:
            shutil.rmtree(self.scratch, ignore_errors=True)  # the local scratch copy


def _same_size(root: S3Root, key: str, size: int) -> bool:
    import pyarrow.fs as pafs

    try:
        info = root.fs.get_file_info(key)
    except OSError:
        return False
    return info.type == pafs.FileType.File and info.size == size

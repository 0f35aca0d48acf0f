"""`tagarchive export`: chosen tags, platforms and days as a citable, checkable Data Package.

The service selects rows over storage (snapshots, posts, activity, and the runs that stored
them), writes them as Parquet and CSV with a Frictionless datapackage.json, a README.md and a
CITATION.cff (storage/export*.py), and with `--wacz` the raw records behind the rows as a WACZ.
The same archive and request give the same bytes: rows are sorted, writers fixed, and no time
of "now" is written (`created` is given or taken from the data). Tags are filter values, never
path parts: every file has a fixed name inside `out` (docs/export.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.exportmeta import ExportInfo, Resource

if TYPE_CHECKING:
    import pyarrow as pa

DATASETS = ("snapshots", "posts", "activity")
FORMATS = ("parquet", "csv")
WACZ_FILE = "archive/records.wacz"
# What a dehydrated export keeps of `posts`: ids and counters (and when and under which tag
# each was seen). Every other column, a new one included, is dropped.
DEHYDRATED_POSTS = frozenset({
    "platform", "date", "post_id", "tag", "tag_id", "created_at", "observed_at", "likes",
    "comments", "shares", "plays", "likes_semantics", "comments_semantics", "shares_semantics",
    "plays_semantics", "source", "run_id", "schema_version"})
# Pointers into the raw archive, which a dehydrated export does not carry.
ARCHIVE_COLUMNS = frozenset({"archive_file", "archive_record"})
# Every file an export may write: an earlier export's file that this one does not write goes.
_OWN_FILES = ("datapackage.json", "README.md", "CITATION.cff", WACZ_FILE,
              *(f"data/{d}.{f}" for d in (*DATASETS, "runs") for f in FORMATS))


class ExportRefused(ValueError):
    """The request cannot be carried out as asked (a usage error, one line)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export, and how."""

    root: str
    out: Path
    tags: tuple[str, ...] = ()  # as typed: names, or id:<id>
    platforms: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    dehydrate: bool = False
    wacz: bool = False
    formats: tuple[str, ...] = FORMATS
    created: datetime | None = None
    title: str | None = None
    authors: tuple[str, ...] = ()
    identities: Sequence[Any] | None = None


@dataclass
class ExportReport:
    """What an export wrote."""

    out: Path
    resources: list[Resource] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    wacz_records: int = 0
    missing_archive_files: list[str] = field(default_factory=list)


def export(request: ExportRequest) -> ExportReport:
    """Write the Data Package of `request` into `request.out`; ExportRefused for a request
    that cannot be met, StorageError (UnsafePathError for a planted link) from storage."""
    from storage.exportfiles import write_bytes
    from storage.exportmeta import citation, datapackage, readme
    from storage.exportschema import load_descriptions

    out = _prepare_out(request.out)
    tables = select(request)
    if not any(tables[d].num_rows for d in DATASETS):
        raise ExportRefused("no rows match this request (check --tag, --platform, "
                            "--since/--until): nothing exported")
    report = ExportReport(out=out, rows={name: t.num_rows for name, t in tables.items()})
    info = describe(request, tables)
    descriptions = load_descriptions()
    for name, table in tables.items():
        report.resources += _write_dataset(out, name, table, request.formats, descriptions)
    if request.wacz:
        resource = _write_wacz(request, out, tables, info, report)
        report.resources += [resource] if resource else []
    for path, kind, data in (("README.md", "md", readme(info, report.resources)),
                             ("CITATION.cff", "cff", citation(info))):
        report.resources.append(_resource(out, write_bytes(out, path, data), kind))
    write_bytes(out, "datapackage.json", datapackage(info, report.resources))
    written = {r.path for r in report.resources} | {"datapackage.json"}
    for stale in _OWN_FILES:  # an earlier export's file this one did not write
        if stale not in written and (out / stale).is_file():
            (out / stale).unlink()
    return report


def _prepare_out(out: Path) -> Path:
    """The export folder: new, empty, or an earlier export (which is replaced)."""
    out = out.absolute()
    if out.exists() and not out.is_dir():
        raise ExportRefused(f"--out {out} is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "datapackage.json").is_file():
        raise ExportRefused(f"--out {out} is not empty and holds no earlier export: give a "
                            "new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _tag_filter(tags: Sequence[str]) -> tuple[list[str], list[str]]:
    """Tag names (normalized) and tag ids (`id:<id>`) of the request."""
    from crawler.text.tags import InvalidTagError, normalize_tag, parse_tag_arg

    names, ids = [], []
    for raw in tags:
        try:
            ref = parse_tag_arg(raw)
        except InvalidTagError as exc:
            raise ExportRefused(f"--tag {raw!r}: {exc}") from None
        if ref.name is None:
            ids.append(str(ref.id))
        else:
            names.append(normalize_tag(ref.name))
    return names, ids


def select(request: ExportRequest) -> dict[str, pa.Table]:
    """The exported tables: each dataset's matching rows in the export schema, sorted, and the
    `runs` rows of the runs that stored them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names, ids = _tag_filter(request.tags)
    tables: dict[str, pa.Table] = {}
    for dataset in DATASETS:
        table = _read(request, dataset)
        if names or ids:
            table = table.filter(_tag_mask(table, names, ids))
        tables[dataset] = _conform(dataset, table, _dropped(dataset, request.dehydrate))
    run_ids = sorted({str(r) for t in tables.values() for r in t["run_id"].to_pylist()})
    runs = _read(request, "runs", everything=True)
    runs = runs.filter(pc.is_in(runs["run_id"], value_set=pa.array(run_ids, pa.string())))
    tables["runs"] = _conform("runs", runs, frozenset())
    return tables


def _tag_mask(table: pa.Table, names: list[str], ids: list[str]) -> pa.Array[Any]:
    """True for the rows of the requested tags (by normalized name, or by id)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keep: Any = pc.is_in(table["tag"], value_set=pa.array(names, pa.string()))
    if "tag_id" in table.column_names:
        keep = pc.or_(keep, pc.is_in(table["tag_id"], value_set=pa.array(ids, pa.string())))
    mask: pa.Array[Any] = pc.fill_null(keep, False).combine_chunks()
    return mask


def _dropped(dataset: str, dehydrate: bool) -> frozenset[str]:
    from storage.schemas import get_spec

    if not dehydrate:
        return frozenset()
    names = frozenset(get_spec(dataset).schema.names)
    if dataset == "posts":
        return names - DEHYDRATED_POSTS
    return names & ARCHIVE_COLUMNS


def _read(request: ExportRequest, dataset: str, everything: bool = False) -> pa.Table:
    """A dataset's rows under the root, filtered by partition (platform, day) unless
    `everything`, older schema versions folded into the current columns."""
    import pyarrow.dataset as ds

    from storage import open_dataset
    from storage.schemas import get_spec, upgrade_table

    data = open_dataset(request.root, dataset)
    keys = get_spec(dataset).partition_by
    expr = None
    conditions = []
    if not everything:
        if request.platforms and "platform" in keys:
            conditions.append(ds.field("platform").isin(list(request.platforms)))
        if request.since:
            conditions.append(ds.field("date") >= request.since.isoformat())
        if request.until:
            conditions.append(ds.field("date") <= request.until.isoformat())
    for condition in conditions:
        expr = condition if expr is None else expr & condition
    return upgrade_table(data.to_table(filter=expr), dataset)


def _conform(dataset: str, table: pa.Table, drop: frozenset[str]) -> pa.Table:
    """`table` in the export schema of `dataset` (partition columns first, as typed there;
    a column older files lack is null), sorted on every scalar column."""
    import pyarrow as pa

    from storage.exportfiles import sort_rows
    from storage.exportschema import export_arrow_schema
    from storage.schemas import get_spec

    schema = export_arrow_schema(dataset, drop)
    columns = []
    for target in schema:
        if target.name in table.column_names:
            columns.append(table[target.name].cast(target.type))
        else:
            columns.append(pa.nulls(table.num_rows, target.type))
    conformed = pa.Table.from_arrays(columns, schema=schema)
    spec = get_spec(dataset)
    return sort_rows(conformed, [*spec.partition_by, *spec.sort_by])


def _write_dataset(out: Path, name: str, table: pa.Table, formats: Sequence[str],
                   descriptions: dict[str, dict[str, str]]) -> list[Resource]:
    from storage.exportfiles import write_csv, write_parquet
    from storage.exportschema import table_schema

    schema = table_schema(name, table.schema, descriptions)
    resources = []
    for kind in FORMATS:
        if kind not in formats:
            continue
        writer = write_parquet if kind == "parquet" else write_csv
        path = writer(out, f"data/{name}.{kind}", table)
        resources.append(_resource(out, path, kind, dataset=name, rows=table.num_rows,
                                   schema=schema))
    return resources


def _resource(out: Path, path: Path, kind: str, dataset: str | None = None,
              rows: int | None = None, schema: dict[str, Any] | None = None) -> Resource:
    from storage.exportfiles import file_digest

    sha256, size = file_digest(path)
    relative = path.relative_to(out).as_posix()
    if dataset is not None:
        name = dataset if kind == "csv" else f"{dataset}-{kind}"
    else:
        name = {"md": "readme", "cff": "citation", "wacz": "raw-records"}[kind]
    return Resource(name=name, path=relative, kind=kind, sha256=sha256, size=size,
                    dataset=dataset, rows=rows, schema=schema)


def _distinct(tables: dict[str, pa.Table], column: str) -> list[str]:
    return sorted({str(v) for name in DATASETS for v in tables[name][column].to_pylist()
                   if v is not None})


def describe(request: ExportRequest, tables: dict[str, pa.Table]) -> ExportInfo:
    """The provenance of an export: sources, runs, tool, privacy mode, created."""
    from storage.exportmeta import tool_provenance

    runs = tables["runs"]
    privacy = (sorted({str(v) for v in runs["privacy"].to_pylist() if v is not None})
               if "privacy" in runs.column_names else [])
    tool, commit = tool_provenance()
    tags, platforms = _distinct(tables, "tag"), _distinct(tables, "platform")
    title = request.title or (f"tagarchive export: {', '.join('#' + t for t in tags[:5])}"
                              + (" …" if len(tags) > 5 else ""))
    query = {"tags": list(request.tags), "platforms": list(request.platforms),
             "since": request.since.isoformat() if request.since else None,
             "until": request.until.isoformat() if request.until else None,
             "dehydrate": request.dehydrate, "wacz": request.wacz,
             "formats": [f for f in FORMATS if f in request.formats]}
    return ExportInfo(title=title, created=request.created or _created(tables), query=query,
                      tool_version=tool, git_commit=commit, privacy=privacy,
                      sources=_sources(tables["snapshots"]), runs=_runs(runs), tags=tags,
                      platforms=platforms, authors=list(request.authors),
                      dehydrated=request.dehydrate)


def _created(tables: dict[str, pa.Table]) -> datetime:
    """The latest moment in the data: a run's end (or start), else an observation."""
    moments = [v for column in ("finished_at", "started_at")
               for v in tables["runs"][column].to_pylist() if v is not None]
    moments += [v for name in DATASETS if "observed_at" in tables[name].column_names
                for v in tables[name]["observed_at"].to_pylist() if v is not None]
    return max(moments, default=datetime(1980, 1, 1, tzinfo=UTC))


def _sources(snapshots: pa.Table) -> list[dict[str, str]]:
    seen = {(p, t, u) for p, t, u in zip(snapshots["platform"].to_pylist(),
                                         snapshots["tag"].to_pylist(),
                                         snapshots["url"].to_pylist(), strict=True)}
    return [{"title": f"{p} #{t}", **({"path": u} if u else {})} for p, t, u in sorted(
        seen, key=lambda s: (s[0], s[1], s[2] or ""))]


def _runs(runs: pa.Table) -> list[dict[str, Any]]:
    """The runs behind the rows and their settings, as datapackage.json lists them."""
    keep = ("run_id", "command", "argv", "started_at", "finished_at", "verdict", "version",
            "settings", "watch", "trigger", "privacy")
    listed = []
    for row in runs.select([c for c in keep if c in runs.column_names]).to_pylist():
        listed.append({k: (v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                           if isinstance(v, datetime) else v) for k, v in row.items()})
    return listed


def _write_wacz(request: ExportRequest, out: Path, tables: dict[str, pa.Table],
                info: ExportInfo, report: ExportReport) -> Resource | None:
    """The raw records the exported rows were read from, as a WACZ; None when there are none
    (a crawl with --no-archive, or every file pruned)."""
    from storage.archivepick import pick, read_archive_file
    from storage.exportwacz import WaczPage, build_wacz

    titles = _record_titles(tables)
    warcs, pages = [], []
    for rel in sorted({f for f, _r in titles}):
        try:
            data = read_archive_file(request.root, rel, request.identities)
        except FileNotFoundError:
            report.missing_archive_files.append(rel)
            continue
        wanted = {r: t for (f, r), t in titles.items() if f == rel}
        spans, raw = pick(data, wanted)
        warcs.append((Path(rel).name.removesuffix(".age"), raw))
        pages += [WaczPage(page_id=str(uuid.uuid5(uuid.NAMESPACE_URL, s.record_id)),
                           url=s.url, ts=s.date, title=wanted[s.record_id])
                  for s in spans if s.record_id in wanted]
        report.wacz_records += len(spans)
    if not warcs:
        return None
    path = build_wacz(out, WACZ_FILE, warcs, pages, info.title,
                      "the raw records the exported rows were read from", info.created)
    return _resource(out, path, "wacz")


def _record_titles(tables: dict[str, pa.Table]) -> dict[tuple[str, str], str]:
    """(archive_file, archive_record) of every exported snapshot and post, with a page title."""
    titles: dict[tuple[str, str], str] = {}
    for name in ("snapshots", "posts"):
        table = tables[name]
        if "archive_file" not in table.column_names:
            continue
        for row in table.select(["platform", "tag", "observed_at", "archive_file",
                                 "archive_record"]).to_pylist():
            if row["archive_file"] and row["archive_record"]:
                when = row["observed_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
                titles.setdefault((row["archive_file"], row["archive_record"]),
                                  f"{row['platform']} #{row['tag']} {when}")
    return titles

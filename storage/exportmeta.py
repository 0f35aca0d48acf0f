"""The documents of an export: datapackage.json, README.md and CITATION.cff.

Everything in them comes from the exported data and the request (never the clock unless the
caller passes `created`), so the same inputs give the same bytes. Tags and other values from the
data are written as JSON strings (CITATION.cff is YAML, of which JSON strings are a part) or
inside code spans with backquotes and line breaks removed: a hostile tag is shown, never run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.exportschema import load_semantics

NOT_RECORDED = "not recorded"
COMMIT_ENV = "TAGARCHIVE_GIT_COMMIT"


@dataclass(frozen=True)
class Resource:
    """One file of the export as datapackage.json lists it."""

    name: str
    path: str
    kind: str  # csv, parquet, wacz, md, cff
    sha256: str
    size: int
    dataset: str | None = None
    rows: int | None = None
    schema: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "path": self.path}
        if self.kind == "csv":
            entry.update(type="table", profile="tabular-data-resource", format="csv",
                         mediatype="text/csv", encoding="utf-8")
        else:  # frictionless checks their hash and size; the Parquet files carry their schema
            entry.update(type="file", format=self.kind, mediatype=_MEDIATYPES[self.kind])
        if self.schema is not None:
            entry["schema"] = self.schema
        entry.update(hash=self.sha256, bytes=self.size)
        if self.rows is not None:
            entry["tagarchive:rows"] = self.rows
        return entry


_MEDIATYPES = {"parquet": "application/vnd.apache.parquet", "wacz": "application/wacz",
               "md": "text/markdown", "cff": "application/x-yaml"}


@dataclass
class ExportInfo:
    """What an export holds and how it was made."""

    title: str
    created: datetime
    query: dict[str, Any]
    tool_version: str
    git_commit: str | None
    privacy: list[str]
    sources: list[dict[str, str]]
    runs: list[dict[str, Any]]
    tags: list[str]
    platforms: list[str]
    authors: list[str] = field(default_factory=list)
    dehydrated: bool = False

    @property
    def created_text(self) -> str:
        return self.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tool_provenance() -> tuple[str, str | None]:
    """tagarchive's version, and the git commit of its source: $TAGARCHIVE_GIT_COMMIT when set
    (a build made from a clone), else `git rev-parse HEAD` when it runs from a clone, else None
    (no git, not a clone, or git failing are all fine)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tool = version("tagarchive")
    except PackageNotFoundError:
        tool = "unknown"
    given = os.environ.get(COMMIT_ENV, "").strip().lower()
    if re.fullmatch(r"[0-9a-f]{7,40}", given):  # a packaged build says where it came from
        return tool, given
    source = Path(__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return tool, None
    try:
        done = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return tool, None
    commit = done.stdout.strip()
    return tool, commit if done.returncode == 0 and len(commit) == 40 else None


def datapackage(info: ExportInfo, resources: list[Resource]) -> bytes:
    """datapackage.json: a Frictionless Data Package, with tagarchive's own keys prefixed."""
    modes = info.privacy or [NOT_RECORDED]
    package: dict[str, Any] = {
        "name": "tagarchive-export",
        "title": info.title,
        "description": _description(info),
        "created": info.created_text,
        "version": "1.0.0",
        "keywords": ["hashtags", *info.platforms],
        "sources": info.sources,
        "contributors": [{"title": a, "role": "author"} for a in info.authors],
        "resources": [r.describe() for r in resources],
        "tagarchive:tool": {"name": "tagarchive", "version": info.tool_version,
                            "git_commit": info.git_commit},
        "tagarchive:query": info.query,
        # the `privacy` column of the runs (issue 15 item 1); "not recorded" before it exists
        "tagarchive:privacy": {"mode": modes[0] if len(modes) == 1 else "mixed",
                               "modes": modes, "dehydrated": info.dehydrated},
        "tagarchive:counter_semantics": load_semantics(),
        "tagarchive:runs": info.runs,
    }
    if not info.authors:
        del package["contributors"]
    return (json.dumps(package, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode()


def _description(info: ExportInfo) -> str:
    what = ("post ids and counters only (dehydrated: no text, no authors)" if info.dehydrated
            else "the stored rows")
    return (f"Hashtag observations collected with tagarchive {info.tool_version}: {what} for "
            f"{len(info.tags)} tag(s) on {', '.join(info.platforms) or 'no platform'}.")


def _code(value: Any) -> str:
    text = str(value).replace("`", "'").replace("\n", " ").replace("\r", " ")
    return f"`{text}`"


def readme(info: ExportInfo, resources: list[Resource]) -> bytes:
    """README.md: what the package is, how it was made, its files and how to cite it."""
    lines = [f"# {info.title.replace(chr(10), ' ')}", "", _description(info), "",
             f"- created: {info.created_text}",
             f"- tags: {', '.join(_code(t) for t in info.tags) or 'none'}",
             f"- platforms: {', '.join(_code(p) for p in info.platforms) or 'none'}",
             f"- query: {_code(json.dumps(info.query, ensure_ascii=False))}",
             f"- made by tagarchive {info.tool_version}"
             + (f" (git commit {info.git_commit})" if info.git_commit else ""),
             f"- privacy mode of the collection: {', '.join(info.privacy) or NOT_RECORDED}",
             f"- runs: {len(info.runs)} (listed in datapackage.json and data/runs.*)", "",
             "## Files", "", "| file | rows | bytes | sha256 |", "|---|---|---|---|"]
    lines += [f"| {r.path} | {'' if r.rows is None else r.rows} | {r.size} | "
              f"{r.sha256.removeprefix('sha256:')} |" for r in resources]
    lines += ["", "`datapackage.json` describes every column (type, meaning, vocabulary). Each "
              "counter has a `<counter>_semantics` column saying what its value is:", ""]
    lines += [f"- `{value}`: {meaning}" for value, meaning in load_semantics().items()]
    lines += ["", "Read the Parquet files with DuckDB, Polars, pandas or Spark, the CSV files "
              "with anything; `frictionless validate datapackage.json` checks every file "
              "against its checksum and every CSV cell against its schema.", "",
              "## Citation", "", "See `CITATION.cff`.", ""]
    return "\n".join(lines).encode("utf-8")


def citation(info: ExportInfo) -> bytes:
    """CITATION.cff (Citation File Format 1.2.0) for the dataset, tagarchive as a reference."""
    authors = info.authors or ["Unknown (replace with the dataset's authors)"]
    lines = ["cff-version: 1.2.0",
             'message: "If you use this dataset, please cite it as below."',
             "type: dataset", f"title: {json.dumps(info.title, ensure_ascii=False)}",
             "authors:"]
    for author in authors:
        family, sep, given = author.partition(",")
        if sep and family.strip() and given.strip():
            lines += [f"  - family-names: {json.dumps(family.strip(), ensure_ascii=False)}",
                      f"    given-names: {json.dumps(given.strip(), ensure_ascii=False)}"]
        else:
            lines.append(f"  - name: {json.dumps(author.strip(), ensure_ascii=False)}")
    lines += [f'date-released: "{info.created.astimezone(UTC).date().isoformat()}"',
              'version: "1.0.0"',
              f"abstract: {json.dumps(_description(info), ensure_ascii=False)}",
              "keywords:"]
    lines += [f"  - {json.dumps(k, ensure_ascii=False)}" for k in ["hashtags", *info.tags]]
    lines += ["references:", "  - type: software", '    title: "tagarchive"',
              "    authors:", '      - name: "tagarchive contributors"',
              f"    version: {json.dumps(info.tool_version)}"]
    if info.git_commit:
        lines.append(f"    commit: {json.dumps(info.git_commit)}")
    return ("\n".join(lines) + "\n").encode("utf-8")

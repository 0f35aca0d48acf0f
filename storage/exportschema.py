"""Frictionless Table Schemas of the exported datasets, generated from the Arrow schemas.

Types come from storage/schemas.py; descriptions from the column tables of docs/data.md, the one
place columns are described (parsed here, never copied); vocabularies (`*_semantics`, `source`,
`coverage`, `verdict`, `health`) become `enum` constraints. A column the doc does not describe
gets none rather than an invented one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from storage.schemas import (
    COVERAGES,
    HEALTH,
    SEMANTICS,
    SOURCES,
    VERDICTS,
    get_spec,
)

DATA_DOC = Path(__file__).resolve().parent.parent / "docs" / "data.md"
# Partition columns, which the export writes as ordinary columns (first, in this order).
PARTITION_DESCRIPTIONS = {
    "platform": "the platform (a registry slug: tiktok, xiaohongshu, …); a partition of the "
                "archive, a column of the export",
    "date": "the UTC day of the row's date column (observed_at, day, started_at); a partition "
            "of the archive, a column of the export",
}
_VOCABULARIES = {"source": SOURCES, "coverage": COVERAGES, "verdict": VERDICTS,
                 "health": HEALTH}
# columns that mean the same in every dataset: described once, in `snapshots`
_SHARED = frozenset({"tag", "observed_at", "source", "run_id", "schema_version"})
_SECTION = re.compile(r"^## `(\w+)`")
_NAME = re.compile(r"`([a-z_]+)`")


def parse_data_doc(text: str) -> dict[str, dict[str, str]]:
    r"""Column descriptions per dataset from docs/data.md: each `## \`dataset\`` section's
    table rows `| names | type | meaning |`, every backquoted name in the first cell getting the
    meaning (`a_x, … d_x`: every column ending `_x`, kept as the key `*_x`); a meaning "as in
    `snapshots` (…)" takes that dataset's description, with what follows."""
    found: dict[str, dict[str, str]] = {}
    dataset = None
    for line in text.splitlines():
        heading = _SECTION.match(line)
        if heading or line.startswith("## "):
            dataset = heading.group(1) if heading else None
            found.setdefault(dataset or "", {})
            continue
        if dataset is None or not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] == "column":
            continue
        names = _NAME.findall(cells[0].split("(")[0])  # not the values in parentheses
        if "…" in cells[0] and names:
            names.append("*_" + names[-1].rsplit("_", 1)[-1])
        for name in names:
            found[dataset][name] = _describe(cells[2])
    found.pop("", None)
    return {name: _resolve(found, columns) for name, columns in found.items()}


def _describe(meaning: str) -> str:
    """A table row's meaning as plain text (a markdown link keeps its text)."""
    return re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", meaning).strip()


def _resolve(found: dict[str, dict[str, str]], columns: dict[str, str]) -> dict[str, str]:
    resolved = {}
    for name, meaning in columns.items():
        match = re.fullmatch(r"(?:as in `(\w+)`(.*))?", meaning)
        if match is not None:
            other = found.get(match.group(1) or "snapshots", {})
            base = lookup(other, name)
            if base and other is not columns:
                meaning = f"{base} {(match.group(2) or '').strip()}".strip()
        resolved[name] = meaning
    return resolved


def lookup(described: dict[str, str], name: str) -> str | None:
    """A column's description, or that of its `*_suffix` row."""
    if described.get(name):
        return described[name]
    suffix = "*_" + name.rsplit("_", 1)[-1] if "_" in name else None
    return described.get(suffix) if suffix else None


def parse_semantics(text: str) -> dict[str, str]:
    """What each `*_semantics` value means: the rows of docs/data.md's "What each number is"."""
    meanings: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## What each number is"
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if inside and line.startswith("|") and len(cells) >= 2:
            match = re.fullmatch(r"`(\w+)`", cells[0])
            if match and match.group(1) in SEMANTICS:
                meanings[match.group(1)] = _describe(cells[1])
    return meanings


def load_semantics(path: Path = DATA_DOC) -> dict[str, str]:
    """parse_semantics() of docs/data.md; each value with no meaning when the doc is absent."""
    try:
        found = parse_semantics(path.read_text(encoding="utf-8"))
    except OSError:
        found = {}
    return {value: found.get(value, "") for value in SEMANTICS}


def load_descriptions(path: Path = DATA_DOC) -> dict[str, dict[str, str]]:
    """parse_data_doc() of docs/data.md; empty when the doc is not there (an installed wheel)."""
    try:
        return parse_data_doc(path.read_text(encoding="utf-8"))
    except OSError:
        return {}


def frictionless_type(arrow_type: pa.DataType) -> tuple[str, dict[str, Any]]:
    """The Table Schema type (and extra field keys) of an Arrow type; lists and structs are
    JSON in the CSV files (`array`)."""
    if pa.types.is_string(arrow_type):
        return "string", {}
    if pa.types.is_integer(arrow_type):
        return "integer", {}
    if pa.types.is_floating(arrow_type):
        return "number", {}
    if pa.types.is_boolean(arrow_type):
        return "boolean", {}
    if pa.types.is_timestamp(arrow_type):
        return "datetime", {}
    if pa.types.is_date(arrow_type):
        return "date", {}
    if pa.types.is_list(arrow_type) or pa.types.is_struct(arrow_type):
        return "array", {}
    raise TypeError(f"no Table Schema type for Arrow type {arrow_type}")


def export_arrow_schema(dataset: str, drop: frozenset[str] = frozenset()) -> pa.Schema:
    """The schema of an exported dataset: its partition columns first, then its own columns,
    less `drop` (a dehydrated export)."""
    spec = get_spec(dataset)
    fields = [pa.field(name, pa.date32() if name == "date" else pa.string(), nullable=False)
              for name in spec.partition_by]
    fields += [f for f in spec.schema if f.name not in drop]
    metadata: dict[bytes | str, bytes | str] = {
        k: v for k, v in (spec.schema.metadata or {}).items()}
    return pa.schema(fields, metadata=metadata)


def table_schema(dataset: str, schema: pa.Schema,
                 descriptions: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The Frictionless Table Schema of one exported dataset."""
    described = descriptions.get(dataset, {})
    fields = []
    for arrow_field in schema:
        name = arrow_field.name
        kind, extra = frictionless_type(arrow_field.type)
        entry: dict[str, Any] = {"name": name, "type": kind, **extra}
        text = (PARTITION_DESCRIPTIONS.get(name) or lookup(described, name)
                or (descriptions.get("snapshots", {}).get(name) if name in _SHARED else None))
        if text:
            entry["description"] = text
        constraints: dict[str, Any] = {}
        if not arrow_field.nullable:
            constraints["required"] = True
        vocabulary = SEMANTICS if name.endswith("_semantics") else _VOCABULARIES.get(name)
        if vocabulary and kind == "string":
            constraints["enum"] = list(vocabulary)
        if constraints:
            entry["constraints"] = constraints
        fields.append(entry)
    return {"fields": fields, "missingValues": [""]}

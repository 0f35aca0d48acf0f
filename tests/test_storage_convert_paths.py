"""table_from_rows reads columns in one pass when rows share their keys: same table either way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage import SchemaError, table_from_rows

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)


def _row(i: int, **extra: object) -> dict[str, object]:
    return {"platform": "tiktok", "date": "2025-03-01", "tag": f"t{i}", "observed_at": NOW,
            "views": i, "source": "api", "run_id": "r1", **extra}


def test_shared_keys_in_any_order_and_mixed_keys_give_the_same_table() -> None:
    shared = [_row(i) for i in range(5)]
    reordered = [dict(reversed(list(r.items()))) for r in shared]
    mixed = [*shared[:4], {**shared[4], "posts": None}]  # one row with an extra (null) key
    tables = [table_from_rows("snapshots", rows) for rows in (shared, reordered, mixed)]
    assert tables[0].equals(tables[1])
    assert tables[0].equals(tables[2])
    assert tables[0].column("views").to_pylist() == [0, 1, 2, 3, 4]
    assert tables[0].column("posts").null_count == 5


def test_checks_still_name_the_row_on_the_one_pass_path() -> None:
    rows = [_row(i) for i in range(3)]
    rows[2]["views"] = 1.5
    with pytest.raises(SchemaError, match=r"snapshots\.views: expected int64, got float 1\.5 "
                                          r"\(row 2\)"):
        table_from_rows("snapshots", rows)
    rows = [_row(i) for i in range(3)]
    rows[1] = {**rows[1], "veiws": 3}
    with pytest.raises(SchemaError, match=r"snapshots\.veiws: unknown column \(row 1\)"):
        table_from_rows("snapshots", rows)
    shared = [{**_row(i), "veiws": 3} for i in range(2)]
    with pytest.raises(SchemaError, match=r"snapshots\.veiws: unknown column \(row 0\)"):
        table_from_rows("snapshots", shared)

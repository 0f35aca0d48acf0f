"""A backfill and the per-platform circuit breaker, end to end against the replica: a platform
cooling off after a captcha ends the walk `cooling_off` (not `error`), named in `runs` and on
stderr with exit code 1, with nothing sent to it; `--ignore-cooloff` sends it anyway.

The breaker's clock is injected (-s TAGARCHIVE_BREAKER_NOW stands still at that moment), so
"within the cool-off" is chosen, never waited for. The cool-off expected is the documented
default for a captcha (docs/access.md): 30 minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from replica.server import ReplicaServer
from tests.backfill_helpers import backfill, stored_days, truth

TAG = "brkfill"


def _runs(out: Path) -> list[dict[str, Any]]:
    rel = duckdb.sql(f"select * from read_parquet('{out}/runs/**/*.parquet', "
                     "hive_partitioning=true) order by started_at")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def _outcome(run: Mapping[str, Any]) -> tuple[str, str]:
    [only] = run["outcomes"]
    assert (only["platform"], only["tag"]) == ("bilibili", TAG)
    return only["status"], only["detail"]


def _hits(replica: ReplicaServer) -> dict[str, int]:
    return {kind: n for (p, kind), n in replica.hits_snapshot().items() if p == "bilibili"}


def test_a_cooling_platform_ends_the_backfill_cooling_off_and_ignore_cooloff_sends_it(
        replica: ReplicaServer, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def at(now: str, *extra: str) -> Any:
        return backfill(replica, out, "bilibili", TAG, "-s", f"TAGARCHIVE_BREAKER_NOW={now}",
                        *extra)

    # 1. Bilibili's risk control (v_voucher) on the first page: a captcha, which trips it
    replica.world.set_variant("bilibili", TAG, "captcha")
    first = at("2026-01-01T00:00:00Z")
    assert first.code == 1, first.stderr[-3000:]
    assert _outcome(_runs(out)[-1])[0] == "captcha"

    # 2. ten minutes later, the platform answering again: the backfill sends it nothing and
    # names the tag cooling_off with why and until when, like `crawl`
    replica.world.clear_variants()
    before = _hits(replica)
    second = at("2026-01-01T00:10:00Z")
    assert second.code == 1, second.stderr[-3000:]
    assert _hits(replica) == before
    run = _runs(out)[-1]
    status, detail = _outcome(run)
    assert status == "cooling_off", (status, detail)
    assert detail.startswith("until 2026-01-01T00:30:00Z after captcha (trip 1) on "), detail
    assert f"tagarchive: bilibili {TAG}: cooling_off: {detail}" in second.stderr
    assert "once the cool-off is over" in second.stderr
    assert run["verdict"] == "failed"
    assert "Traceback" not in second.stderr

    # 3. --ignore-cooloff: requested anyway, said so, and the window is stored in full
    third = at("2026-01-01T00:11:00Z", "--ignore-cooloff")
    assert third.code == 0, third.stderr[-3000:]
    assert "requested anyway (--ignore-cooloff)" in third.stderr
    assert _outcome(_runs(out)[-1])[0] == "stored"
    days = stored_days(out)
    assert {d: v[:2] for d, v in days.items()} == truth(replica, "bilibili", TAG)

"""`reparse`: today's parsers over the archive, offline, superseding the rows they replace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crawler.platforms.base import TagResult
from crawler.platforms.tiktok import TikTok
from crawler.reparse import reparse
from replica.server import ReplicaServer
from storage import duckdb_connect
from tests.conftest import crawl, run_cli


class FixedTikTok(TikTok):
    """A 'parser fix': this version reads one more view than the old one did."""

    def handle(self, step: str, page: Any, tag: Any, state: dict[str, Any]) -> Any:
        result = super().handle(step, page, tag, state)
        if isinstance(result, TagResult) and result.snapshot.get("views") is not None:
            result.snapshot["views"] = int(result.snapshot["views"]) + 1
        return result


def rows(root: Path) -> list[tuple]:
    con = duckdb_connect(root)
    return con.execute("select platform, tag, observed_at, views, discussions, archive_record "
                       "from snapshots order by platform, tag").fetchall()


def test_reparse_updates_numbers_without_network(replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "fixme", "ssr")
    result = crawl(replica, tmp_path, "tiktok,xiaohongshu", "fixme")
    assert result.code == 0, result.stderr[-2000:]
    before = rows(tmp_path)
    posts_before = duckdb_connect(tmp_path).execute("select count(*) from posts").fetchall()
    replica.reset_hits()

    # a closed port: reparse must never reach for the network
    report = reparse(tmp_path, adapters={"tiktok": FixedTikTok("http://127.0.0.1:9")})
    assert replica.hits_snapshot() == {}
    assert report.snapshots == 2 and report.rejects == 0

    after = rows(tmp_path)
    assert len(after) == len(before) == 2  # superseded, not added
    for old, new in zip(before, after, strict=True):
        assert old[:3] == new[:3] and old[5] == new[5]  # same observation, same record
        expected_views = old[3] + 1 if old[0] == "tiktok" else old[3]
        assert new[3] == expected_views and new[4] == old[4]
    con = duckdb_connect(tmp_path)
    assert con.execute("select count(*) from posts").fetchall() == posts_before
    assert con.execute("select count(*) from runs where command = 'reparse'").fetchall() == [(1,)]


def test_reparse_cli_without_archive_exits_3(tmp_path: Path) -> None:
    result = run_cli("reparse", "--root", str(tmp_path))
    assert result.code == 3 and "no archive" in result.stderr

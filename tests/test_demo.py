"""`tagarchive demo`: the main job on its embedded default."""

from __future__ import annotations

from pathlib import Path

from crawler.platforms import REGISTRY
from storage import duckdb_connect
from tests.conftest import run_cli


def test_demo_stores_growth_on_every_platform(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = run_cli("demo", "--out", str(out), "--ticks", "2")
    assert result.code == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "read_parquet" in result.stdout
    con = duckdb_connect(out)
    rows = con.execute("""
        select platform, tag, count(*),
               arg_min(coalesce(views, discussions, posts, participants), observed_at),
               arg_max(coalesce(views, discussions, posts, participants), observed_at),
               bool_or(coalesce(views_approx, discussions_approx, posts_approx,
                                participants_approx, false))
        from snapshots group by 1, 2 order by 1, 2""").fetchall()
    expected = {n for n, c in REGISTRY.items() if c.signin != "required"}
    assert {"tiktok", "xiaohongshu"} <= expected
    assert {r[0] for r in rows} == expected
    for platform, tag, n, first, last, approximate in rows:
        assert n == 2, (platform, tag)
        # rounded display text ("12.7万") may hide six hours of growth; exact counts may not
        if approximate:
            assert last >= first, f"{platform} {tag} went down"
        else:
            assert last > first, f"{platform} {tag} did not grow between ticks"
    assert con.execute("select count(*) from runs where verdict = 'ok'").fetchone() == (2,)
    assert con.execute("select count(*) from rejects").fetchone() == (0,)

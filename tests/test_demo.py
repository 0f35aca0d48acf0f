"""`tagarchive demo`: the main job on its embedded default."""

from __future__ import annotations

from pathlib import Path

from crawler.platforms import REGISTRY
from storage import duckdb_connect
from tests.crawl_helpers import run_cli


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
               bool_or(coalesce(views_semantics, discussions_semantics, posts_semantics,
                                participants_semantics) = 'window')
        from snapshots group by 1, 2 order by 1, 2""").fetchall()
    # every built-in platform, including those that need sign-in (demo replica sessions)
    assert {r[0] for r in rows} == set(REGISTRY)
    grew: set[str] = set()
    cumulative: set[str] = set()
    for platform, tag, n, first, last, window in rows:
        assert n == 2, (platform, tag)
        if window:
            continue  # a count over the last 24 h (Bluesky, Mastodon) may rise or fall
        cumulative.add(platform)
        assert last >= first, f"{platform} {tag} went down"
        if last > first:
            grew.add(platform)
    # a small tag may not move in six hours (and rounded text hides small moves), but on every
    # platform with running totals the demo's tags as a whole must show growth
    assert grew == cumulative
    assert len(cumulative) >= len(REGISTRY) - 2
    assert con.execute("select count(*) from runs where verdict = 'ok'").fetchone() == (2,)
    assert con.execute("select count(*) from rejects").fetchone() == (0,)
    # the table printed at the end marks each latest value with what it is (≈ rounded ...)
    latest = con.execute("""
        select arg_max(views, observed_at), arg_max(views_semantics, observed_at)
        from snapshots where views is not null group by platform, tag""").fetchall()
    assert any(kind == "rounded" for _v, kind in latest)
    for views, kind in latest:
        sign = {"rounded": "≈ ", "lower_bound": "≥ ", "window": "⧗ "}.get(kind, "")
        assert f"{sign}{views:,}" in result.stdout, (views, kind)
    assert "≈ rounded by the platform" in result.stdout

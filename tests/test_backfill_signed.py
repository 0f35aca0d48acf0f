"""Backfills through signing sessions (issue 14): Xiaohongshu's topic search and notes feed, and
TikTok's client-rendered tag's challenge API, are read as signed API calls, page by page, with
no page navigation beyond the signing page; the rendered, scrolled page stands in when signing
is unavailable or off. Real `tagarchive backfill` processes, real Chromium, the replica's
signers (replica/signing.py); expected values are the replica's ground truth of what each feed
lists (tests/backfill_helpers.py ranked_truth).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest

from replica.server import ReplicaServer
from replica.signing import SignerState
from replica.world import LIST_CAP
from tests.backfill_helpers import backfill, posts, ranked_truth, stored_days, walk_dir
from tests.crawl_helpers import run_record


@pytest.fixture
def signers(replica: ReplicaServer) -> Iterator[dict[str, SignerState]]:
    """The replica's signers, at their defaults, with no hits counted yet."""
    states: dict[str, SignerState] = {
        p: replica.platforms[p].signing for p in ("xiaohongshu", "tiktok")}  # type: ignore[attr-defined]
    for state in states.values():
        state.reset()
    replica.reset_hits()
    yield states
    for state in states.values():
        state.reset()


def _hits(replica: ReplicaServer, platform: str) -> dict[str, int]:
    return {kind: n for (p, kind), n in replica.hits_snapshot().items() if p == platform}


def _ranked_posts(replica: ReplicaServer, platform: str, tag: str) -> dict[str, Any]:
    """The posts the replica's ranked feed lists (LIST_CAP at most), by id."""
    return {p.id: p for p in replica.world.posts_for(platform, tag, limit=LIST_CAP,
                                                     order="mixed")}


def _assert_truth(replica: ReplicaServer, out: Path, platform: str, tag: str) -> None:
    days = stored_days(out)
    assert {d: v[:2] for d, v in days.items()} == ranked_truth(replica, platform, tag)
    assert {v[2] for v in days.values()} == {"lower_bound"}
    listed = _ranked_posts(replica, platform, tag)
    stored = posts(out)
    assert len(stored) == len({p["post_id"] for p in stored})  # each post once
    assert {p["post_id"] for p in stored} <= set(listed)
    assert all(p["likes"] == listed[p["post_id"]].likes for p in stored)


def _journal(out: Path, platform: str, tag: str) -> list[dict[str, Any]]:
    directory = walk_dir(out, platform, quote(tag, safe=""))
    text = (directory / "journal.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _sources(out: Path) -> set[str]:
    rel = duckdb.sql(f"select distinct source from read_parquet('{out}/activity/**/*.parquet', "
                     "hive_partitioning=true)")
    return {row[0] for row in rel.fetchall()}


def test_xiaohongshu_backfill_is_signed_page_by_page_without_navigations(
        replica: ReplicaServer, signers: dict[str, SignerState], tmp_path: Path) -> None:
    tag = "旅行"
    result = backfill(replica, tmp_path, "xiaohongshu", tag)
    assert result.code == 0, result.stderr[-3000:]
    _assert_truth(replica, tmp_path, "xiaohongshu", tag)
    listed = len(_ranked_posts(replica, "xiaohongshu", tag))
    hits = _hits(replica, "xiaohongshu")
    # one search, then every feed page of 20 the replica lists, each signed well enough
    pages = -(-listed // 20)
    assert hits.get("search_topic") == 1, hits
    assert hits.get("notes") == pages, hits
    assert signers["xiaohongshu"].state()["refused"] == {}
    # no topic or search page was loaded: the signing page only, once
    assert "topic_page" not in hits, hits
    assert "search_page" not in hits, hits
    assert hits.get("home", 0) <= 1, hits
    assert run_record(tmp_path)["rendered_requests"] == 0
    journal = _journal(tmp_path, "xiaohongshu", tag)
    assert {line["fetched_by"] for line in journal} == {"signed_http"}
    assert len(journal) == pages + 1  # the search, then each feed page
    directory = walk_dir(tmp_path, "xiaohongshu", quote(tag, safe=""))
    state = json.loads((directory / "state.json").read_text())
    assert state["fetched_by"] == {"signed_http": pages + 1}
    assert _sources(tmp_path) == {"api"}


def test_xiaohongshu_backfill_renders_when_signing_is_unavailable_or_off(
        replica: ReplicaServer, signers: dict[str, SignerState], tmp_path: Path) -> None:
    tag = "美食"
    # a page that shows no signer: every signed step is rendered instead, as a crawl's are
    signers["xiaohongshu"].set(exposed=False)
    hidden = backfill(replica, tmp_path / "hidden", "xiaohongshu", tag,
                      "-s", "TAGARCHIVE_SIGNING_READY_MS=500")
    assert hidden.code == 0, hidden.stderr[-3000:]
    _assert_truth(replica, tmp_path / "hidden", "xiaohongshu", tag)
    assert "rendering instead of signing" in hidden.stderr
    hits = _hits(replica, "xiaohongshu")
    assert hits.get("topic_page") == 1, hits
    assert "notes" in hits, hits
    assert {line["fetched_by"] for line in _journal(tmp_path / "hidden", "xiaohongshu",
                                                    tag)} == {"render"}
    assert _sources(tmp_path / "hidden") == {"captured_xhr"}

    # signing switched off: the rendered pages from the start, the same posts
    signers["xiaohongshu"].reset()
    replica.reset_hits()
    off = backfill(replica, tmp_path / "off", "xiaohongshu", tag,
                   "-s", "TAGARCHIVE_SIGNING_ENABLED=0")
    assert off.code == 0, off.stderr[-3000:]
    _assert_truth(replica, tmp_path / "off", "xiaohongshu", tag)
    hits = _hits(replica, "xiaohongshu")
    assert hits.get("search_page") == 1, hits
    assert hits.get("topic_page") == 1, hits
    assert "home" not in hits, hits  # no signing page was opened


@pytest.mark.parametrize("variant", ["ssr", "csr"])
def test_tiktok_backfill_reads_item_list_signed_from_the_tag_page(
        replica: ReplicaServer, signers: dict[str, SignerState], tmp_path: Path,
        variant: str) -> None:
    tag = f"signedfeed{variant}"
    replica.world.set_variant("tiktok", tag, variant)
    result = backfill(replica, tmp_path, "tiktok", tag)
    assert result.code == 0, result.stderr[-3000:]
    _assert_truth(replica, tmp_path, "tiktok", tag)
    listed = len(_ranked_posts(replica, "tiktok", tag))
    assert sum(v[0] for v in stored_days(tmp_path).values()) > 30  # past the first page
    hits = _hits(replica, "tiktok")
    # the tag page once over HTTP; a server-rendered one holds the first 30 videos
    first = 30 if variant == "ssr" else 0
    pages = -(-(listed - first) // 30)
    assert hits.get("tag_page") == 1, hits
    assert hits.get("api_item_list") == pages, hits
    assert hits.get("api_detail", 0) == (variant == "csr"), hits
    assert hits.get("home", 0) <= 1, hits  # the signing page, once
    assert signers["tiktok"].state()["refused"] == {}
    assert run_record(tmp_path)["rendered_requests"] == 0
    ways = [line["fetched_by"] for line in _journal(tmp_path, "tiktok", tag)]
    assert ways[0] == "http", ways
    assert set(ways[1:]) == {"signed_http"}, ways
    assert _sources(tmp_path) == {"api"}


def test_a_signed_next_page_survives_the_walk_state_for_resume() -> None:
    """--resume reads the next page from state.json: a signed fetch must come back signed,
    with its rendered fallback, not as a plain request the platform refuses."""
    from datetime import date

    from crawler.platforms.timeline import Window
    from crawler.platforms.xiaohongshu import Xiaohongshu
    from crawler.spiders.walks import fetch_from_state, fetch_to_state
    from crawler.text.tags import TagRef

    first = Xiaohongshu().timeline_fetch(TagRef(name="旅行", id=None),
                                         Window(date(2025, 1, 1), date(2025, 1, 2)))
    assert first.sign is not None
    assert first.sign.fallback is not None
    assert first.sign.fallback.render is not None
    again = fetch_from_state(json.loads(json.dumps(fetch_to_state(first))))
    assert again == first

"""Privacy through whole crawls against the replica: by default no raw author id, handle or name
the replica served is in any Parquet cell; hashes are stable within a project and differ under
another key; redact and keep do what they say and the mode is recorded; reparse moves an
archive made under `keep` into a privacy mode. Raw values come from the replica's ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from crawler.services.reparse import reparse
from replica.server import ReplicaServer
from storage import duckdb_connect
from tests.crawl_helpers import run_cli

PLATFORMS = "mastodon,bluesky,tiktok"
TAGS = ("tiktokrefugee", "rednote")
ENV = {"TAGARCHIVE_BLUESKY_HANDLE": "privacy.bsky.social",
       "TAGARCHIVE_BLUESKY_APP_PASSWORD": "priv-acyt-estp-ass0"}
KEY_A, KEY_B = "a" * 64, "b" * 64


def crawl(replica: ReplicaServer, out: Path, *more: str, key: str = KEY_A) -> None:
    result = run_cli("crawl", PLATFORMS, *TAGS, "--out", str(out), "--replica", replica.url,
                     "--delay", "0", "--concurrency", "4", *more,
                     env={**ENV, "TAGARCHIVE_PSEUDONYM_KEY": key})
    assert result.code == 0, result.stderr[-3000:]


def raw_people(replica: ReplicaServer) -> set[str]:
    """Every author id, handle and name the replica shows under the tags (long enough not to
    turn up inside other values by chance)."""
    values: set[str] = set()
    for platform in PLATFORMS.split(","):
        for tag in TAGS:
            for post in replica.world.posts_for(platform, tag, limit=500, order="newest"):
                values |= {post.author_id, post.author_unique_id, post.author_nickname}
    return {v for v in values if isinstance(v, str) and len(v) >= 5}


def every_string(out: Path) -> list[str]:
    """Every string cell (lists flattened) of every Parquet file under the root."""
    cells: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            cells.append(value)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    for path in out.rglob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            walk(row)
    return cells


def posts(out: Path) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = duckdb_connect(out).execute(
        "select platform, post_id, author_id, author_name, url, text from posts "
        "order by observed_at").fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def runs_privacy(out: Path) -> list[tuple[str, str | None]]:
    return duckdb_connect(out).execute(
        "select privacy, privacy_key from runs order by started_at").fetchall()


def test_default_crawl_stores_no_raw_author_and_hashes_are_per_project(
        replica: ReplicaServer, tmp_path: Path) -> None:
    out = tmp_path / "a"
    crawl(replica, out)
    crawl(replica, out)  # a second run, same project: the same hashes
    people = raw_people(replica)
    assert len(people) > 50
    cells = every_string(out)
    leaks = {p for p in people for cell in cells if p in cell}
    assert leaks == set()
    stored = posts(out)
    assert {platform for platform, _id in stored} == set(PLATFORMS.split(","))
    assert all(a is None or a.startswith("u_") for a, *_ in stored.values())
    [(mode1, key1), (mode2, key2)] = runs_privacy(out)
    assert mode1 == mode2 == "pseudonymize"
    assert key1 == key2
    assert key1
    assert KEY_A not in key1
    # the same post's author in both runs of this project: one hash
    both = duckdb_connect(out).execute(
        "select platform, post_id, count(distinct author_id), count(*) from posts "
        "group by all having count(*) > 1").fetchall()
    assert both
    assert all(distinct == 1 for _p, _i, distinct, _n in both)
    # another project, another key: the same posts' authors hash differently
    other = tmp_path / "b"
    crawl(replica, other, key=KEY_B)
    elsewhere = posts(other)
    shared = [k for k in stored if k in elsewhere and stored[k][0]]
    assert shared
    assert all(stored[k][0] != elsewhere[k][0] for k in shared)


def test_redact_and_keep_do_what_they_say_and_are_recorded(replica: ReplicaServer,
                                                           tmp_path: Path) -> None:
    redacted, kept = tmp_path / "redact", tmp_path / "keep"
    crawl(replica, redacted, "--privacy", "redact")
    crawl(replica, kept, "--privacy", "keep")
    assert all(a is None and n is None for a, n, *_ in posts(redacted).values())
    [(mode, key_id)] = runs_privacy(redacted)
    assert mode == "redact"
    assert key_id
    assert runs_privacy(kept) == [("keep", None)]
    people = raw_people(replica)
    kept_authors = {v for a, n, *_ in posts(kept).values() for v in (a, n) if v}
    assert kept_authors & people  # keep: the names as the platform showed them

    # reparse under the default mode brings the kept archive into it
    report = reparse(kept, privacy="pseudonymize")
    assert report.pages > 0
    assert not {p for p in people for cell in every_string(kept) if p in cell}
    assert runs_privacy(kept)[-1][0] == "pseudonymize"

"""A login lost in the middle of a crawl (issue 14): real `tagarchive` processes against the
replica, whose Bilibili forgets the crawl's session after a number of answers
(`replica.accounts.expire`), as a site expires a login.

The first login wall ends that platform: its remaining tags are not requested and end
`login_wall`, naming the lost login; the other platform in the crawl goes on. What reached
Bilibili after the session was forgotten is the replica's own count of the login walls it
answered: exactly one. Under the scheduler the platform is paused afterwards, as for a login
the check before the crawl found lost (tests/test_access_pause.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.services.pauses import active
from crawler.services.watchconfig import load_config
from replica.server import ReplicaServer
from tests.access_helpers import (
    bilibili_session,
    mixed_watch_config,
    runs,
    schedule_until_tiktok_alone,
)
from tests.crawl_helpers import crawl, run_record

SESSION = "bili-session-that-expires-midcrawl"
TAGS = ("midloga", "midlogb", "midlogc", "midlogd", "midloge")
K = 2  # tags whose topic the session still reads (Bilibili: one `details` answer per tag)
LOST = "the login was lost mid-crawl"


@pytest.fixture
def accounts(replica: ReplicaServer) -> Iterator[ReplicaServer]:
    replica.accounts.clear()
    replica.reset_hits()
    yield replica
    replica.accounts.clear()


def test_a_login_lost_mid_crawl_ends_the_platforms_other_tags_unrequested(
        accounts: ReplicaServer, tmp_path: Path) -> None:
    replica = accounts
    for tag in TAGS:
        replica.world.set_variant("tiktok", tag, "ssr")  # the other platform, over HTTP
    replica.accounts.expire("bilibili", SESSION, after=K, kind="details")
    session = bilibili_session(tmp_path / "bilibili.json", SESSION)
    result = crawl(replica, tmp_path / "out", "bilibili,tiktok", *TAGS,
                   extra=("--concurrency", "1", "--session", f"bilibili={session}",
                          "--no-browser"))
    assert result.code == 1, result.stderr[-3000:]

    got = {(o["platform"], o["tag"]): (o["status"], o["detail"])
           for o in run_record(tmp_path / "out")["outcomes"]}
    assert all(got[("tiktok", t)][0] == "stored" for t in TAGS), got
    bili = [got[("bilibili", t)] for t in TAGS]
    assert [s for s, _d in bili].count("stored") == K, bili
    walled = [d for s, d in bili if s == "login_wall"]
    assert len(walled) == len(TAGS) - K, bili
    # the one that met the wall says what the platform said; the rest, that they were not sent
    assert sum(LOST not in d for d in walled) == 1, walled
    for detail in walled:
        if LOST in detail:
            assert "renew it (tagarchive signin bilibili); the tag was not requested" in detail
            assert "tagarchive: bilibili " in result.stderr
    # one login wall answered, and nothing asked of Bilibili with that session after it
    assert replica.accounts.walls["bilibili"] == 1
    assert replica.hits_snapshot()[("bilibili", "whoami")] == 1  # the check before the crawl
    assert "Traceback" not in result.stderr


def test_under_the_scheduler_the_platform_is_paused_afterwards(
        accounts: ReplicaServer, tmp_path: Path) -> None:
    replica = accounts
    tags = TAGS[:3]
    for tag in tags:
        replica.world.set_variant("tiktok", tag, "ssr")
    replica.accounts.expire("bilibili", SESSION, after=1, kind="details")
    bilibili_session(tmp_path / "bilibili.json", SESSION)
    path = mixed_watch_config(tmp_path, replica.url, list(tags), concurrency=1)
    config = load_config(path)
    out = Path(config.out)
    code, err = schedule_until_tiktok_alone(path, out)
    assert code == 0, err[-3000:]
    first = [r for r in runs(out) if r["verdict"] != "skipped"][0]
    statuses = sorted(o["status"] for o in first["outcomes"] if o["platform"] == "bilibili")
    assert statuses == ["login_wall", "login_wall", "stored"], first["outcomes"]
    assert replica.accounts.walls["bilibili"] == 1  # nothing more after the wall
    pause = active(config)["bilibili"]
    assert pause.run_id == first["run_id"]
    assert "2 of 3 tag(s) met a login wall" in pause.reason
    assert '"paused": "bilibili"' in err

"""YouTube, Instagram, Mastodon and Bluesky: real shapes in, exact rows out, failures by name."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from crawler.platforms.base import LoginWall, Page, RateLimited
from crawler.platforms.bluesky import Bluesky
from crawler.platforms.mastodon import Mastodon, parse_tag
from crawler.platforms.youtube import created_from_relative
from crawler.text.counts import parse_count
from crawler.text.tags import TagRef
from replica.server import ReplicaServer
from storage import duckdb_connect
from tests.crawl_helpers import run_cli
from tests.fixture_helpers import FIXTURES, load_case
from tests.fixtures.regenerate import CANONICAL, describe, run_step

PLATFORMS = "youtube,instagram,mastodon,bluesky"
SESSIONID = "ig-sessionid-5f2c81d0a9e4b7"
SOCS = "CAISNQgDEitib3FfaWRlbnRpdHlmcm9udGVuZHVp"
HANDLE = "researcher.bsky.social"
APP_PASSWORD = "k3v9-x2pq-7mzt-a4wd"
OBSERVED = datetime(2025, 11, 6, 21, 0, tzinfo=UTC)


def heeho_entity() -> dict:
    """Mastodon.py's recorded `GET /api/v1/tags/heeho`, all seven days (PLATFORMS.md §8.6)."""
    uses = ["0", "3", "12", "0", "1", "7", "2"]
    accounts = ["0", "2", "5", "0", "1", "4", "1"]
    history = [{"day": str(1762387200 - 86400 * i), "accounts": accounts[i], "uses": uses[i]}
               for i in range(7)]
    return {"id": "3", "name": "heeho", "url": "http://localhost:3000/tags/heeho",
            "history": history, "following": False, "featuring": False}


def test_mastodon_tag_entity_in_the_real_shape_gives_seven_activity_rows() -> None:
    page = Page(url="http://localhost:3000/api/v1/tags/heeho", status=200, headers={},
                text="", observed_at=OBSERVED)
    result = parse_tag(heeho_entity(), page, TagRef("heeho", None))
    rows = [(r["day"], r["posts"], r["participants"], r["coverage"]) for r in result.activity]
    assert rows == [
        (date(2025, 11, 6), 0, 0, "platform_reported"),
        (date(2025, 11, 5), 3, 2, "platform_reported"),
        (date(2025, 11, 4), 12, 5, "platform_reported"),
        (date(2025, 11, 3), 0, 0, "platform_reported"),
        (date(2025, 11, 2), 1, 1, "platform_reported"),
        (date(2025, 11, 1), 7, 4, "platform_reported"),
        (date(2025, 10, 31), 2, 1, "platform_reported"),
    ]
    # the counters Mastodon's own hashtag header shows: sums over the history
    assert result.snapshot["posts"] == 25
    assert result.snapshot["participants"] == 13
    assert result.snapshot["tag_id"] == "3"
    assert result.snapshot["tag_display"] == "heeho"


def test_mastodon_history_that_is_not_midnight_strings_is_a_layout_change() -> None:
    page = Page(url="u", status=200, headers={}, text="", observed_at=OBSERVED)
    entity = heeho_entity()
    entity["history"][2]["day"] = str(1762387200 - 3600)
    with pytest.raises(Exception, match="not a UTC midnight"):
        parse_tag(entity, page, TagRef("heeho", None))
    entity = heeho_entity()
    entity["history"][0]["uses"] = "many"
    with pytest.raises(Exception, match="not a count"):
        parse_tag(entity, page, TagRef("heeho", None))


ACTIVITY_CASES = sorted(
    c for c in FIXTURES.glob("*/*")
    if (c / "expected.json").is_file()
    and "activity" in json.loads((c / "expected.json").read_text()))


def test_activity_fixtures_exist() -> None:
    assert FIXTURES / "mastodon" / "tag_and_timeline" in ACTIVITY_CASES


@pytest.mark.parametrize("folder", ACTIVITY_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_activity_matches(folder: Path) -> None:
    """test_platform_fixtures compares snapshots and posts; the activity rows are compared here."""
    platform, tag, step, state, page = load_case(folder)
    adapter = Mastodon(f"{CANONICAL}/{platform}")
    got = describe(run_step(adapter, step, state, page, tag))
    assert got["activity"] == json.loads((folder / "expected.json").read_text())["activity"]


def test_mastodon_saved_tag_entity_becomes_the_stored_days() -> None:
    """The saved first answer (a Tag in the real shape) carries the days of the saved result."""
    _, tag, step, state, page = load_case(FIXTURES / "mastodon" / "tag_entity")
    entity = json.loads(page.text)
    assert all(isinstance(h[k], str) for h in entity["history"] for k in h)
    days = [int(h["day"]) for h in entity["history"]]
    assert days == sorted(days, reverse=True)
    assert len(days) == 7
    result = parse_tag(entity, page, tag)
    assert [r["day"] for r in result.activity] == [
        datetime.fromtimestamp(d, UTC).date() for d in days]
    assert [r["posts"] for r in result.activity] == [int(h["uses"]) for h in entity["history"]]


def test_mastodon_rate_limit_names_the_reset() -> None:
    _, tag, step, state, page = load_case(FIXTURES / "mastodon" / "rate_limited")
    with pytest.raises(RateLimited, match=r"X-RateLimit 0/300, resets at \d{4}-"):
        Mastodon(f"{CANONICAL}/mastodon").handle(step, page, tag, state)


@pytest.mark.parametrize(("platform", "hint"), [
    ("instagram", "--session instagram=cookies.txt"),
    ("bluesky", "TAGARCHIVE_BLUESKY_APP_PASSWORD"),
])
def test_missing_session_is_a_login_wall_that_says_what_to_supply(platform: str,
                                                                 hint: str) -> None:
    from crawler.platforms import platform_class

    _, tag, step, state, page = load_case(FIXTURES / platform / "no_session")
    with pytest.raises(LoginWall) as info:
        platform_class(platform)(f"{CANONICAL}/{platform}").handle(step, page, tag, state)
    assert hint in info.value.detail


def test_bluesky_failed_sign_in_names_the_code_not_the_answer() -> None:
    page = Page(url="u", status=401, headers={}, observed_at=OBSERVED,
                text='{"error":"AuthenticationRequired","message":"Invalid password k3v9"}')
    with pytest.raises(LoginWall) as info:
        Bluesky().login_headers(page)
    assert "AuthenticationRequired" in info.value.detail
    assert "k3v9" not in info.value.detail


def test_youtube_relative_times_become_timestamps_only_when_fine_grained() -> None:
    assert created_from_relative("5 minutes ago", OBSERVED) == OBSERVED - timedelta(minutes=5)
    assert created_from_relative("1 second ago", OBSERVED) == OBSERVED - timedelta(seconds=1)
    assert created_from_relative("Streamed 3 hours ago", OBSERVED) is None
    assert created_from_relative("2 days ago", OBSERVED) is None
    assert created_from_relative("Premiered Jan 3, 2025", OBSERVED) is None


# --- end to end: the CLI in its own process against the session replica ----------------------


def _files_and_rows(out: Path) -> tuple[list[Path], str]:
    con = duckdb_connect(out)
    cells = " ".join(str(row) for ds in ("snapshots", "posts", "rejects", "runs", "activity")
                     for row in con.execute(f"select * from {ds}").fetchall())
    return [p for p in out.rglob("*") if p.is_file()], cells


def _outcomes(out: Path) -> dict[tuple[str, str], tuple[str, str]]:
    con = duckdb_connect(out)
    [(outcomes,)] = con.execute("select outcomes from runs").fetchall()
    return {(o["platform"], o["tag"]): (o["status"], o["detail"]) for o in outcomes}


def _session_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    jar = tmp_path / "cookies.txt"
    jar.write_text(
        "# Netscape HTTP Cookie File\n"
        f"#HttpOnly_.instagram.com\tTRUE\t/\tTRUE\t0\tsessionid\t{SESSIONID}\n"
        f".youtube.com\tTRUE\t/\tTRUE\t0\tSOCS\t{SOCS}\n")
    return jar, {"TAGARCHIVE_BLUESKY_HANDLE": HANDLE,
                 "TAGARCHIVE_BLUESKY_APP_PASSWORD": APP_PASSWORD}


def test_four_platforms_store_ground_truth_and_keep_secrets(replica: ReplicaServer,
                                                            tmp_path: Path) -> None:
    world = replica.world
    world.set_variant("youtube", "tiktokrefugee", "hashtag_header")
    world.set_variant("youtube", "python", "page_header")
    world.set_variant("youtube", "python", "consent")  # passed by the SOCS cookie
    bluesky = replica.platforms["bluesky"]
    world.set_variant("bluesky", "python", "hits_total")  # 2023's answers: read, never stored
    assert not bluesky.gives_hits_total("tiktokrefugee")
    assert bluesky.gives_hits_total("python")
    replica.cookies_seen.clear()
    bluesky.logins_seen.clear()
    bluesky.tokens_seen.clear()
    jar, env = _session_env(tmp_path)
    out = tmp_path / "out"
    result = run_cli("crawl", PLATFORMS, "tiktokrefugee", "python", "--out", str(out),
                     "--replica", replica.url, "--delay", "0", "--concurrency", "4",
                     "--session", f"instagram={jar}", "--session", f"youtube={jar}",
                     "--log-level", "DEBUG", env=env)
    assert result.code == 0, result.stderr[-3000:]

    con = duckdb_connect(out)
    rows = {(r[0], r[1]): r for r in con.execute(
        "select platform, tag, posts, posts_semantics, participants, participants_semantics, "
        "tag_id, tag_display, source, posts_text, participants_text from snapshots").fetchall()}
    assert set(rows) == {(p, t) for p in PLATFORMS.split(",") for t in ("tiktokrefugee", "python")}
    for tag in ("tiktokrefugee", "python"):
        # YouTube: display text, stored as approximate, the truth to the text's precision
        row = rows[("youtube", tag)]
        truth = world.topic("youtube", tag)
        for got, text, exact in ((row[2], row[9], truth.posts), (row[4], row[10],
                                                                truth.participants)):
            assert got == parse_count(text).value <= exact < got + parse_count(text).step
        assert row[3] == "rounded"
        assert row[5] == "rounded"
        assert row[8] == "embedded_json"
        # Instagram: media_count, exact
        row = rows[("instagram", tag)]
        truth = world.topic("instagram", tag)
        assert (row[2], row[3], row[6]) == (truth.posts, "exact", truth.topic_id)
        # Mastodon: the sums over the seven history days, a count over that window
        days = world.daily("mastodon", tag)
        row = rows[("mastodon", tag)]
        assert (row[2], row[4]) == (sum(d.posts for d in days), sum(d.participants for d in days))
        assert row[3] == "window"
    # Bluesky: the posts (and distinct authors) indexed in the 24 h before the AppView's Date
    # (the world's clock), walked by cursor; python's hitsTotal is not what is stored
    windows = dict(((r[0], r[1]), r[2:]) for r in con.execute(
        "select platform, tag, window_start, window_end from snapshots").fetchall())
    for tag in ("tiktokrefugee", "python"):
        start, end = windows[("bluesky", tag)]
        assert (start, end) == (world.now() - timedelta(hours=24), world.now())
        posted = world.timeline("bluesky", tag, until=end, since=start, limit=10**6)
        row = rows[("bluesky", tag)]
        assert (row[2], row[3]) == (len(posted), "window")
        assert (row[4], row[5]) == (len({p.author_id for p in posted}), "window")
    assert rows[("bluesky", "python")][2] != world.topic("bluesky", "python").posts
    assert rows[("mastodon", "tiktokrefugee")][7] == "TikTokRefugee"

    # Mastodon's history: seven activity rows per tag, the right UTC days and counts
    stored = con.execute("select tag, day, posts, participants, coverage, source from activity "
                         "where platform = 'mastodon' order by tag, day desc").fetchall()
    for tag in ("python", "tiktokrefugee"):
        expected = [(tag, d.day.date(), d.posts, d.participants, "platform_reported", "api")
                    for d in world.daily("mastodon", tag)]
        assert [r for r in stored if r[0] == tag] == expected
    posts = dict(con.execute("select platform, count(*) from posts group by platform").fetchall())
    assert set(posts) == set(PLATFORMS.split(","))
    ig_ids = {p.id for p in world.posts_for("instagram", "tiktokrefugee", limit=12,
                                            order="newest")}
    stored_ig = {r[0] for r in con.execute(
        "select post_id from posts where platform = 'instagram' and tag = 'tiktokrefugee'")
        .fetchall()}
    assert ig_ids <= stored_ig

    # the secrets reached the platforms ...
    assert any(f"sessionid={SESSIONID}" in c for c in replica.cookies_seen)
    assert any(f"SOCS={SOCS}" in c for c in replica.cookies_seen)
    assert (HANDLE, APP_PASSWORD) in bluesky.logins_seen
    assert len(bluesky.tokens_seen) == 1  # one sign-in per run, its token on every search
    token = next(iter(bluesky.tokens_seen))
    # ... and were written nowhere: output, logs, Parquet, any file under --out
    files, cells = _files_and_rows(out)
    assert "tiktokrefugee" in cells
    # the raw archive is gzipped WARC: read it decompressed, or the check proves nothing
    raw = {path: gzip.decompress(path.read_bytes()) if path.suffix == ".gz"
           else path.read_bytes() for path in files}
    assert any(b"searchPosts" in data for path, data in raw.items() if path.suffix == ".gz")
    for secret in (SESSIONID, SOCS, APP_PASSWORD, token):
        assert secret not in result.stdout
        assert secret not in result.stderr
        assert secret not in cells
        for path, data in raw.items():
            assert secret.encode() not in data, path


FAILURES = {
    # tag: {platform: outcome}; a platform not named stores the tag
    "nosuchtag": dict.fromkeys(PLATFORMS.split(","), "not_found"),
    "walled": {"instagram": "login_wall", "mastodon": "login_wall", "bluesky": "login_wall"},
    "verify": {"youtube": "captcha", "instagram": "captcha"},
    "consented": {"youtube": "captcha"},
    "moved": dict.fromkeys(PLATFORMS.split(","), "layout_changed"),
    "busy": dict.fromkeys(PLATFORMS.split(","), "rate_limited"),
    "brief": {},
}


def test_failure_shapes_are_named(replica: ReplicaServer, tmp_path: Path) -> None:
    world = replica.world
    for tag, expected in FAILURES.items():
        for platform in PLATFORMS.split(","):
            if expected.get(platform) == "login_wall":
                world.set_variant(platform, tag, "login_wall")
            if expected.get(platform) == "captcha" and tag == "verify":
                world.set_variant(platform, tag, "captcha")
            if expected.get(platform) == "layout_changed":
                world.set_variant(platform, tag, "layout_changed")
            if expected.get(platform) == "rate_limited":
                world.set_variant(platform, tag, "rate_limited", times=50, retry_after=3600)
    world.set_variant("youtube", "consented", "consent")
    # one 429 without Retry-After (Mastodon's shape): backed off, retried, stored
    world.set_variant("mastodon", "brief", "rate_limited", times=1, retry_after=60)
    jar, env = _session_env(tmp_path)
    jar.write_text(jar.read_text().replace("SOCS", "OTHER"))  # no consent cookie this time
    out = tmp_path / "out"
    result = run_cli("crawl", PLATFORMS, *FAILURES, "--out", str(out), "--replica", replica.url,
                     "--delay", "0", "--concurrency", "4", "--session", f"instagram={jar}",
                     "--session", f"youtube={jar}", "-s", "TAGARCHIVE_BACKOFF_BASE=0.05",
                     # each failure of a platform named in one run: no breaker cooling it off
                     "-s", "TAGARCHIVE_BREAKER_ENABLED=False", env=env)
    assert result.code == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    got = _outcomes(out)
    for tag, expected in FAILURES.items():
        for platform in PLATFORMS.split(","):
            status = expected.get(platform, "stored")
            assert got[(platform, tag)][0] == status, (platform, tag, got[(platform, tag)])
            if status != "stored":
                assert f"tagarchive: {platform} {tag}: {status}:" in result.stderr
    detail = got[("mastodon", "busy")][1]
    assert "X-RateLimit 0/300" in detail
    assert "resets at" in detail
    assert "consent" in got[("youtube", "consented")][1]
    assert "unusual traffic" in got[("youtube", "verify")][1]
    assert "checkpoint" in got[("instagram", "verify")][1]
    assert "ExpiredToken" in got[("bluesky", "walled")][1]
    stored = {(r[0], r[1]) for r in duckdb_connect(out).execute(
        "select platform, tag from snapshots").fetchall()}
    assert stored == {k for k, (s, _d) in got.items() if s == "stored"}

"""A captcha is no refused signature (issue 14): real `tagarchive crawl` processes, real Chromium,
the replica's Xiaohongshu answering its captcha (HTTP 461 with `Verifytype`) to signed calls.

A refused signature (HTTP 406, `X-Kong-Sign: 1`) is signed again, by fresh pages, then rendered
(tests/test_signing_e2e.py); a captcha must not be: every one of those would ask the platform
again. Here the first signed call meets the captcha, its tag ends `captcha`, the platform breaker
opens, and nothing more is sent to Xiaohongshu, in this crawl or the next within the cool-off.
What reached the platform is the replica's own count of the requests it answered.
"""

from __future__ import annotations

from pathlib import Path

from replica.server import ReplicaServer
from replica.signing import SignerState
from tests.access_helpers import platform_hits
from tests.crawl_helpers import crawl, run_record

PLATFORM = "xiaohongshu"
TAGS = ("capa", "capb", "capc", "capd")
NOW = "2026-03-01T00:00:00Z"  # the breaker's clock stands still here (docs/access.md)


def _outcomes(out: Path) -> dict[tuple[str, str], tuple[str, str]]:
    return {(o["platform"], o["tag"]): (o["status"], o["detail"])
            for o in run_record(out)["outcomes"]}


def test_a_captcha_on_a_signed_call_trips_the_breaker_at_once(
        replica: ReplicaServer, signer: SignerState, tmp_path: Path) -> None:
    for tag in TAGS:
        replica.world.set_variant(PLATFORM, tag, "captcha")
        replica.world.set_variant("tiktok", tag, "ssr")  # the other platform, over HTTP
    out = tmp_path / "first"
    # one of a platform's requests past the breaker at a time (--concurrency 1): the documented
    # number that may follow a captcha is that many, so exactly one here
    result = crawl(replica, out, f"{PLATFORM},tiktok", *TAGS,
                   extra=("--concurrency", "1", "-s", f"TAGARCHIVE_BREAKER_NOW={NOW}"))
    assert result.code == 1, result.stderr[-3000:]

    hits = platform_hits(replica, PLATFORM)
    assert hits.get("search_topic") == 1, hits  # one signed call, never signed again
    assert "notes" not in hits, hits
    assert not {"search_page", "topic_page"} & set(hits), hits  # nothing rendered
    assert signer.state()["refused"] == {}  # the signature itself was good
    assert "signature refused" not in result.stderr
    assert "captcha answered to a signed request" in result.stderr

    got = _outcomes(out)
    assert all(got[("tiktok", t)][0] == "stored" for t in TAGS), got
    xhs = {t: got[(PLATFORM, t)] for t in TAGS}
    assert sorted(s for s, _d in xhs.values()) == ["captcha", *["cooling_off"] * (len(TAGS) - 1)]
    [(status, detail)] = [v for v in xhs.values() if v[0] == "captcha"]
    assert "Verifytype 102" in detail  # the replica's Verifytype
    for status, detail in xhs.values():
        if status == "cooling_off":  # 30 minutes after the trip (the documented default)
            assert detail.startswith("until 2026-03-01T00:30:00Z after captcha (trip 1)"), detail

    # a crawl within the cool-off sends Xiaohongshu nothing, not even a signing page
    replica.reset_hits()
    later = crawl(replica, out, PLATFORM, *TAGS,
                  extra=("-s", "TAGARCHIVE_BREAKER_NOW=2026-03-01T00:10:00Z"))
    assert later.code == 1
    assert platform_hits(replica, PLATFORM) == {}
    assert "Traceback" not in result.stderr + later.stderr


def test_with_two_at_once_at_most_two_calls_meet_the_captcha(
        replica: ReplicaServer, signer: SignerState, tmp_path: Path) -> None:
    """The default: two of a platform's requests past the breaker at once, so at most two
    signed calls, each answered once, before the platform is left alone."""
    tags = [f"captwo{i}" for i in range(6)]
    for tag in tags:
        replica.world.set_variant(PLATFORM, tag, "captcha")
    result = crawl(replica, tmp_path, PLATFORM, *tags,
                   extra=("--concurrency", "2", "-s", f"TAGARCHIVE_BREAKER_NOW={NOW}"))
    assert result.code == 1, result.stderr[-3000:]
    hits = platform_hits(replica, PLATFORM)
    assert 1 <= hits.get("search_topic", 0) <= 2, hits
    assert not {"notes", "search_page", "topic_page"} & set(hits), hits
    statuses = [s for (_p, _t), (s, _d) in _outcomes(tmp_path).items()]
    assert statuses.count("captcha") == hits["search_topic"]
    assert statuses.count("cooling_off") == len(tags) - hits["search_topic"]

"""Platforms declared in the TOML config: validated rules, crawled like a built-in."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from crawler.platforms.base import Captured, Outcome, Page, TagResult
from crawler.platforms.configured import SourceConfigError, build_platform, check_source
from crawler.platforms.configured_helper import RuleTimeout
from crawler.platforms.configured_rules import AmbiguousRule, parse_json_path
from crawler.text.tags import parse_tag_arg
from replica.server import ReplicaServer
from tests.crawl_helpers import crawl, run_cli

CONFIG = '''
[[source]]
name = "ttmirror"
title = "TikTok through rules"
url = "https://www.tiktok.com/tag/{tag}"
not_found_text = "Couldn't find this hashtag"
[source.counters.views]
json = '__DEFAULT_SCOPE__."webapp.challenge-detail".challengeInfo.stats.viewCount'
script = "script#__UNIVERSAL_DATA_FOR_REHYDRATION__"
[source.counters.posts]
css = 'h2[data-e2e="challenge-vvcount"]::text'
[source.tag_display]
css = 'h1[data-e2e="challenge-title"]::text'

[[source]]
name = "xhsmirror"
url = "https://www.xiaohongshu.com/search_result?keyword={tag}&type=topic"
render = true
capture = ["/web_api/sns/v1/search/topic"]
[source.counters.views]
json = "data.topic_info_dtos[0].view_num"
from_capture = "/web_api/sns/v1/search/topic"
'''


def test_config_sources_crawl_end_to_end(replica: ReplicaServer, tmp_path: Path) -> None:
    config = tmp_path / "tagarchive.toml"
    config.write_text(CONFIG)
    replica.world.set_variant("tiktok", "tiktokrefugee", "ssr")
    replica.world.set_variant("tiktok", "nosuchtag", "ssr")
    out = tmp_path / "out"
    result = crawl(replica, out, "ttmirror,xhsmirror", "tiktokrefugee", "nosuchtag",
                   extra=("--config", str(config),
                          "--base-url", f"ttmirror={replica.base_url('tiktok')}",
                          "--base-url", f"xhsmirror={replica.base_url('xiaohongshu')}"))
    assert result.code == 1, result.stderr[-2000:]  # nosuchtag is named, not stored
    assert "tagarchive: ttmirror nosuchtag: not_found" in result.stderr
    rows = {r[0]: r for r in duckdb.sql(
        f"select platform, tag, views, views_semantics, posts, posts_text, posts_semantics, "
        f"source, tag_display from read_parquet('{out}/snapshots/**/*.parquet', "
        f"hive_partitioning=true) where tag = 'tiktokrefugee'").fetchall()}
    tt = rows["ttmirror"]
    assert tt[2] == replica.world.topic("tiktok", "tiktokrefugee").views
    assert tt[3] == "exact"
    assert tt[6] == "rounded"
    assert tt[5].endswith("posts")
    assert tt[8] == "tiktokrefugee"
    xhs = rows["xhsmirror"]
    assert xhs[2] == replica.world.topic("xiaohongshu", "tiktokrefugee").views
    assert xhs[7] == "captured_xhr"


def test_platforms_lists_config_sources(tmp_path: Path) -> None:
    config = tmp_path / "tagarchive.toml"
    config.write_text(CONFIG)
    result = run_cli("platforms", "--config", str(config))
    assert result.code == 0
    assert "ttmirror" in result.stdout
    assert "xhsmirror" in result.stdout


def source(**overrides: object) -> dict:
    base = {"name": "forum", "url": "https://f.example/t/{tag}",
            "counters": {"views": {"css": "span.v::text"}}}
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (source(name="TikTok"), "source[0].name"),
        (source(name="tiktok"), "is a built-in platform"),
        (source(url="https://f.example/t/"), "source[0].url"),
        (source(url="ftp://f.example/{tag}"), "absolute http(s) URL"),
        (source(counters={}), "source[0].counters"),
        (source(counters={"likes": {"css": "a"}}), "source[0].counters.likes"),
        (source(counters={"views": {"css": "a", "json": "b"}}),
         "source[0].counters.views: give exactly one"),
        (source(counters={"views": {"css": "a[[["}}), "source[0].counters.views.css: invalid"),
        (source(counters={"views": {"xpath": "//a[("}}),
         "source[0].counters.views.xpath: invalid"),
        (source(counters={"views": {"json": "a..b"}}), "source[0].counters.views.json"),
        (source(counters={"views": {"json": "a", "from_capture": "/api"}}),
         "from_capture: needs render = true"),
        (source(render=True, capture=["("]), "source[0].capture[0]"),
        (source(extra=1), "unknown key 'extra'"),
        (source(url="http://user:hunter2@example.test/t/{tag}"),
         "source[0].url: must not carry credentials (user:password@)"),
        (source(counters={"views": {"css": "a", "pick": "join"}}),
         "source[0].counters.views.pick: one of one, first, last (a counter is never joined)"),
        (source(counters={"views": {"css": "a", "pick": 1}}), "source[0].counters.views.pick"),
        (source(counters={"views": {"json": "a", "pick": "first"}}),
         "source[0].counters.views.pick: only goes with css or xpath"),
        (source(tag_display={"css": "h1::text", "pick": "middle"}), "source[0].tag_display.pick"),
        (source(rule_timeout=0), "source[0].rule_timeout"),
        (source(rule_timeout=True), "source[0].rule_timeout"),
        (source(rule_timeout=1e9), "source[0].rule_timeout"),
        # nested repetition: exponential backtracking on a long URL
        (source(render=True, capture=["/api/", "(a+)+$"]),
         "source[0].capture[1]: '(a+)+$' repeats a repetition"),
        (source(render=True, capture=[r"^/api(/\w+)*$"]), "source[0].capture[0]"),
        (source(render=True, capture=[r"(.*,){12}x"]), "source[0].capture[0]"),
    ],
)
def test_invalid_rules_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(SourceConfigError) as info:
        check_source(raw, "source[0]", {"tiktok"})
    assert message in str(info.value)


def test_a_capture_pattern_too_slow_for_a_response_url_is_cut_off_and_named(
        caplog: pytest.LogCaptureFixture) -> None:
    from crawler.downloader.chromium import CAPTURE_MATCH_SECONDS, _Capture

    # alternation inside a repetition backtracks exponentially where config check's nested-repeat
    # rule cannot see it (plain `re` needs tens of seconds here); the other captures still work
    slow = _Capture(["(a|aa)+$"])
    with caplog.at_level(logging.WARNING, logger="crawler.downloader.chromium"):
        assert not slow.wants("http://x.test/" + "a" * 38 + "!")
    assert [r.getMessage() for r in caplog.records] == [
        f"a capture pattern took over {CAPTURE_MATCH_SECONDS} s on a response URL; not captured"]
    assert _Capture(["/api/"]).wants("http://x.test/api/topic")


def test_invalid_config_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[source]]\nname = "forum"\nurl = "https://f.example/{tag}"\n'
                      '[source.counters.views]\ncss = "a"\njson = "b"\n')
    result = run_cli("crawl", "forum", "x", "--config", str(config), "--out", str(tmp_path))
    assert result.code == 2
    assert "bad.toml: source[0].counters.views: give exactly one" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_paths() -> None:
    assert parse_json_path('a."b.c"[0][2].d', "x") == ["a", "b.c", 0, 2, "d"]
    assert parse_json_path("__DEFAULT_SCOPE__", "x") == ["__DEFAULT_SCOPE__"]


# --- several matches, time budgets, pathological patterns (issue 17) ---------------------------

AT = datetime(2026, 1, 10, 12, tzinfo=UTC)
TWO_COUNTS = ('<html><h1>forum tag</h1><div><span class="v">123</span>'
              '<span class="v">456</span></div></html>')
# every span counts the spans before it, and each of those counts its own: cubic, minutes on
# a few thousand spans
SLOW_XPATH = "//span[count(preceding::span[count(preceding::span) >= 0]) = 1999]/text()"
SLOW_PAGE = "<html><body>" + "<span>1</span>" * 2000 + "</body></html>"


def handle(raw: dict, text: str, captured: tuple[Captured, ...] = ()) -> TagResult:
    platform = build_platform(check_source(raw, "source[0]", {"tiktok"}))("https://m.example")
    tag = parse_tag_arg("sometag")
    fetch = platform.first_fetch(tag)
    page = Page(url=fetch.url, status=200, headers={}, text=text, observed_at=AT,
                rendered=bool(captured), captured=captured)
    return platform.handle(fetch.step, page, tag, {})


def test_a_counter_rule_matching_two_elements_is_an_error_naming_the_rule() -> None:
    with pytest.raises(AmbiguousRule) as info:
        handle(source(counters={"views": {"css": "span.v::text"}}), TWO_COUNTS)
    assert info.value.outcome == Outcome.LAYOUT_CHANGED
    assert str(info.value).startswith("forum.counters.views (css 'span.v::text') matched 2 "
                                      "elements ('123', '456')")
    with pytest.raises(AmbiguousRule, match=r"forum\.counters\.posts \(xpath"):
        handle(source(counters={"posts": {"xpath": "//span/text()"}}), TWO_COUNTS)


@pytest.mark.parametrize(("pick", "text"), [("first", "123"), ("last", "456")])
def test_pick_chooses_one_match(pick: str, text: str) -> None:
    result = handle(source(counters={"views": {"css": "span.v::text", "pick": pick}}),
                    TWO_COUNTS)
    assert result.snapshot["views_text"] == text
    # one match needs no pick, and gives the same value either way
    assert handle(source(), '<span class="v">123</span>').snapshot["views_text"] == "123"


def test_tag_display_joins_its_matches_unless_told_otherwise() -> None:
    page = '<span class="v">1</span><h1><b>a</b><b>b</b></h1>'
    joined = handle(source(tag_display={"css": "h1 b::text"}), page)
    assert joined.snapshot["tag_display"] == "a b"
    last = handle(source(tag_display={"css": "h1 b::text", "pick": "last"}), page)
    assert last.snapshot["tag_display"] == "b"


def test_a_slow_xpath_is_cut_off_at_the_rule_timeout() -> None:
    raw = source(rule_timeout=0.5, counters={"views": {"css": "span::text", "pick": "first"},
                                             "posts": {"xpath": SLOW_XPATH}})
    with pytest.raises(RuleTimeout) as info:
        handle(raw, SLOW_PAGE)
    assert info.value.outcome == Outcome.ERROR
    assert str(info.value).startswith(f"rule_timeout: forum.counters.posts (xpath "
                                      f"{SLOW_XPATH!r}) took longer than 0.5 s")
    # the helper is started again for the next page
    assert handle(raw | {"counters": {"views": {"css": "span.v::text"}}},
                  '<span class="v">7</span>').snapshot["views_text"] == "7"


def test_a_slow_from_capture_pattern_is_cut_off_at_the_rule_timeout() -> None:
    # overlapping alternatives: not a nested repeat, so the config check lets it through
    pattern = "(?:a|aa)+x$"
    raw = source(render=True, capture=[pattern], rule_timeout=0.3,
                 counters={"views": {"json": "n", "from_capture": pattern}})
    slow = Captured(url="https://m.example/" + "a" * 5000, status=200, headers={},
                    body='{"n": 1}')
    with pytest.raises(RuleTimeout, match=r"^rule_timeout: forum\.counters\.views\.from_capt"):
        handle(raw, "{}", (slow,))
    fine = Captured(url="https://m.example/aax", status=200, headers={}, body='{"n": 1}')
    assert handle(raw, "{}", (fine,)).snapshot["views"] == 1


def test_catastrophic_capture_pattern_is_refused_by_config_check(tmp_path: Path) -> None:
    config = tmp_path / "tagarchive.toml"
    config.write_text('[[source]]\nname = "forum"\nurl = "https://f.example/t/{tag}"\n'
                      'render = true\ncapture = ["(a+)+$"]\n'
                      '[source.counters.views]\njson = "n"\nfrom_capture = "(a+)+$"\n')
    result = run_cli("config", "check", "--config", str(config))
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Traceback" not in result.stderr
    assert f"{config}: source[0].capture[0]: '(a+)+$' repeats a repetition" in lines[0]


class _Forum(http.server.BaseHTTPRequestHandler):
    """Two tag pages: one with two view counts, one so big a cubic XPath takes minutes."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = {"/t/two": TWO_COUNTS, "/t/big": SLOW_PAGE}.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        data = (body or "not found").encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def forum() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forum)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


RULES_CONFIG = f'''
[[source]]
name = "strict"
url = "https://forum.example/t/{{tag}}"
[source.counters.views]
css = "span.v::text"

[[source]]
name = "picky"
url = "https://forum.example/t/{{tag}}"
[source.counters.views]
css = "span.v::text"
pick = "first"

[[source]]
name = "slow"
url = "https://forum.example/t/{{tag}}"
rule_timeout = 1
[source.counters.views]
xpath = "{SLOW_XPATH}"
'''


def test_crawl_names_ambiguous_and_slow_rules_and_stores_no_joined_number(
        forum: str, tmp_path: Path) -> None:
    config = tmp_path / "tagarchive.toml"
    config.write_text(RULES_CONFIG)
    out = tmp_path / "out"
    bases = [arg for name in ("strict", "picky", "slow") for arg in ("--base-url",
                                                                    f"{name}={forum}")]
    result = run_cli("crawl", "strict,picky,slow", "two", "big", "--out", str(out),
                     "--config", str(config), "--delay", "0", *bases)
    assert result.code == 1, result.stderr[-2000:]
    assert ("tagarchive: strict two: layout_changed: strict.counters.views (css 'span.v::text') "
            "matched 2 elements ('123', '456')") in result.stderr
    assert "tagarchive: slow big: error: rule_timeout: slow.counters.views (xpath" in result.stderr
    rows = duckdb.sql(f"select platform, views, views_semantics from read_parquet("
                      f"'{out}/snapshots/**/*.parquet', hive_partitioning=true)").fetchall()
    assert rows == [("picky", 123, "exact")]  # never 123456

"""Hostile JSON in a platform's answer, through the real spider against the replica (issue 17).

A page or API answer can hold what `json.loads` or `int()` cannot take: nesting 100,000 deep
(RecursionError), a counter "²" (passes `str.isdigit()`, `int()` refuses it), a 5,000-digit
number (past `int()`'s 4,300-digit limit). Each ends that tag `layout_changed` with a detail
naming what was wrong; the other tags of the same crawl are stored exactly, the run exits 1, and
stderr carries no traceback. The replica serves each hostile body byte for byte (the `body`
fault, replica/faults.py), built from its own answer for the tag so only the hostile part differs.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crawler.platforms.base import (
    AdapterFailed,
    Captured,
    LayoutChanged,
    NotFound,
    Page,
    Platform,
    UnknownStep,
    UnreadableJSON,
    decode_json_at,
    guarded_handle,
    load_json,
)
from crawler.text.counts import digit_string_value, parse_count
from crawler.text.tags import TagRef
from crawler.text.timestamps import TimestampError, from_epoch_millis, from_epoch_seconds
from replica.server import ReplicaServer
from tests.crawl_helpers import crawl, outcomes, run_record, snapshots

DEEP = 100_000
DEEP_ARRAY = "[" * DEEP + "]" * DEEP
FIVE_THOUSAND = "1" * 5000
OK = "hostileok"
_UNIVERSAL = re.compile(
    r'(<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">)(.*?)(</script>)',
    re.S)


def _answer(replica: ReplicaServer, target: str) -> str:
    status, _headers, body = replica.dispatch("GET", target, {}, b"")
    assert status == 200, (target, status)
    return body.decode("utf-8")


def _tiktok_page(replica: ReplicaServer, tag: str, spoil: Any) -> str:
    """The replica's SSR page for `tag`, its rehydration JSON text passed through `spoil`."""
    page = _answer(replica, f"/tiktok/tag/{tag}")
    match = _UNIVERSAL.search(page)
    assert match is not None
    return page[: match.start(2)] + spoil(match.group(2)) + page[match.end(2):]


def _stats_v2(value: str) -> Any:
    def spoil(raw: str) -> str:
        data = json.loads(raw)
        info = data["__DEFAULT_SCOPE__"]["webapp.challenge-detail"]["challengeInfo"]
        assert isinstance(info["stats"]["viewCount"], int)  # the int is there; statsV2 is read
        info["statsV2"]["viewCount"] = value
        return json.dumps(data, ensure_ascii=False)
    return spoil


def _deep_json(raw: str) -> str:
    """Well-formed JSON with one more key, an array nested DEEP levels."""
    assert raw.startswith("{")
    return '{"deep":' + DEEP_ARRAY + "," + raw[1:]


def _mastodon_tag(replica: ReplicaServer, tag: str, uses: str) -> str:
    entity = json.loads(_answer(replica, f"/mastodon/api/v1/tags/{tag}"))
    entity["history"][0]["uses"] = uses
    return json.dumps(entity, ensure_ascii=False)


def _bilibili_search(replica: ReplicaServer, tag: str) -> str:
    return _answer(replica, f"/bilibili/x/topic/pub/search?keywords={tag}&page_size=20"
                            "&page_num=1&offset=0")


def test_hostile_json_is_layout_changed_by_name_and_the_other_tags_are_stored_exactly(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    world, faults = replica.world, replica.faults
    tags = ("hostiledeep", "hostilesup", "hostiledigits", "hostileshape", OK)
    for tag in tags:
        world.set_variant("tiktok", tag, "ssr")
    tiktok = {
        "hostiledeep": _tiktok_page(replica, "hostiledeep", _deep_json),
        "hostilesup": _tiktok_page(replica, "hostilesup", _stats_v2("²")),
        "hostiledigits": _tiktok_page(replica, "hostiledigits", _stats_v2(FIVE_THOUSAND)),
        # a shape no check in the adapter expects: only the spider's safety net names it
        "hostileshape": _tiktok_page(replica, "hostileshape",
                                     lambda raw: raw.replace('"challenge":{', '"challenge":[{', 1)
                                     .replace('},"stats"', '}],"stats"', 1)),
    }
    mastodon = {
        "hostiledeep": _deep_json(_answer(replica, "/mastodon/api/v1/tags/hostiledeep")),
        "hostilesup": _mastodon_tag(replica, "hostilesup", "²"),
        "hostiledigits": _mastodon_tag(replica, "hostiledigits", FIVE_THOUSAND),
    }
    search = json.loads(_bilibili_search(replica, "hostilesup"))
    search["data"]["topic_items"][0]["id"] = "²"  # passes str.isdigit(): not a topic id
    bilibili = {
        "hostiledeep": _deep_json(_bilibili_search(replica, "hostiledeep")),
        "hostilesup": json.dumps(search, ensure_ascii=False),
        # a JSON number past int()'s limit: the whole answer is unreadable
        "hostiledigits": _bilibili_search(replica, "hostiledigits").replace(
            '"code":0', f'"code":0,"huge":{FIVE_THOUSAND}', 1),
    }
    for tag, body in tiktok.items():
        faults.add("body", f"/tiktok/tag/{tag}", times=0, body=body)
    for tag, body in mastodon.items():
        faults.add("body", f"/mastodon/api/v1/tags/{tag}", times=0, body=body)
    for tag, body in bilibili.items():
        faults.add("body", f"/x/topic/pub/search?keywords={tag}&", times=0, body=body)

    result = crawl(replica, tmp_path, "tiktok,mastodon,bilibili", *tags)

    assert result.code == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    got = outcomes(tmp_path)
    expected = {
        ("tiktok", "hostiledeep"): "unreadable JSON: nesting too deep",
        ("tiktok", "hostilesup"): "statsV2.viewCount: counter '²' is not a number",
        ("tiktok", "hostiledigits"): "statsV2.viewCount: counter '1111",
        ("tiktok", "hostileshape"): "the adapter could not read the page: AttributeError: ",
        ("mastodon", "hostiledeep"): "unreadable JSON: nesting too deep",
        ("mastodon", "hostilesup"): "history[0].uses is not a count: '²'",
        ("mastodon", "hostiledigits"): "history[0].uses is not a count: '1111",
        ("bilibili", "hostiledeep"): "unreadable JSON: nesting too deep",
        ("bilibili", "hostilesup"): "topic search item has no numeric id: '²'",
        ("bilibili", "hostiledigits"): "unreadable JSON: a number longer than 4300 digits",
    }
    for (platform, tag), detail in expected.items():
        assert got[(platform, tag)] == "layout_changed", (platform, tag, got)
        line = f"tagarchive: {platform} {tag}: layout_changed: {detail}"
        assert line in result.stderr, (line, result.stderr[-3000:])
    # every detail is short: the 5,000 digits are not printed back
    assert FIVE_THOUSAND[:100] not in result.stderr
    # the safety net logged its one line, naming where the adapter broke
    assert result.stderr.count("tiktok hostileshape: step 'tag_page' at crawler/platforms/") == 1

    # the same crawl stored every other tag, exactly
    stored = {(p, t) for (p, t), status in got.items() if status == "stored"}
    assert stored == {("tiktok", OK), ("mastodon", OK), ("mastodon", "hostileshape"),
                      ("bilibili", OK), ("bilibili", "hostileshape")}
    rows = {(r["platform"], r["tag"]): r for r in snapshots(tmp_path)}
    assert set(rows) == stored
    for (platform, tag), row in rows.items():
        if platform == "mastodon":
            days = world.daily("mastodon", tag)
            assert (row["posts"], row["participants"]) == (
                sum(d.posts for d in days), sum(d.participants for d in days))
            continue
        truth = world.topic(platform, tag)
        counters = ("views", "posts") if platform == "tiktok" else ("views", "posts",
                                                                    "discussions")
        for counter in counters:
            assert row[counter] == getattr(truth, counter), (platform, tag, counter)
            # TikTok's integers are its display-rounded figures (crawler/platforms/tiktok.py)
            said = "rounded" if platform == "tiktok" else "exact"
            assert row[f"{counter}_semantics"] == said
    assert run_record(tmp_path)["verdict"] == "failed"


# --- the shared helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("1143000", 1143000),
    ("0", 0),
    ("9" * 20, 10**20 - 1),  # above int64: still a number, refused later by validation
    ("²", None),  # str.isdigit() passes it; int() refuses it
    ("①", None),
    ("١٢٣", None),  # Arabic-Indic digits: int() reads them, no platform prints them
    ("１２３", None),  # full-width: counter text, for parse_count (below)
    ("9" * 21, None),
    (FIVE_THOUSAND, None),  # int() would raise: past the 4,300-digit limit
    ("", None),
    (" 12", None),
    ("-12", None),
    ("1,234", None),
    (12, None),
])
def test_digit_strings_are_ascii_digits_and_bounded(text: Any, value: int | None) -> None:
    assert digit_string_value(text) == value


def test_full_width_digits_stay_valid_counter_text() -> None:
    assert parse_count("１２３").value == 123
    assert parse_count("１．２万").value == 12_000


def test_load_json_names_hostile_json_and_leaves_malformed_json_to_the_adapter() -> None:
    with pytest.raises(UnreadableJSON, match="^unreadable JSON: nesting too deep$"):
        load_json(DEEP_ARRAY)
    with pytest.raises(UnreadableJSON, match="a number longer than 4300 digits"):
        load_json('{"views": ' + FIVE_THOUSAND + "}")
    with pytest.raises(json.JSONDecodeError):
        load_json("{not json")
    assert load_json('{"views": 12, "s": "²"}') == {"views": 12, "s": "²"}
    assert isinstance(UnreadableJSON("x"), LayoutChanged)
    text = "var ytInitialData = " + DEEP_ARRAY + ";"
    with pytest.raises(UnreadableJSON, match="nesting too deep"):
        decode_json_at(text, text.index("["))
    assert decode_json_at('x = {"a": 1};', 4) == {"a": 1}


def test_captured_json_is_none_when_malformed_and_named_when_hostile() -> None:
    def cap(body: str) -> Captured:
        return Captured(url="https://x/api", status=200, headers={}, body=body)

    assert cap("").json() is None
    assert cap("<html>blocked</html>").json() is None
    with pytest.raises(UnreadableJSON, match="nesting too deep"):
        cap(DEEP_ARRAY).json()


@pytest.mark.parametrize("value", ["²", FIVE_THOUSAND, "１７３６８９９２００", 10**19, -10**15,
                                   1e300, "9" * 4000])
def test_epoch_times_refuse_hostile_values_by_name(value: Any) -> None:
    with pytest.raises(TimestampError):
        from_epoch_seconds(value)
    with pytest.raises(TimestampError):
        from_epoch_millis(value)


# --- the spider's safety net ------------------------------------------------------------------


class _Breaks(Platform):
    name = "breaks"
    title = "Breaks"
    default_base_url = "https://breaks.invalid"

    def on_divide(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Any:
        return 1 // 0

    def on_missing(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Any:
        raise NotFound("no such tag")

    def on_interrupt(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Any:
        raise KeyboardInterrupt


PAGE = Page(url="https://breaks.invalid/t", status=200, headers={}, text="",
            observed_at=datetime(2026, 1, 10, tzinfo=UTC))
TAG = TagRef(name="t", id=None)


def test_guarded_handle_turns_an_unexpected_exception_into_layout_changed_naming_it() -> None:
    with pytest.raises(AdapterFailed) as caught:
        guarded_handle(_Breaks(), "divide", PAGE, TAG, {})
    assert caught.value.outcome == "layout_changed"
    assert caught.value.detail == ("the adapter could not read the page: ZeroDivisionError: "
                                   "integer division or modulo by zero")
    assert caught.value.where.endswith(" in on_divide")
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    # named failures, an unknown step and a Ctrl-C pass through unchanged
    with pytest.raises(NotFound):
        guarded_handle(_Breaks(), "missing", PAGE, TAG, {})
    with pytest.raises(UnknownStep):
        guarded_handle(_Breaks(), "nosuchstep", PAGE, TAG, {})
    with pytest.raises(KeyboardInterrupt):
        guarded_handle(_Breaks(), "interrupt", PAGE, TAG, {})


def test_the_spider_reports_an_adapter_crash_as_that_pages_layout_changed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from scrapy.http import HtmlResponse, Request
    from scrapy.utils.test import get_crawler

    from crawler.extensions.runrecord import RunState, TagJob
    from crawler.signals import tag_outcome
    from crawler.spiders.snapshot import SnapshotSpider

    spider = SnapshotSpider(run=RunState(out="unused", jobs=[TagJob("breaks", TAG)]))
    spider.crawler = get_crawler(SnapshotSpider)
    # as the run record extension passes every outcome on to the run
    spider.crawler.signals.connect(spider.run.set_outcome, signal=tag_outcome)
    spider.adapters = {"breaks": _Breaks()}
    job = {"platform": "breaks", "name": "t", "id": None, "step": "divide", "state": {}}
    response = HtmlResponse(url=PAGE.url, body=b"<html></html>", encoding="utf-8",
                            request=Request(PAGE.url, meta={"tagarchive_job": job}))
    with caplog.at_level(logging.WARNING, logger="crawler.spiders.snapshot"):
        assert list(spider.on_page(response)) == []
    status, detail = spider.run.outcomes[("breaks", "t")]
    assert status == "layout_changed"
    assert detail.startswith("the adapter could not read the page: ZeroDivisionError")
    records = [r for r in caplog.records if r.name == "crawler.spiders.snapshot"]
    assert len(records) == 1
    assert records[0].exc_info is None
    assert "breaks t: step 'divide' at " in records[0].getMessage()
    assert spider.crawler.stats.get_value("tagarchive/outcome/layout_changed") == 1

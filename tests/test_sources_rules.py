"""A config-defined source's rules on their own: picking a match, reading JSON, the helper."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crawler.platforms.base import Page
from crawler.platforms.configured_helper import HELPER, RuleFailed
from crawler.platforms.configured_rules import (
    AmbiguousRule,
    Rule,
    choose,
    extract,
    select_all,
    walk,
)


def _page(text: str) -> Page:
    return Page(url="https://forum.example.org/tags/cats", status=200, headers={}, text=text,
                observed_at=datetime(2026, 1, 2, tzinfo=UTC))


def test_choose_takes_one_match_as_the_rule_picks() -> None:
    counter = Rule(kind="css", expr="b::text", where="forum.counters.views")
    assert choose(counter, []) is None
    assert choose(counter, ["12"]) == "12"
    with pytest.raises(AmbiguousRule, match="matched 2 elements .* a counter takes one"):
        choose(counter, ["12", "34"])
    for pick, value in (("first", "12"), ("last", "34"), ("join", "12 34")):
        assert choose(Rule(kind="css", expr="b::text", pick=pick), ["12", "34"]) == value


def test_walk_follows_keys_and_indexes_and_stops_at_a_mismatch() -> None:
    data = {"a": [{"b.c": 7}]}
    assert walk(data, ["a", 0, "b.c"]) == 7
    assert walk(data, ["a", 1, "b.c"]) is None
    assert walk(data, ["a", "b"]) is None


def test_rules_read_a_page_through_the_helper() -> None:
    page = _page('<p><b> 1.2万 </b></p><script id="d">{"stats": {"people": 42}}</script>')
    css = Rule(kind="css", expr="b::text", where="forum.counters.views")
    embedded = Rule(kind="json", expr="stats.people", script="script#d",
                    where="forum.counters.participants")
    selected = select_all([css, embedded], page, 5.0)
    assert extract(css, page, selected, 5.0) == ("1.2万", None)
    assert extract(embedded, page, selected, 5.0) == (42, "embedded_json")


def test_the_helper_answers_each_query_and_restarts_after_a_failure() -> None:
    text = "<p><b>1</b><b> </b><b>2</b></p>"
    assert HELPER.evaluate(text, [("css", "b::text", "b"), ("xpath", "//p/@id", "id")],
                           5.0) == [["1", "2"], []]
    with pytest.raises(RuleFailed, match="^bad: "):
        HELPER.evaluate(text, [("xpath", "//p[", "bad")], 5.0)
    assert HELPER.evaluate(text, [("css", "b::text", "b")], 5.0) == [["1", "2"]]

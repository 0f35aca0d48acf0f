"""The rules of config-defined sources: what they are, and reading one value from a page.

css/xpath rules run in the helper process (crawler/platforms/configured_helper.py) within the
source's `rule_timeout`; `from_capture` patterns run with the `regex` package's timeout; a css or
xpath rule matching several elements takes one by its `pick`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import regex

from crawler.platforms.base import LayoutChanged, Page
from crawler.platforms.configured_helper import HELPER, Query, RuleTimeout

_SEGMENT = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^."\[\]]+))\s*((?:\[\d+\])*)\s*')


class SourceConfigError(ValueError):
    """A `[[source]]` that cannot work; the message names the file and key."""


class AmbiguousRule(LayoutChanged):
    """A counter rule matched several elements and says nothing about which one to take."""



@dataclass(frozen=True)
class Rule:
    """How to read one counter (or the tag's display name) from a page or a captured response."""

    kind: str
    expr: str
    script: str | None = None
    from_capture: str | None = None
    # the rule's name in messages at crawl time: "<source>.counters.views"
    where: str = ""
    # css/xpath only: which match to take when several do (see COUNTER_PICKS, DISPLAY_PICKS)
    pick: str = "one"

    def describe(self) -> str:
        return f"{self.where} ({self.kind} {self.expr!r})"


def parse_json_path(path: str, where: str) -> list[str | int]:
    """'a."b.c"[0].d' -> ['a', 'b.c', 0, 'd']."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if match is None or match.end() == pos:
            raise SourceConfigError(f"{where}: cannot read JSON path {path!r} at {pos}")
        steps.append(match.group(1) if match.group(1) is not None else match.group(2))
        steps.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(3)))
        pos = match.end()
        if pos < len(path):
            if path[pos] != ".":
                raise SourceConfigError(f"{where}: expected '.' at {pos} in {path!r}")
            pos += 1
    if not steps:
        raise SourceConfigError(f"{where}: empty JSON path")
    return steps


def walk(data: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if not isinstance(data, list) or step >= len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[step] if isinstance(step, int) else data.get(step)
    return data



def _queries(rule: Rule) -> list[Query]:
    if rule.kind in ("css", "xpath"):
        return [(rule.kind, rule.expr, rule.describe())]
    if rule.script and rule.from_capture is None:
        return [("css", rule.script + "::text", f"{rule.where}.script ({rule.script!r})")]
    return []


def select_all(rules: list[Rule], page: Page, budget: float) -> dict[tuple[str, str], list[str]]:
    """The stripped, non-blank texts every css/xpath of these rules selects on the page, each
    rule within `budget` seconds (RuleTimeout names the one that overran)."""
    queries = list({(kind, expr): (kind, expr, what)
                    for rule in rules for kind, expr, what in _queries(rule)}.values())
    if not queries:
        return {}
    answers = HELPER.evaluate(page.text, queries, budget)
    return {(kind, expr): texts for (kind, expr, _), texts in zip(queries, answers, strict=True)}


def choose(rule: Rule, texts: list[str]) -> str | None:
    """The one value of a css/xpath rule from what it matched, as its `pick` says."""
    if not texts:
        return None
    if len(texts) == 1 or rule.pick == "first":
        return texts[0]
    if rule.pick == "last":
        return texts[-1]
    if rule.pick == "join":
        return " ".join(texts)
    shown = ", ".join(repr(t[:20]) for t in texts[:3]) + (", …" if len(texts) > 3 else "")
    what = "a counter" if ".counters." in rule.where else "this rule"
    raise AmbiguousRule(f"{rule.describe()} matched {len(texts)} elements ({shown}); {what} "
                        f"takes one: narrow the rule, or set pick = \"first\" or \"last\"")


def extract(rule: Rule, page: Page, selected: dict[tuple[str, str], list[str]],
            budget: float) -> tuple[Any, str | None]:
    """(value, source) for one rule; value None when the rule matched nothing.

    `selected` holds what select_all() found for the page's css/xpath queries. Pages are parsed
    as HTML whatever they hold: parsel would take a JSON body for JSON and refuse css/xpath on
    it, where a changed page must read as "no rule matched"."""
    if rule.kind in ("css", "xpath"):
        value = choose(rule, selected[(rule.kind, rule.expr)])
        return value, ("rendered_dom" if page.rendered else None)
    steps = parse_json_path(rule.expr, "json")
    if rule.from_capture is not None:
        for cap in reversed(_captured(rule, page, budget)):
            value = walk(cap.json(), steps)
            if value is not None:
                return value, "captured_xhr"
        return None, None
    raw: str | None = page.text
    if rule.script:
        # the first element the script selector matches, as documented
        texts = selected[("css", rule.script + "::text")]
        raw = texts[0] if texts else None
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None, None
    return walk(data, steps), ("embedded_json" if rule.script else "api")


_PATTERNS: dict[str, Any] = {}


def _captured(rule: Rule, page: Page, budget: float) -> list[Any]:
    """The page's captured responses whose URL matches `from_capture`, within the budget."""
    pattern = _PATTERNS.get(rule.from_capture or "")
    if pattern is None:
        pattern = _PATTERNS.setdefault(rule.from_capture or "", regex.compile(rule.from_capture))
    deadline = time.monotonic() + budget
    kept = []
    for cap in page.captured:
        try:
            if pattern.search(cap.url, timeout=max(deadline - time.monotonic(), 0.001)):
                kept.append(cap)
        except TimeoutError:
            raise RuleTimeout(f"rule_timeout: {rule.where}.from_capture ({rule.from_capture!r}) "
                              f"took longer than {budget:g} s on this page's captured URLs "
                              f"and was stopped") from None
    return kept

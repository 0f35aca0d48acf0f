"""Normalize: canonical tag, counters parsed from display text, exact values kept exact."""

from __future__ import annotations

from typing import Any

from crawler.counts import CountParseError, parse_count
from crawler.items import (
    ACTIVITY_COUNTERS,
    COUNTERS,
    POST_COUNTERS,
    ActivityItem,
    PageItems,
    PostItem,
    SnapshotItem,
)
from crawler.tags import InvalidTagError, normalize_tag
from pipelines import RunPipeline

Normalized = tuple[Any, str | None, bool | None, str | None]


def normalize_counter(value: Any, text: str | None) -> Normalized:
    """(value, display text, approximate, problem) for one counter.

    An exact integer (int, or a digit string such as TikTok's statsV2) always wins over display
    text; text is parsed only when no exact value exists.
    """
    if isinstance(value, bool):
        return value, text, None, f"counter is a boolean ({value!r})"
    if isinstance(value, int):
        return value, text, False, None
    if isinstance(value, str):
        text, value = value, None
    if value is not None:
        return value, text, None, f"counter is not an integer ({value!r})"
    if text is None:
        return None, None, None, None
    try:
        parsed = parse_count(text)
    except CountParseError as exc:
        return None, text, None, str(exc)
    if not parsed.approximate:
        return parsed.value, None, False, None
    return parsed.value, text, True, None


class NormalizePipeline(RunPipeline):
    """First pipeline: puts every item into its canonical form, noting what cannot be."""

    # Tags already normalized, raw -> canonical. Every post of a page carries the page's tag,
    # and normalize_tag (NFKC, regexes, a scan per character) is a pure function of the string.
    _TAG_MEMO_LIMIT = 4096

    def _normalize_tag(self, raw: Any) -> str:
        if type(raw) is not str:  # a wrong type still raises normalize_tag's own error
            return normalize_tag(raw)
        memo: dict[str, str] = self.__dict__.setdefault("_tag_memo", {})
        known = memo.get(raw)
        if known is None:
            known = normalize_tag(raw)  # an invalid tag raises every time: never memoized
            if len(memo) >= self._TAG_MEMO_LIMIT:
                memo.clear()
            memo[raw] = known
        return known

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            return self.each(item, self.process_item)
        if isinstance(item, SnapshotItem):
            for name in COUNTERS:
                value, text, approx, problem = normalize_counter(
                    getattr(item, name), getattr(item, f"{name}_text"))
                setattr(item, name, value)
                setattr(item, f"{name}_text", text)
                # an adapter may know an integer is rounded (Bluesky's hitsTotal): keep its word
                if getattr(item, f"{name}_approx") is not True:
                    setattr(item, f"{name}_approx", approx)
                if problem:
                    item.problems.append(f"{name}: {problem}")
        elif isinstance(item, PostItem | ActivityItem):
            names = POST_COUNTERS if isinstance(item, PostItem) else ACTIVITY_COUNTERS
            for name in names:
                value, _text, _approx, problem = normalize_counter(getattr(item, name), None)
                setattr(item, name, value)
                if problem:
                    item.problems.append(f"{name}: {problem}")
        if isinstance(item, SnapshotItem | PostItem | ActivityItem) and item.tag is not None:
            try:
                item.tag = self._normalize_tag(item.tag)
            except InvalidTagError as exc:
                item.problems.append(f"tag: {exc}")
        return item

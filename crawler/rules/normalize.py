"""Normalize: canonical tag, counters parsed from display text, exact values kept exact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crawler.items import (
    ACTIVITY_COUNTERS,
    COUNTERS,
    POST_COUNTERS,
    ActivityItem,
    PostItem,
    SnapshotItem,
)
from crawler.text.counts import CountParseError, parse_count
from crawler.text.tags import InvalidTagError, normalize_tag

Normalized = tuple[Any, str | None, bool | None, str | None]
# counter -> its display-text and semantics columns
_COLUMNS = {name: (f"{name}_text", f"{name}_approx")
            for name in (*COUNTERS, *POST_COUNTERS, *ACTIVITY_COUNTERS)}


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


def normalize_counters(item: Any, names: tuple[str, ...], *, with_text: bool) -> None:
    """Normalize each named counter of an item in place, with its semantics in `<name>_approx`.

    Every stored counter carries how it was read: false for an exact integer, true for a value
    parsed from rounded display text, null only when there is no value. Snapshots also keep the
    display text (`<name>_text`); posts and activity rows have no text column.
    """
    for name in names:
        text_name, approx_name = _COLUMNS[name]
        text = getattr(item, text_name) if with_text else None
        value, text, approx, problem = normalize_counter(getattr(item, name), text)
        setattr(item, name, value)
        if with_text:
            setattr(item, text_name, text)
        # an adapter may know an integer is rounded (Bluesky's hitsTotal): keep its word
        if getattr(item, approx_name) is not True or value is None:
            setattr(item, approx_name, approx)
        if problem:
            item.problems.append(f"{name}: {problem}")


class TagMemo:
    """normalize_tag with a memo of the tags already normalized, raw -> canonical.

    Every post of a page carries the page's tag, and normalize_tag (NFKC, regexes, a scan per
    character) is a pure function of the string.
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def __call__(self, raw: Any) -> str:
        if type(raw) is not str:  # a wrong type still raises normalize_tag's own error
            return normalize_tag(raw)
        known = self.known.get(raw)
        if known is None:
            known = normalize_tag(raw)  # an invalid tag raises every time: never memoized
            if len(self.known) >= self.LIMIT:
                self.known.clear()
            self.known[raw] = known
        return known


def normalize_item(item: Any, tag_rule: Callable[[Any], str] = normalize_tag) -> Any:
    """Put one item into its canonical form in place, noting in `problems` what cannot be."""
    if isinstance(item, SnapshotItem):
        normalize_counters(item, COUNTERS, with_text=True)
    elif isinstance(item, PostItem):
        normalize_counters(item, POST_COUNTERS, with_text=False)
    elif isinstance(item, ActivityItem):
        normalize_counters(item, ACTIVITY_COUNTERS, with_text=False)
    if isinstance(item, SnapshotItem | PostItem | ActivityItem) and item.tag is not None:
        try:
            item.tag = tag_rule(item.tag)
        except InvalidTagError as exc:
            item.problems.append(f"tag: {exc}")
    return item

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
from crawler.text.hashtags import hashtags_in
from crawler.text.language import detect_language
from crawler.text.tags import InvalidTagError, normalize_tag
from storage.schemas import SEMANTICS as STORED_SEMANTICS

Normalized = tuple[Any, str | None, str | None, str | None]
# counter -> its display-text and semantics columns
_COLUMNS = {name: (f"{name}_text", f"{name}_semantics")
            for name in (*COUNTERS, *POST_COUNTERS, *ACTIVITY_COUNTERS)}
# what an adapter may say a counter is (checked again at storage)
SEMANTICS = frozenset(STORED_SEMANTICS)


def normalize_counter(value: Any, text: str | None) -> Normalized:
    """(value, display text, semantics, problem) for one counter.

    An exact integer (int, or a digit string such as TikTok's statsV2) always wins over display
    text; text is parsed only when no exact value exists.
    """
    if isinstance(value, bool):
        return value, text, None, f"counter is a boolean ({value!r})"
    if isinstance(value, int):
        return value, text, "exact", None
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
        return parsed.value, None, "exact", None
    return parsed.value, text, "rounded", None


def normalize_counters(item: Any, names: tuple[str, ...], *, with_text: bool) -> None:
    """Normalize each named counter of an item in place, with what it is in `<name>_semantics`.

    By default an integer is `exact` and a value parsed from display text `rounded` (or `exact`
    when the text is); an adapter that knows better (an integer the platform rounds, a window
    count, a lower bound) has set `<name>_semantics` itself, and its word is kept while there is
    a value. `capped` keeps no value: the figure stays in the text column. Snapshots also keep
    the display text (`<name>_text`); posts and activity rows have no text column.
    """
    for name in names:
        text_name, semantics_name = _COLUMNS[name]
        said = getattr(item, semantics_name)
        value = getattr(item, name)
        if type(value) is int and said != "capped":
            # the usual counter, an exact integer: normalize_counter would keep it and its
            # text as they are; only what it is may need saying
            if said is None:
                setattr(item, semantics_name, "exact")
                continue
            if said in SEMANTICS:
                continue
        text = getattr(item, text_name) if with_text else None
        if said == "capped":
            # a saturated figure is not a count: never stored as the value
            capped = getattr(item, name)
            setattr(item, name, None)
            if with_text and text is None and capped is not None:
                setattr(item, text_name, str(capped))
            continue
        value, text, semantics, problem = normalize_counter(value, text)
        setattr(item, name, value)
        if with_text:
            setattr(item, text_name, text)
        if said is not None and said not in SEMANTICS:
            problem = problem or f"semantics {said!r} is not one of {', '.join(sorted(SEMANTICS))}"
        elif said is not None and value is not None:
            semantics = said
        setattr(item, semantics_name, semantics)
        if problem:
            item.problems.append(f"{name}: {problem}")


def describe_text(post: PostItem, texts: bool = True) -> None:
    """A post's language (detected, with confidence) and hashtags, from its text, unless the
    adapter set them; the platform's own language label stays in `lang_platform`. Without
    `texts`, language and hashtags are left to the caller (a crawl's store pipeline finds them
    in a second process, pipelines/store.py)."""
    if texts and post.lang is None and isinstance(post.text, str):
        post.lang, post.lang_confidence = detect_language(post.text)
    if texts and post.hashtags is None and isinstance(post.text, str):
        post.hashtags = hashtags_in(post.text)
    if isinstance(post.lang_platform, str):
        post.lang_platform = post.lang_platform.strip().lower()[:16] or None


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


def normalize_item(item: Any, tag_rule: Callable[[Any], str] = normalize_tag, *,
                   texts: bool = True) -> Any:
    """Put one item into its canonical form in place, noting in `problems` what cannot be;
    without `texts`, a post's language and hashtags are left for the caller to find."""
    if isinstance(item, SnapshotItem):
        normalize_counters(item, COUNTERS, with_text=True)
    elif isinstance(item, PostItem):
        normalize_counters(item, POST_COUNTERS, with_text=False)
        describe_text(item, texts)
    elif isinstance(item, ActivityItem):
        normalize_counters(item, ACTIVITY_COUNTERS, with_text=False)
    if isinstance(item, SnapshotItem | PostItem | ActivityItem) and item.tag is not None:
        try:
            item.tag = tag_rule(item.tag)
        except InvalidTagError as exc:
            item.problems.append(f"tag: {exc}")
    return item

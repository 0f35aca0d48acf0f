"""The hashtags a post's text carries, normalized as stored tags are (crawler.text.tags).

Two forms: `#word` ends at the first character that is not a letter, digit, `_`, `·` or a
joiner (TikTok, Instagram, Bluesky, Mastodon, YouTube, Douyin), and `#话题#` is closed by a
second hash (Weibo, Bilibili), with Xiaohongshu's `#话题[话题]#` marker dropped. URLs are
removed first, so `https://x.example/#top` is no tag.
"""

from __future__ import annotations

import re
from functools import lru_cache

from crawler.text.tags import InvalidTagError, normalize_tag

_URL = re.compile(r"https?://\S+|www\.\S+")
# closed: no space, punctuation or bracket inside, at most 64 characters
_CLOSED = re.compile(r"(?<![\w&/])[#＃]([^#＃\s\[\],，.。!！?？;；:：、&]{1,64})(?:\[话题\])?[#＃]")
_OPEN = re.compile(r"(?<![\w&/])[#＃]([\w\u00b7\u200c\u200d]{1,100})")


@lru_cache(maxsize=65_536)
def _normalized(raw: str) -> str | None:
    """normalize_tag, remembered: the same few tags recur on every page (#fyp, the tag itself),
    and normalizing one (NFKC, a scan per character) costs more than finding it."""
    try:
        return normalize_tag(raw)
    except InvalidTagError:
        return None


def hashtags_in(text: str | None, *, limit: int = 50) -> list[str]:
    """The distinct tags in a text, normalized, in order of first appearance (at most `limit`)."""
    if not text:
        return []
    plain = _URL.sub(" ", text)
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for match in _CLOSED.finditer(plain):
        found.append((match.start(), match.group(1)))
        taken.append(match.span())
    for match in _OPEN.finditer(plain):
        if not any(start <= match.start() < end for start, end in taken):
            found.append((match.start(), match.group(1)))
    tags: list[str] = []
    for _start, raw in sorted(found):
        tag = _normalized(raw)
        if tag is not None and tag not in tags:
            tags.append(tag)
            if len(tags) == limit:
                break
    return tags

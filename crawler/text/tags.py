"""Canonical hashtag names, and the tag references users pass on the command line."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_TAG_CHARS = 200

# Invisible characters that only ever get in the way: removed wherever they are.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff]")
# ZWNJ and ZWJ carry meaning inside a word (Persian, emoji sequences), so only the ends lose them.
_JOINERS = "\u200c\u200d"
# Whitespace, but not U+001C..U+001F, which str.isspace() counts and which are control characters.
_SPACE = r"[^\S\x1c-\x1f]"
_EDGES_START = re.compile(f"^(?:{_SPACE}|[{_JOINERS}])+")
_EDGES_END = re.compile(f"(?:{_SPACE}|[{_JOINERS}])+$")
_HASHES_START = re.compile(f"^(?:#|{_SPACE}|[{_JOINERS}])+")
_HASHES_END = re.compile(f"(?:#|{_SPACE}|[{_JOINERS}])+$")
_SPACES = re.compile(f"{_SPACE}+")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Format characters allowed inside a tag: the joiners, and the tag characters of flag emoji.
_ALLOWED_FORMAT = frozenset(_JOINERS) | frozenset(map(chr, range(0xE0020, 0xE0080)))
_MAX_PASSES = 4


class InvalidTagError(ValueError):
    """A tag name or reference that cannot be used."""

    def __init__(self, raw: object, reason: str) -> None:
        shown = raw if not isinstance(raw, str) or len(raw) <= 80 else raw[:80] + "…"
        super().__init__(f"invalid tag {shown!r}: {reason}")
        self.raw = raw
        self.reason = reason

    def __reduce__(self) -> tuple[type[InvalidTagError], tuple[object, str]]:
        return type(self), (self.raw, self.reason)


@dataclass(frozen=True)
class TagRef:
    """A tag as the user named it: by display name, or by platform id (`id:<id>`)."""

    name: str | None
    id: str | None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.id is None):
            raise InvalidTagError(self, "give exactly one of name or id")
        if self.id is not None and not _ID.fullmatch(self.id):
            raise InvalidTagError(self.id, "an id is 1-64 of A-Z a-z 0-9 _ -")

    @property
    def normalized(self) -> str | None:
        """The canonical name (`normalize_tag`), or None for an id reference."""
        return normalize_tag(self.name) if self.name is not None else None


def normalize_tag(raw: str) -> str:
    """The canonical form of a tag: NFKC, no '#', case-folded, single spaces.

    >>> normalize_tag(" #TikTok难民# ")
    'tiktok难民'
    """
    text = raw
    # Case folding can leave text that NFKC changes again ("ǰ"); repeat until nothing moves,
    # which makes the function idempotent by construction.
    for _ in range(_MAX_PASSES):
        folded = unicodedata.normalize("NFKC", _clean(text, raw).casefold())
        if folded == text:
            return folded
        text = folded
    raise InvalidTagError(raw, "normalization does not settle")


def display_tag(raw: str) -> str:
    """The tag as shown to people: like `normalize_tag` but keeping case."""
    normalize_tag(raw)  # the same validation, so a displayed tag always normalizes
    return _clean(raw, raw)


def parse_tag_arg(raw: str) -> TagRef:
    """Read a command-line tag: `id:<id>` is an id reference, anything else a name.

    A name that really starts with "id:" can be given as "#id:...".
    """
    if not isinstance(raw, str):
        raise InvalidTagError(raw, f"expected a string, got {type(raw).__name__}")
    text = raw.strip()
    if text.startswith("id:"):
        ident = text.removeprefix("id:").strip()
        if not _ID.fullmatch(ident):
            raise InvalidTagError(raw, "an id is 1-64 of A-Z a-z 0-9 _ -")
        return TagRef(name=None, id=ident)
    return TagRef(name=display_tag(raw), id=None)


def _clean(text: str, raw: object) -> str:
    """Everything `normalize_tag` does except case folding, with its validation."""
    if not isinstance(text, str):
        raise InvalidTagError(raw, f"expected a string, got {type(text).__name__}")
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    text = _EDGES_END.sub("", _EDGES_START.sub("", text))
    if text.startswith("#"):
        # "#话题#" is Weibo's form; a trailing '#' alone is part of the name ("c#").
        text = _HASHES_END.sub("", _HASHES_START.sub("", text))
    text = _SPACES.sub(" ", text)
    if not text:
        raise InvalidTagError(raw, "empty")
    if "\x00" in text:
        raise InvalidTagError(raw, "contains NUL")
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            raise InvalidTagError(raw, f"contains lone surrogate U+{ord(ch):04X}")
        if category == "Cc" or (category == "Cf" and ch not in _ALLOWED_FORMAT):
            raise InvalidTagError(raw, f"contains control character U+{ord(ch):04X}")
    if len(text) > MAX_TAG_CHARS:
        raise InvalidTagError(raw, f"longer than {MAX_TAG_CHARS} characters")
    return text

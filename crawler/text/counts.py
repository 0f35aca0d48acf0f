"""Parse displayed counters ("1.2亿浏览", "1.1M posts", "1,234") into exact integers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass

MAX_COUNT = 10**15
# Limits on the count itself (number, unit, "+") and on the whole text with its label.
MAX_COUNT_CHARS = 64
MAX_TEXT_CHARS = 256
# A count an API gives as a digit string (TikTok statsV2, Mastodon history): every int64 has at
# most 19 digits, so 20 leaves room for a leading zero and a longer string is no count at all.
# Values above int64 that fit are still refused, by validation (TAGARCHIVE_MAX_COUNT).
MAX_DIGITS = 20

UNITS: dict[str, int] = {
    "万": 10**4,
    "萬": 10**4,
    "w": 10**4,
    "W": 10**4,
    "亿": 10**8,
    "億": 10**8,
    "万亿": 10**12,
    "萬億": 10**12,
    "K": 10**3,
    "k": 10**3,
    "M": 10**6,
    "m": 10**6,
    "KK": 10**6,
    "kk": 10**6,
    "B": 10**9,
    "b": 10**9,
}

# Display label (casefolded) -> counter name. YouTube's "81K channels" counts the channels that
# used the tag, i.e. participants, not channels about the tag.
LABELS: dict[str, str] = {
    **dict.fromkeys(
        ["浏览", "次浏览", "阅读", "次阅读", "播放", "次播放", "views", "view", "plays", "play"],
        "views",
    ),
    **dict.fromkeys(["讨论", "条讨论", "discussions", "discussion"], "discussions"),
    # 帖子: the posts of a Weibo super-topic ("阅读1607.2万　帖子4115　粉丝5810")
    **dict.fromkeys(["笔记", "篇笔记", "帖子", "posts", "post", "videos", "video"], "posts"),
    **dict.fromkeys(
        ["参与", "人参与", "participants", "participant", "channels", "channel", "people"],
        "participants",
    ),
}

_LETTER = r"[^\W\d_]"
_LABEL = rf"{_LETTER}+(?:[ \-]{_LETTER}+)*"
# A separator only ever sits between two digits; which one is the decimal point is decided later.
_NUMBER = r"[0-9](?:[0-9]|[,.'’ ](?=[0-9]))*"
_UNIT = "|".join(
    re.escape(u) + ("(?![A-Za-z])" if u.isascii() else "")
    for u in sorted(UNITS, key=len, reverse=True)
)
# Each optional part carries its own leading spaces, so failing matches stay linear.
_COUNT = re.compile(
    rf"(?:(?P<pre>{_LABEL})\s*(?::\s*)?)?"
    rf"(?P<count>(?P<number>{_NUMBER})(?:\s*(?P<unit>{_UNIT}))?(?:\s*(?P<plus>\+))?)"
    rf"(?:\s*(?P<post>{_LABEL}))?"
)
_NUMBERS = re.compile(_NUMBER)
_GROUPING_ONLY = "' ’"
# Words that would silently scale the number if taken for a label ("12 million" is not 12).
_MAGNITUDE_WORDS = frozenset(
    {
        *("thousand", "thousands", "million", "millions", "billion", "billions"),
        *("trillion", "trillions", "mn", "mln", "bn", "bln", "mil", "mill", "mio", "mrd"),
        *("tn", "tsd", "lakh", "lakhs", "lac", "lacs", "crore", "crores", "cr"),
    }
)
_CJK_NUMERALS = frozenset("〇零一二三四五六七八九十百千万萬亿億兆两")
_ASCII_DIGITS = frozenset("0123456789")
_DIGIT_STRING = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


@dataclass(frozen=True, slots=True)
class ParsedCount:
    """A counter's value, whether the display rounded it, and the unit of its last digit."""

    value: int
    approximate: bool
    step: int
    text: str


class CountParseError(ValueError):
    """Text that is not one readable, non-negative count."""

    def __init__(self, text: object, reason: str) -> None:
        shown = text if not isinstance(text, str) or len(text) <= 80 else text[:80] + "…"
        super().__init__(f"cannot parse count {shown!r}: {reason}")
        self.text = text
        self.reason = reason

    def __reduce__(self) -> tuple[type[CountParseError], tuple[object, str]]:
        return type(self), (self.text, self.reason)


def parse_count(text: str | int) -> ParsedCount:
    """Parse one displayed count; `text` in the result is the count without label or padding.

    >>> parse_count("1.2亿浏览")
    ParsedCount(value=120000000, approximate=True, step=10000000, text='1.2亿')
    """
    return _parse(text)[0]


def digit_string_value(text: object) -> int | None:
    """The int of a plain digit string ("1143000"), or None for anything else.

    ASCII digits only: `str.isdigit()` also passes "²", "①" and other scripts' digits, which
    `int()` refuses or reads as a number no platform printed, and `int()` refuses a string of
    more than 4,300 digits outright. Full-width digits are counter text, read by `parse_count`.

    >>> digit_string_value("1143000"), digit_string_value("²"), digit_string_value("１２３")
    (1143000, None, None)
    """
    if isinstance(text, str) and _DIGIT_STRING.fullmatch(text):
        return int(text)
    return None


def split_counts(text: str, separators: Sequence[str] = ("·", "•", "|")) -> list[str]:
    """Split "1.2亿浏览 · 281.2万讨论" into its non-empty, stripped parts."""
    if not separators:
        return [text.strip()] if text.strip() else []
    parts = re.split("|".join(re.escape(s) for s in separators), text)
    return [part.strip() for part in parts if part.strip()]


def parse_labelled(text: str, *, ignore: Collection[str] = ()) -> dict[str, ParsedCount]:
    """Map each labelled count in a header to its counter name ("views", "posts", ...).

    Parts are split on `split_counts` separators, and also on spaces (full-width ones too) when
    each side carries its own number, as in Weibo's "阅读1.2亿 讨论3.4万". A count whose label is
    in `ignore` is skipped: a figure the header shows that no counter holds (a Weibo
    super-topic's 粉丝, its followers).
    """
    skipped = {label.casefold() for label in ignore}
    counts: dict[str, ParsedCount] = {}
    for part in split_counts(text):
        for piece in _pieces(part):
            count, label = _parse(piece)
            if label is None:
                raise CountParseError(piece, "no label names the counter")
            if label.casefold() in skipped:
                continue
            name = LABELS.get(label.casefold())
            if name is None:
                raise CountParseError(piece, f"unknown label {label!r}")
            if name in counts:
                raise CountParseError(text, f"counter {name!r} appears twice")
            counts[name] = count
    if not counts:
        raise CountParseError(text, "no counts")
    return counts


def _parse(text: str | int) -> tuple[ParsedCount, str | None]:
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise CountParseError(text, f"expected a string or an int, got {type(text).__name__}")
    if isinstance(text, int):
        _check_range(text, text)
        return ParsedCount(text, False, 1, str(text)), None
    if len(text) > MAX_TEXT_CHARS:
        raise CountParseError(text, f"longer than {MAX_TEXT_CHARS} characters")
    # NFKC would turn "²", "①" or "½" into plain digits; those are never counts.
    if any(unicodedata.category(ch) == "No" for ch in text):
        raise CountParseError(text, "contains superscript, circled or fraction digits")
    norm = unicodedata.normalize("NFKC", text).strip()
    match = _COUNT.fullmatch(norm)
    if match is None:
        raise CountParseError(text, _diagnose(norm))
    count = " ".join(match["count"].split())
    if len(count) > MAX_COUNT_CHARS:
        raise CountParseError(text, f"count longer than {MAX_COUNT_CHARS} characters")
    label = _label(text, norm, match)
    unit = match["unit"]
    multiplier = UNITS[unit] if unit else 1
    digits, decimals = _digits(text, match["number"], has_unit=unit is not None)
    scaled = int(digits) * multiplier
    if scaled % 10**decimals:
        raise CountParseError(text, "more decimals than the unit allows")
    value = scaled // 10**decimals
    _check_range(text, value)
    step = max(1, multiplier // 10**decimals)
    approximate = unit is not None or match["plus"] is not None
    return ParsedCount(value, approximate, step, count), label


def _check_range(text: object, value: int) -> None:
    if value < 0:
        raise CountParseError(text, "negative count")
    if value > MAX_COUNT:
        raise CountParseError(text, f"above {MAX_COUNT:.0e}")


def _label(text: str, norm: str, match: re.Match[str]) -> str | None:
    pre, post = match["pre"], match["post"]
    if pre and post:
        raise CountParseError(text, "labels on both sides of the number")
    label = pre or post
    if label is None:
        return None
    # A Latin label glued to the number ("1.2Kviews", "views12") is more likely garbage or an
    # unknown unit than a label; CJK labels are written glued ("1.2亿浏览").
    after_pre = norm[match.end("pre")] if pre else ""
    if pre and pre[-1].isascii() and not (after_pre.isspace() or after_pre == ":"):
        raise CountParseError(text, f"label {pre!r} touches the number")
    if post and post[0].isascii() and not norm[match.start("post") - 1].isspace():
        raise CountParseError(text, f"label {post!r} touches the number")
    first_word = label.split()[0]
    if (first_word.isascii() and len(first_word) == 1) or (
        first_word.casefold() in _MAGNITUDE_WORDS
    ):
        raise CountParseError(text, f"unknown unit {first_word!r}")
    if any(ch in _CJK_NUMERALS for ch in label):
        raise CountParseError(text, f"unknown unit in {label!r}")
    return label


def _digits(text: str, number: str, *, has_unit: bool) -> tuple[str, int]:
    """The number's digits without separators, and how many of them follow the decimal point."""
    # `number` matched [0-9] and separators only; the digits are tested as ASCII, deliberately
    seps = [ch for ch in number if ch not in _ASCII_DIGITS]
    grouping = {ch for ch in seps if ch in _GROUPING_ONLY}
    marks = [ch for ch in seps if ch in ",."]
    decimal_mark: str | None = None
    if "," in marks and "." in marks:
        decimal_mark = marks[-1]  # "1,234.5" / "1.234,5": the last one is the decimal point
    elif len(marks) == 1:
        tail = len(number) - number.rindex(marks[0]) - 1
        # A single mark followed by three digits groups thousands ("1,234", German "1.234"),
        # except a dot before a unit ("1.234K"); otherwise it is the decimal point ("1,2M").
        if grouping or tail != 3 or (has_unit and marks[0] == "."):
            decimal_mark = marks[0]
    if decimal_mark is not None:
        if marks.count(decimal_mark) > 1:
            raise CountParseError(text, f"several decimal marks {decimal_mark!r}")
        whole, fraction = number.split(decimal_mark)
    else:
        whole, fraction = number, ""
    if any(ch not in _ASCII_DIGITS for ch in fraction):
        raise CountParseError(text, "separator after the decimal mark")
    if fraction and not has_unit:
        raise CountParseError(text, "fractional count without a unit")
    group_marks = {ch for ch in whole if ch not in _ASCII_DIGITS}
    if len(group_marks) > 1:
        raise CountParseError(text, "mixed thousands separators")
    if group_marks:
        groups = whole.split(group_marks.pop())
        if len(groups[0]) > 3 or any(len(g) != 3 for g in groups[1:]):
            raise CountParseError(text, "thousands separators in the wrong places")
        whole = "".join(groups)
    return whole + fraction, len(fraction)


def _diagnose(norm: str) -> str:
    """Why `norm` (NFKC, stripped) did not match, in words."""
    if not norm:
        return "empty"
    if re.search(r"(?<![0-9])[-−‐‑–—]\s*[0-9]", norm):
        return "negative count"
    if re.search(r"(?i)(?<![a-z])(nan|inf|infinity)(?![a-z])", norm):
        return "not a finite number"
    if len(_NUMBERS.findall(norm)) > 1:
        return "several numbers; split the text first (split_counts)"
    if not re.search(r"[0-9]", norm):
        return "no number"
    return "not a count"


def _pieces(part: str) -> list[str]:
    """`part` itself if it parses, else its space-separated counts if each of those parses."""
    try:
        _parse(part)
    except CountParseError:
        pass
    else:
        return [part]
    tokens = part.split()
    has_number = [bool(re.search("[0-9]", unicodedata.normalize("NFKC", t))) for t in tokens]
    for label_first in (False, True):
        pieces = _group(tokens, has_number, label_first=label_first)
        if pieces and len(pieces) > 1 and all(_parses(p) for p in pieces):
            return pieces
    return [part]  # parsing it again reports the original problem


def _group(tokens: list[str], has_number: list[bool], *, label_first: bool) -> list[str] | None:
    """Join label tokens to the number before them ("12 views"), or after ("阅读 1.2亿")."""
    groups: list[list[str]] = []
    pending: list[str] = []
    for token, numeric in zip(tokens, has_number, strict=True):
        if numeric:
            groups.append([*pending, token])
            pending = []
        elif label_first:
            pending.append(token)
        elif groups:
            groups[-1].append(token)
        else:
            return None
    if pending:
        return None
    return [" ".join(g) for g in groups]


def _parses(text: str) -> bool:
    try:
        _parse(text)
    except CountParseError:
        return False
    return True

"""Tests for crawler.text.counts: displayed counters to exact integers."""

from __future__ import annotations

import pickle
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.text.counts import (
    MAX_COUNT,
    MAX_DIGITS,
    UNITS,
    CountParseError,
    ParsedCount,
    digit_string_value,
    parse_count,
    parse_labelled,
    split_counts,
)

# text -> (value, approximate, step, text kept)
EXAMPLES: dict[str | int, tuple[int, bool, int, str]] = {
    # Chinese units and labels on either side
    "1.2亿": (120_000_000, True, 10_000_000, "1.2亿"),
    "281.2万": (2_812_000, True, 1_000, "281.2万"),
    "1.2亿浏览": (120_000_000, True, 10_000_000, "1.2亿"),
    "281.2万讨论": (2_812_000, True, 1_000, "281.2万"),
    "1065.3万浏览": (10_653_000, True, 1_000, "1065.3万"),
    "阅读2.3亿": (230_000_000, True, 10_000_000, "2.3亿"),
    "阅读: 2.3亿": (230_000_000, True, 10_000_000, "2.3亿"),
    "4.9亿次播放": (490_000_000, True, 10_000_000, "4.9亿"),
    "1.15万": (11_500, True, 100, "1.15万"),
    "1.2万亿": (1_200_000_000_000, True, 100_000_000_000, "1.2万亿"),
    "3.4萬": (34_000, True, 1_000, "3.4萬"),
    "907.3w": (9_073_000, True, 1_000, "907.3w"),
    "10w+": (100_000, True, 10_000, "10w+"),
    "10W": (100_000, True, 10_000, "10W"),
    "1.2w浏览": (12_000, True, 1_000, "1.2w"),
    # English units and labels
    "1.1M posts": (1_100_000, True, 100_000, "1.1M"),
    "203K videos": (203_000, True, 1_000, "203K"),
    "81K channels": (81_000, True, 1_000, "81K"),
    "140.2K": (140_200, True, 100, "140.2K"),
    "0.3M": (300_000, True, 100_000, "0.3M"),
    "5.4B": (5_400_000_000, True, 100_000_000, "5.4B"),
    "5.4b": (5_400_000_000, True, 100_000_000, "5.4b"),
    "2KK": (2_000_000, True, 1_000_000, "2KK"),
    "1.5kk": (1_500_000, True, 100_000, "1.5kk"),
    "12k": (12_000, True, 1_000, "12k"),
    "1.2 M": (1_200_000, True, 100_000, "1.2 M"),
    "1,234 posts": (1_234, False, 1, "1,234"),
    "12 views": (12, False, 1, "12"),
    "views: 12": (12, False, 1, "12"),
    "999+": (999, True, 1, "999+"),
    # separators and decimal marks
    "1,234": (1_234, False, 1, "1,234"),
    "1,234,567": (1_234_567, False, 1, "1,234,567"),
    "1，234": (1_234, False, 1, "1,234"),
    "1'234'567": (1_234_567, False, 1, "1'234'567"),
    "1’234": (1_234, False, 1, "1’234"),
    "1\u202f234\u202f567": (1_234_567, False, 1, "1 234 567"),
    "1.234.567": (1_234_567, False, 1, "1.234.567"),
    "1.234": (1_234, False, 1, "1.234"),
    "1,2M": (1_200_000, True, 100_000, "1,2M"),
    "12,5K": (12_500, True, 100, "12,5K"),
    "1,234.5K": (1_234_500, True, 100, "1,234.5K"),
    "1.234,5K": (1_234_500, True, 100, "1.234,5K"),
    "1,234K": (1_234_000, True, 1_000, "1,234K"),
    "1.234K": (1_234, True, 1, "1.234K"),
    # full width, padding, exact digit strings
    "１２３": (123, False, 1, "123"),
    "１．２万": (12_000, True, 1_000, "1.2万"),
    "１，２３４": (1_234, False, 1, "1,234"),
    "\xa0 1.2万\xa0\n": (12_000, True, 1_000, "1.2万"),
    "9876543210": (9_876_543_210, False, 1, "9876543210"),
    "0": (0, False, 1, "0"),
    "007": (7, False, 1, "007"),
    str(MAX_COUNT): (MAX_COUNT, False, 1, str(MAX_COUNT)),
    # ints
    0: (0, False, 1, "0"),
    9_876_543_210: (9_876_543_210, False, 1, "9876543210"),
}


@pytest.mark.parametrize("text", list(EXAMPLES))
def test_parse_count_examples(text: str | int) -> None:
    value, approximate, step, kept = EXAMPLES[text]
    assert parse_count(text) == ParsedCount(value, approximate, step, kept)


def test_value_is_exact_not_float() -> None:
    assert parse_count("1.2亿").value == 120_000_000
    assert parse_count("0.3M").value == 300_000
    assert parse_count("1.15万").value == 11_500
    assert parse_count("1.234567891234万亿").value == 1_234_567_891_234
    assert parse_count("999,999,999,999,999").value == 999_999_999_999_999


ERRORS = [
    "",
    "   ",
    "\xa0",
    "-5",
    "−5",
    "-1.2万",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1.2亿浏览 · 281.2万讨论",
    "203K videos • 81K channels",
    "阅读1.2亿 讨论3.4万",
    "1 2",
    "abc",
    "万",
    "浏览",
    "1.5",
    "1,23",
    "1.2.3",
    "1,23,456",
    "1,234 567",
    "1e5",
    "0x10",
    "+12",
    ".5K",
    "12.",
    "1.23456万",
    "12 million",
    "1.2 Mio",
    "3 lakh",
    "5T",
    "5 T",
    "1.2Kviews",
    "views12",
    "1.2千万",
    "1.2亿万",
    "阅读2.3亿浏览",
    "²",
    "①②",
    "١٢٣",
    "1" * 65,
    "1" * 5000,  # int() would refuse it (4,300 digits): refused here by length first
    "1" * 16 + "0",
    "10000001亿",
    "浏览" * 200 + "1",
    True,
    False,
    -1,
    MAX_COUNT + 1,
    1.5,
    None,
]


@pytest.mark.parametrize("text", ERRORS, ids=repr)
def test_parse_count_errors(text: object) -> None:
    with pytest.raises(CountParseError):
        parse_count(text)  # type: ignore[arg-type]


def test_error_message_is_one_line_and_quotes_text() -> None:
    with pytest.raises(CountParseError) as info:
        parse_count("1.2亿浏览 · 281.2万讨论")
    message = str(info.value)
    assert "\n" not in message
    assert "'1.2亿浏览 · 281.2万讨论'" in message
    assert "several numbers" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(CountParseError) as info:
        parse_count("x\n" * 100 + "1")
    assert "\n" not in str(info.value)


def test_error_pickles() -> None:
    with pytest.raises(CountParseError) as info:
        parse_count("-5")
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)
    assert copy.reason == "negative count"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("1.2亿浏览 · 281.2万讨论", ["1.2亿浏览", "281.2万讨论"]),
        ("203K videos • 81K channels", ["203K videos", "81K channels"]),
        ("12 views | 3 posts", ["12 views", "3 posts"]),
        (" · 1.2万 · ", ["1.2万"]),
        ("1.2万", ["1.2万"]),
        ("", []),
    ],
)
def test_split_counts(text: str, parts: list[str]) -> None:
    assert split_counts(text) == parts


def test_split_counts_custom_separators() -> None:
    assert split_counts("1 / 2", separators=("/",)) == ["1", "2"]
    assert split_counts(" 1 · 2 ", separators=()) == ["1 · 2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2亿浏览 · 281.2万讨论", {"views": 120_000_000, "discussions": 2_812_000}),
        ("1065.3万浏览", {"views": 10_653_000}),
        ("203K videos • 81K channels", {"posts": 203_000, "participants": 81_000}),
        ("1.1M posts", {"posts": 1_100_000}),
        ("1,234 Posts", {"posts": 1_234}),
        ("阅读1.2亿 讨论3.4万", {"views": 120_000_000, "discussions": 34_000}),
        ("阅读 1.2亿 讨论 3.4万", {"views": 120_000_000, "discussions": 34_000}),
        ("12 views 3 posts", {"views": 12, "posts": 3}),
        (
            "4.9亿播放 · 1.2万笔记 · 3万参与",
            {"views": 490_000_000, "posts": 12_000, "participants": 30_000},
        ),
        ("12 plays", {"views": 12}),
        ("1 participant", {"participants": 1}),
    ],
)
def test_parse_labelled(text: str, expected: dict[str, int]) -> None:
    parsed = parse_labelled(text)
    assert {name: count.value for name, count in parsed.items()} == expected


def test_parse_labelled_keeps_count_text() -> None:
    parsed = parse_labelled("1.2亿浏览 · 281.2万讨论")
    assert parsed["views"].text == "1.2亿"
    assert parsed["discussions"] == ParsedCount(2_812_000, True, 1_000, "281.2万")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("12 foos", "'foos'"),
        ("1.2万粉丝", "'粉丝'"),
        ("12", "no label"),
        ("1 view · 2 plays", "twice"),
        ("", "no counts"),
        (" · ", "no counts"),
        ("1.2亿浏览 281.2万", "no label"),
    ],
)
def test_parse_labelled_errors(text: str, needle: str) -> None:
    with pytest.raises(CountParseError, match=needle):
        parse_labelled(text)


@given(st.integers(min_value=0, max_value=MAX_COUNT))
def test_thousands_separated_ints_are_exact(n: int) -> None:
    assert parse_count(f"{n:,}") == ParsedCount(n, False, 1, f"{n:,}")
    assert parse_count(str(n)).value == n
    assert parse_count(n).value == n


@given(
    st.integers(min_value=0, max_value=MAX_COUNT),
    st.sampled_from(sorted(u for u, m in UNITS.items() if m <= MAX_COUNT)),
    st.sampled_from(["", " "]),
)
def test_one_decimal_with_unit_is_within_one_step(n: int, unit: str, space: str) -> None:
    multiplier = UNITS[unit]
    shown = (Decimal(n) / multiplier).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    parsed = parse_count(f"{shown}{space}{unit}")
    assert parsed.approximate
    assert parsed.step == multiplier // 10
    assert abs(parsed.value - n) <= parsed.step


_COUNTISH = st.text(
    alphabet="0123456789.,，'’ \xa0\u202f+-万亿萬億wWkKmMbBT浏览讨论阅读views posts·•|:：１２．",
    max_size=30,
)


@given(st.one_of(st.text(), _COUNTISH))
def test_parse_count_only_raises_count_parse_error(text: str) -> None:
    try:
        parsed = parse_count(text)
    except CountParseError:
        return
    assert 0 <= parsed.value <= MAX_COUNT
    assert parsed.step >= 1
    assert parse_count(parsed.text) == parsed  # the kept text reads back the same


@given(st.one_of(st.text(), _COUNTISH))
def test_parse_labelled_only_raises_count_parse_error(text: str) -> None:
    try:
        parsed = parse_labelled(text)
    except CountParseError:
        return
    assert set(parsed) <= {"views", "discussions", "posts", "participants"}
    assert all(count.value >= 0 for count in parsed.values())


@given(st.text())
def test_digit_string_value_is_ascii_digits_or_none(text: str) -> None:
    value = digit_string_value(text)
    if value is None:
        assert not (text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS)
    else:
        assert text.isascii()
        assert text.isdigit()
        assert int(text) == value


@given(st.integers(min_value=0, max_value=10**MAX_DIGITS - 1))
def test_digit_string_value_reads_every_int64_and_a_little_more(n: int) -> None:
    assert digit_string_value(str(n)) == n

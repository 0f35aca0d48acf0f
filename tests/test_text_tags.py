"""Tests for crawler.text.tags: canonical tag names and command-line tag references."""

from __future__ import annotations

import dataclasses
import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.text.tags import (
    MAX_TAG_CHARS,
    InvalidTagError,
    TagRef,
    display_tag,
    normalize_tag,
    parse_tag_arg,
)


@pytest.mark.parametrize(
    ("raw", "normalized", "display"),
    [
        ("tiktok难民", "tiktok难民", "tiktok难民"),
        ("TikTok难民", "tiktok难民", "TikTok难民"),
        ("#TikTok难民", "tiktok难民", "TikTok难民"),
        ("＃TikTok难民", "tiktok难民", "TikTok难民"),
        ("#话题#", "话题", "话题"),
        ("  #TikTokRefugee  ", "tiktokrefugee", "TikTokRefugee"),
        ("###Tag", "tag", "Tag"),
        ("# #Tag", "tag", "Tag"),
        ("##c##", "c", "c"),
        ("c#", "c#", "c#"),  # a trailing '#' without a leading one is part of the name
        ("#c#", "c", "c"),
        ("ＴｉｋＴｏｋ", "tiktok", "TikTok"),
        ("\u200bTikTok\u200b", "tiktok", "TikTok"),
        ("\ufeffTik\u200bTok", "tiktok", "TikTok"),
        ("\u200dtag\u200c", "tag", "tag"),
        ("New   York\tCity", "new york city", "New York City"),
        ("new\u3000york", "new york", "new york"),
        ("\xa0Straße\xa0", "strasse", "Straße"),
        ("ΣΊΣΥΦΟΣ", "σίσυφοσ", "ΣΊΣΥΦΟΣ"),
        ("小红书", "小红书", "小红书"),
        ("😀", "😀", "😀"),
        ("#👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # ZWJ kept inside
        ("a" * MAX_TAG_CHARS, "a" * MAX_TAG_CHARS, "a" * MAX_TAG_CHARS),
    ],
)
def test_normalize_and_display(raw: str, normalized: str, display: str) -> None:
    assert normalize_tag(raw) == normalized
    assert display_tag(raw) == display


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("#", "empty"),
        ("##  #", "empty"),
        ("\u200b", "empty"),
        ("a\x00b", "NUL"),
        ("a\x07b", "U+0007"),
        ("a\x1fb", "U+001F"),
        ("a\u00adb", "U+00AD"),
        ("a\u202eb", "U+202E"),
        ("a\ud800b", "U+D800"),
        ("a" * (MAX_TAG_CHARS + 1), "longer than"),
        ("ß" * MAX_TAG_CHARS, "longer than"),  # folds to "ss" * 200
        (5, "expected a string"),
        (None, "expected a string"),
    ],
)
def test_invalid_tags(raw: object, needle: str) -> None:
    with pytest.raises(InvalidTagError, match=re.escape(needle)) as info:
        normalize_tag(raw)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidTagError):
        display_tag(raw)  # type: ignore[arg-type]


def test_error_pickles() -> None:
    with pytest.raises(InvalidTagError) as info:
        normalize_tag("")
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


@pytest.mark.parametrize(
    ("raw", "ref"),
    [
        ("id:71340946479", TagRef(name=None, id="71340946479")),
        ("  id:abc_DEF-1 ", TagRef(name=None, id="abc_DEF-1")),
        ("id: 42", TagRef(name=None, id="42")),
        ("#TikTok难民", TagRef(name="TikTok难民", id=None)),
        (" tiktokrefugee ", TagRef(name="tiktokrefugee", id=None)),
        ("#id:foo", TagRef(name="id:foo", id=None)),  # the escape for a name starting "id:"
        ("ID:foo", TagRef(name="ID:foo", id=None)),
    ],
)
def test_parse_tag_arg(raw: str, ref: TagRef) -> None:
    assert parse_tag_arg(raw) == ref


def test_tag_ref_normalized() -> None:
    assert parse_tag_arg("#TikTok难民#").normalized == "tiktok难民"
    assert parse_tag_arg("id:123").normalized is None


def test_tag_ref_is_frozen_and_hashable() -> None:
    ref = parse_tag_arg("tag")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.name = "other"  # type: ignore[misc]
    assert {ref, parse_tag_arg("tag")} == {ref}


@pytest.mark.parametrize("raw", ["id:", "id:a b", "id:" + "a" * 65, "id:a/b", "id:ü", "", "#"])
def test_parse_tag_arg_errors(raw: str) -> None:
    with pytest.raises(InvalidTagError):
        parse_tag_arg(raw)


@pytest.mark.parametrize(("name", "id_"), [(None, None), ("a", "1"), (None, "a b"), (None, "")])
def test_tag_ref_needs_exactly_one_valid_field(name: str | None, id_: str | None) -> None:
    with pytest.raises(InvalidTagError):
        TagRef(name=name, id=id_)


@given(st.text())
def test_normalize_is_idempotent_and_only_raises_invalid_tag(raw: str) -> None:
    try:
        once = normalize_tag(raw)
    except InvalidTagError:
        return
    assert normalize_tag(once) == once
    assert 0 < len(once) <= MAX_TAG_CHARS
    assert once == once.strip()
    assert not once.startswith("#")
    assert normalize_tag(display_tag(raw)) == once


@given(st.text(alphabet=st.sampled_from("#＃ \t\u200b\u200c\u200dAaßΣς\u0130İǰ小 ﬁ\x00\x07")))
def test_normalize_idempotent_on_tricky_alphabet(raw: str) -> None:
    try:
        once = normalize_tag(raw)
    except InvalidTagError:
        return
    assert normalize_tag(once) == once


@given(st.text())
def test_parse_tag_arg_only_raises_invalid_tag(raw: str) -> None:
    try:
        ref = parse_tag_arg(raw)
    except InvalidTagError:
        return
    assert (ref.name is None) != (ref.id is None)
    if ref.name is not None:
        assert ref.normalized == normalize_tag(raw)

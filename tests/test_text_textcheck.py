"""Tests for crawler.text.textcheck: telling mojibake from ordinary text."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crawler.text.textcheck import looks_mojibake

MOJIBAKE = [
    "\ufffd",
    "a\ufffdb",
    "Ã©",
    "cafÃ©",
    "CafÃ© au lait",
    "Â·",
    "Â\xa0",
    "â€™",
    "itâ€™s",
    "â€œquotedâ€\x9d",
    "å°çº¢ä¹¦",  # 小红书 as cp1252 with errors="ignore"
    "å°\x8fçº¢ä¹¦",  # the same as latin-1
    "tiktokéš¾æ°‘",  # tiktok难民
    "Ð¿Ñ€Ð¸Ð²ÐµÑ‚",  # привет
    "Î±Î²Î³",  # αβγ
    "Ù…Ø±Ø­Ø¨Ø§",  # مرحبا
    "ðŸ˜€",  # 😀
    "Ã¥Â°Â",  # double-encoded
    "锟斤拷",  # U+FFFD's UTF-8 read as GBK
    "锟斤拷锟斤拷",
    "灏忕孩涔",  # 小红书's UTF-8 read as GBK
    "鏂伴椈",  # 新闻
]

CLEAN = [
    "",
    "hello",
    "tiktok难民",
    "小红书",
    "1.2亿浏览 · 281.2万讨论",
    "他说“你好”……——",
    "こんにちは、世界",
    "カタカナ・ひらがな",
    "한국어",
    "😀👍🏽👨\u200d👩\u200d👧",
    "مرحبا بالعالم",
    "שלום",
    "Привет, мир",
    "Ελληνικά",
    "Ça va très bien, merci « à bientôt » — où êtes-vous ?",
    "L’été dernier, j’ai créé un café «créé».",
    "Über die Brücke: „Größe“ und ‚Maß‘ – schön! Straße…",
    "Weiß“ und Groß“",
    "¿Dónde está la estación? ¡Año nuevo! Pingüino.",
    "Não há ação sem reação; coração, pão, maçã.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Zażółć gęślą jaźń. Þórður Ægir Ísland.",
    "Tiếng Việt: Hà Nội, Đà Nẵng.",
    "Smørrebrød, Ålesund, Hüttenkäse™ © ® °C ± µ ½ × ÷",
    "naïve coöperate façade fiancée résumé déjà vu crème brûlée",
    "Œuvre œuvre Šš Žž ƒ Ÿ",
    "“quoted” ‘single’ •bullet· ¶§†‡‰",
]


@pytest.mark.parametrize("text", MOJIBAKE, ids=repr)
def test_mojibake(text: str) -> None:
    assert looks_mojibake(text)


@pytest.mark.parametrize("text", CLEAN, ids=repr)
def test_clean(text: str) -> None:
    assert not looks_mojibake(text)


def test_round_trip_examples() -> None:
    for clean in ["小红书", "新闻联播", "tiktok难民", "café", "привет", "😀"]:
        assert looks_mojibake(clean.encode("utf-8").decode("cp1252", errors="ignore"))
        assert looks_mojibake(clean.encode("utf-8").decode("latin-1"))
        assert not looks_mojibake(clean)


def test_undetectable_when_every_continuation_byte_was_dropped() -> None:
    # "十" is E5 8D 81 and cp1252 drops 8D and 81: what is left is "åå", which "créé" also is.
    assert "十十".encode().decode("cp1252", errors="ignore") == "åå"
    assert not looks_mojibake("åå")


_CJK = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=2)


def _continuation_chars(text: str) -> int:
    return sum(1 for ch in text.encode("cp1252", errors="replace") if 0x80 <= ch <= 0xBF)


@given(_CJK)
def test_cjk_read_as_cp1252_is_mojibake(text: str) -> None:
    garbled = text.encode("utf-8").decode("cp1252", errors="ignore")
    # cp1252 cannot decode 81, 8D, 8F, 90 and 9D; the check needs two continuation bytes left.
    assume(_continuation_chars(garbled) >= 2)
    assert looks_mojibake(garbled)


@given(_CJK)
def test_cjk_read_as_latin1_is_mojibake(text: str) -> None:
    assert looks_mojibake(text.encode("utf-8").decode("latin-1"))


@given(_CJK)
def test_clean_cjk_is_not_mojibake(text: str) -> None:
    assert not looks_mojibake(text)


@given(st.text(st.characters(max_codepoint=0x7F)))
def test_ascii_text_is_never_mojibake(text: str) -> None:
    # every byte of mojibake that the check reads is outside ASCII; ASCII pages are common
    assert looks_mojibake(text) is False


@given(st.text(), st.text(st.characters(max_codepoint=0x7F)))
def test_clean_ascii_around_mojibake_keeps_it_mojibake(text: str, padding: str) -> None:
    # the check is not fooled by surrounding text: a garbled name inside a page stays garbled
    garbled = "小红书".encode().decode("latin-1")
    assert looks_mojibake(f"{padding} {garbled} {padding}") is True
    assert isinstance(looks_mojibake(text), bool)  # any text at all is answered, never raises

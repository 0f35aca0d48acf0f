"""Each post's language and hashtags, from its text (crawler/text/language.py, hashtags.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crawler.items import PostItem
from crawler.rules.normalize import normalize_item
from crawler.text.hashtags import hashtags_in
from crawler.text.language import detect_language

# texts whose language is known (written in it), as posted under the January 2025 tags
KNOWN = [
    ("en", "Hi from Ohio! Just joined RedNote because of the ban, everyone here is so welcoming"),
    ("en", "TikTok refugee here, what should I post first? Teaching English in exchange for cat "
           "pictures"),
    ("en", "my first post on this app, I can't read anything but the people are so nice #rednote"),
    ("zh", "欢迎美国朋友来小红书！我们一起学习中文和英语吧"),
    ("zh", "第一次看到这么多外国人在小红书上发帖，太有意思了"),
    ("zh", "#TikTok难民[话题]# 给大家做一道家常菜：番茄炒蛋"),
    ("ja", "アメリカからたくさんの人が来ていますね、ようこそ"),
    ("es", "Hola a todos, soy de México y acabo de llegar a esta aplicación"),
]


@pytest.mark.parametrize(("language", "text"), KNOWN, ids=[t[:24] for _l, t in KNOWN])
def test_known_texts_get_their_language(language: str, text: str) -> None:
    got, confidence = detect_language(text)
    assert got == language
    assert confidence is not None
    assert 0 < confidence <= 1


@pytest.mark.parametrize("text", [None, "", "🔥🔥🔥", "lol", "#tiktokrefugee #rednote",
                                  "https://example.com/a/b @someone"])
def test_too_little_text_names_no_language(text: str | None) -> None:
    assert detect_language(text) == (None, None)


def test_a_hashtag_does_not_decide_the_language() -> None:
    """An English tag in a Chinese post: the post is Chinese."""
    assert detect_language("#TikTokRefugee #RedNote #USA 今天做了饺子，好吃")[0] == "zh"


@pytest.mark.parametrize(("text", "tags"), [
    ("Hello #TikTokRefugee and #RedNote! https://x.example/#top", ["tiktokrefugee", "rednote"]),
    ("来了 #TikTok难民[话题]# #小红书[话题]# 好", ["tiktok难民", "小红书"]),     # Xiaohongshu
    ("#TikTok难民# 阅读量破亿 #美国网友#", ["tiktok难民", "美国网友"]),            # Weibo
    ("#python, #Python and #100DaysOfCode", ["python", "100daysofcode"]),
    ("＃全角＃ and a#notatag and &#39; entity", ["全角"]),
    ("no tags at all", []),
])
def test_hashtags_in_text(text: str, tags: list[str]) -> None:
    assert hashtags_in(text) == tags


def test_normalize_fills_language_and_tags_and_keeps_the_platforms_label() -> None:
    post = PostItem(platform="bluesky", post_id="1", tag="rednote", source="api",
                    observed_at=datetime.now(UTC), text=KNOWN[0][1] + " #RedNote",
                    lang_platform=" JA ")
    normalize_item(post)
    assert (post.lang, post.hashtags, post.lang_platform) == ("en", ["rednote"], "ja")
    assert post.lang_confidence is not None
    given = PostItem(platform="x", post_id="2", tag="t", source="api",
                     observed_at=datetime.now(UTC), text="plain words here", lang="fr",
                     hashtags=["a"])
    normalize_item(given)
    assert (given.lang, given.hashtags) == ("fr", ["a"])  # an adapter's word is kept


def test_a_page_of_texts_at_once_gets_each_its_language() -> None:
    from crawler.text.language import detect_languages

    texts = [t for _l, t in KNOWN] + [None, "lol", KNOWN[0][1]]
    got = detect_languages(texts)
    assert [g[0] for g in got] == [lang for lang, _t in KNOWN] + [None, None, KNOWN[0][0]]

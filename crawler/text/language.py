"""The language of a post's text, with the detector's confidence (lingua-language-detector).

The detector knows the languages of LANGUAGES only, in lingua's low-accuracy mode: with them
it loads in ~0.1 s and ~25 MB, against ~5 s and ~900 MB for every language in high-accuracy
mode (measured with lingua 2.1 on this project's machine), which a crawl process cannot carry.
Low accuracy reads short texts less well; the confidence says how sure it was, and the
platform's own label is stored beside it where the platform gives one (`lang_platform`).
Hashtags, mentions and URLs are removed first: an English tag in a Chinese post says nothing
about the post's language.

A crawl describes its posts' texts (language and hashtags, describe_texts) in a second
process: crawler/text/langworker.py.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from crawler.text.hashtags import hashtags_in

if TYPE_CHECKING:
    from lingua import LanguageDetector

# ISO 639-1 codes: the languages most posted in on the platforms tagarchive reads
LANGUAGES = ("en", "zh", "ja", "ko", "es", "pt", "fr", "de", "it", "ru", "uk", "ar", "fa", "tr",
             "id", "ms", "vi", "th", "hi", "tl", "nl", "pl")
# fewer letters than this, and no language is named (an emoji, "lol", a bare link); a Han,
# kana or Hangul character counts as two (你好吗 is a sentence, "lol" is not)
MIN_LETTERS = 4
_WIDE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")

# a redacted mention (crawler/rules/privacy.py) too: a crawl detects on the text as stored
_NOISE = re.compile(r"https?://\S+|www\.\S+|[#＃][^\s#＃]+[#＃]?|[@＠](?:[\w.\-]+|\[\w+\])",
                    re.UNICODE)


@cache
def _detector() -> LanguageDetector:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper()))
                 for c in LANGUAGES]
    return LanguageDetectorBuilder.from_languages(*languages).with_low_accuracy_mode().build()


Detected = tuple[str | None, float | None]
_KNOWN: dict[str, Detected] = {}  # text -> answer; bounded (a crawl sees each post again later)
_KNOWN_MAX = 16_384


def detect_language(text: str | None) -> Detected:
    """(ISO 639-1 code, confidence 0..1) of a text, or (None, None) when it has too few
    letters to say."""
    return detect_languages([text])[0]


def detect_languages(texts: list[str | None], parallel: bool = True) -> list[Detected]:
    """detect_language for many texts at once: the detector spreads them over the machine's
    cores (lingua's parallel call, in Rust) unless `parallel` is False (a worker process, which
    leaves the other core to the crawl); answers already known are not computed again."""
    answers: list[Detected | None] = []
    todo: dict[str, str] = {}  # text -> its plain letters, for those to compute
    for text in texts:
        if not text:
            answers.append((None, None))
            continue
        known = _KNOWN.get(text)
        answers.append(known)
        if known is None and text not in todo:
            plain = _NOISE.sub(" ", text)
            if len(_LETTER.findall(plain)) + len(_WIDE.findall(plain)) < MIN_LETTERS:
                answers[-1] = (None, None)
                _remember(text, (None, None))
            else:
                todo[text] = plain
    now: dict[str, Detected] = {}
    if todo:
        detector = _detector()
        values = (detector.compute_language_confidence_values_in_parallel(list(todo.values()))
                  if parallel else
                  [detector.compute_language_confidence_values(t) for t in todo.values()])
        for text, found in zip(todo, values, strict=True):
            best = found[0] if found and found[0].value > 0 else None
            now[text] = ((None, None) if best is None else
                         (best.language.iso_code_639_1.name.lower(), round(best.value, 3)))
            _remember(text, now[text])
    return [a if a is not None else now.get(t or "") or _KNOWN.get(t or "") or (None, None)
            for a, t in zip(answers, texts, strict=True)]


def _remember(text: str, answer: Detected) -> None:
    if len(_KNOWN) >= _KNOWN_MAX:
        _KNOWN.clear()
    _KNOWN[text] = answer


# (language, confidence, hashtags) of a text
Described = tuple[str | None, float | None, list[str]]


def describe_texts(texts: list[str | None], parallel: bool = True) -> list[Described]:
    """Each text's language (detect_languages) and hashtags (crawler.text.hashtags)."""
    return [(lang, confidence, hashtags_in(text)) for text, (lang, confidence)
            in zip(texts, detect_languages(texts, parallel), strict=True)]

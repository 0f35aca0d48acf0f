"""Each stored post's language and hashtags, found by the store pipeline in a second process
(pipelines/store.py, crawler/text/langworker.py LanguageWorker), or here when that cannot answer."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

import crawler.text.language as language
from crawler.extensions.runrecord import RunState, TagJob
from crawler.items import PageItems, PostItem, SnapshotItem
from crawler.rules.privacy import Privacy
from crawler.text.language import Described, Detected, detect_language
from crawler.text.langworker import LanguageWorker
from crawler.text.tags import TagRef
from storage import duckdb_connect
from tests.crawl_helpers import ROOT
from tests.pipeline_helpers import offline_crawler, pipeline_chain
from tests.test_text_language import KNOWN
from tests.wait_helpers import reap

NOW = datetime.now(UTC)


def _posts() -> list[Any]:
    """A snapshot and a post per known text (written in its language), one too short to
    say, one whose adapter gave the language and hashtags, and one with hashtags."""
    posts: list[Any] = [SnapshotItem(platform="mastodon", tag="rednote", posts=9, source="api",
                                     observed_at=NOW, job_key="rednote")]
    posts += [PostItem(platform="mastodon", tag="rednote", post_id=f"k{i}", text=text,
                       source="api", observed_at=NOW) for i, (_l, text) in enumerate(KNOWN)]
    posts.append(PostItem(platform="mastodon", tag="rednote", post_id="short", text="lol",
                          source="api", observed_at=NOW))
    posts.append(PostItem(platform="mastodon", tag="rednote", post_id="given", lang="fr",
                          lang_confidence=0.5, hashtags=["x"], text=KNOWN[0][1] + " #RedNote",
                          source="api", observed_at=NOW))
    posts.append(PostItem(platform="mastodon", tag="rednote", post_id="tags", source="api",
                          text="来了 #TikTok难民[话题]# #小红书[话题]# 好", observed_at=NOW))
    return posts


WANT = {**{f"k{i}": lang for i, (lang, _t) in enumerate(KNOWN)}, "short": None, "given": "fr",
        "tags": "zh"}
# the tags the texts carry, as the hashtag tests in test_text_language.py read them
WANT_TAGS = {**{f"k{i}": [] for i in range(len(KNOWN))}, "short": [], "given": ["x"],
             "tags": ["tiktok难民", "小红书"]}
WANT_TAGS.update(k2=["rednote"], k5=["tiktok难民"])  # "...so nice #rednote", "#TikTok难民[话题]#"


def _crawl(out: Path, open_spider: bool) -> None:
    run = RunState(out=str(out), jobs=[TagJob("mastodon", TagRef("rednote", None))])
    stages = pipeline_chain(offline_crawler(run))
    store = stages[-1]
    if open_spider:
        store.open_spider()
    batch: Any = PageItems(_posts())
    for stage in stages:
        batch = stage.process_item(batch)
    if open_spider:
        store.close_spider()
    else:
        store.close_run()


def _stored(out: Path) -> dict[str, tuple[str | None, float | None]]:
    rows = duckdb_connect(out).execute("select post_id, lang, lang_confidence from posts")
    return {post_id: (lang, confidence) for post_id, lang, confidence in rows.fetchall()}


def _stored_tags(out: Path) -> dict[str, list[str]]:
    rows = duckdb_connect(out).execute("select post_id, hashtags from posts")
    return dict(rows.fetchall())


def test_a_crawls_posts_get_their_language_from_the_worker_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_here(*_a: Any, **_k: Any) -> list[Detected]:
        raise AssertionError("detected in the crawl's process, not the worker")

    # the worker process imports the module afresh: only this process's copy refuses
    monkeypatch.setattr(language, "detect_languages", not_here)
    _crawl(tmp_path, open_spider=True)
    stored = _stored(tmp_path)
    assert {k: lang for k, (lang, _c) in stored.items()} == WANT
    assert _stored_tags(tmp_path) == WANT_TAGS
    assert stored["given"][1] == 0.5  # the adapter's word is kept
    assert all(0 < c <= 1 for k, (lang, c) in stored.items() if lang and k != "given")


def test_without_the_worker_the_store_detects_in_this_process(tmp_path: Path) -> None:
    _crawl(tmp_path, open_spider=False)  # no spider opened: no process started
    assert {k: lang for k, (lang, _c) in _stored(tmp_path).items()} == WANT
    assert _stored_tags(tmp_path) == WANT_TAGS


def test_a_worker_that_died_is_answered_here() -> None:
    died: Future[list[Described]] = Future()
    died.set_exception(RuntimeError("the language worker ended (exit -9)"))
    texts: list[str | None] = [text for _l, text in KNOWN]
    got = LanguageWorker().answers(died, texts)
    assert [lang for lang, _c, _tags in got] == [lang for lang, _t in KNOWN]


def test_a_closed_worker_hands_back_nothing_to_wait_for() -> None:
    worker = LanguageWorker()
    worker.close()
    assert worker.submit(["some words to detect"]) is None


@pytest.mark.parametrize("mode", ["pseudonymize", "redact"])
def test_mentions_made_private_do_not_change_the_language(mode: str) -> None:
    """The store reads the text after the privacy pipeline: a pseudonym or a redaction in
    place of a mention is left out as the mention was."""
    rule = Privacy(mode, b"k" * 32)
    for _lang, text in KNOWN:
        post = PostItem(platform="x", post_id="1", tag="t", source="api", observed_at=NOW,
                        text=f"@someone @other.person {text} @last_one")
        raw = detect_language(post.text)
        rule.apply(post)
        assert post.text != f"@someone @other.person {text} @last_one"
        assert detect_language(post.text) == raw


def test_redacted_mentions_alone_name_no_language() -> None:
    assert detect_language("@[redacted] @[redacted] 🔥") == (None, None)


def test_the_worker_answers_in_order_and_ends_with_its_stdin() -> None:
    worker = LanguageWorker()
    worker.start()
    proc = worker._proc
    assert proc is not None
    batches: list[list[str | None]] = [[text for _l, text in KNOWN], [None, "🙂"],
                                       [text for _l, text in reversed(KNOWN)]]
    futures = [worker.submit(batch) for batch in batches]
    worker.close()
    got = [worker.answers(f, b) for f, b in zip(futures, batches, strict=True)]
    assert [lang for lang, _c, _t in got[0]] == [lang for lang, _t in KNOWN]
    assert [lang for lang, _c, _t in got[1]] == [None, None]
    assert [lang for lang, _c, _t in got[2]] == [lang for lang, _t in reversed(KNOWN)]
    assert proc.wait(timeout=60) == 0  # its stdin closed: it ended on its own


def test_the_worker_ends_when_the_crawl_is_killed(tmp_path: Path) -> None:
    """A crawl killed with -9 closes the worker's stdin: the worker ends, and it never held
    the crawl's own stdout or stderr (a caller reading them sees their end)."""
    script = ("import sys, time; from crawler.text.langworker import LanguageWorker; "
              "w = LanguageWorker(); w.start(); print(w._proc.pid, flush=True); "
              "w.answers(w.submit(['warm the models up please']), ['x']); "
              "print('ready', flush=True); time.sleep(600)")
    crawl = subprocess.Popen([sys.executable, "-c", script], cwd=str(ROOT),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert crawl.stdout is not None
        worker = psutil.Process(int(crawl.stdout.readline()))
        assert crawl.stdout.readline().strip() == "ready"
        crawl.kill()
        crawl.communicate(timeout=60)  # their end: no one else holds the crawl's pipes
        worker.wait(timeout=60)  # psutil.TimeoutExpired if it outlived the crawl
        assert not worker.is_running()
    finally:
        reap(crawl)

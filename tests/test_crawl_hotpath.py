"""Per-page work of the HTTP path that must not be repeated: each rule here was a profile cost."""

from __future__ import annotations

import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from parsel import Selector
from scrapy.utils.misc import _generator_callbacks_cache, is_generator_with_return_value
from scrapy.utils.request import request_from_dict
from warcio.archiveiterator import ArchiveIterator

from crawler.extensions.runrecord import TagJob
from crawler.items import PostItem
from crawler.platforms.base import Fetch
from crawler.platforms.tiktok import _universal_script_text
from crawler.rules.normalize import TagMemo, normalize_item
from crawler.spiders.snapshot import SnapshotSpider
from crawler.text.tags import TagRef, normalize_tag
from replica.server import ReplicaServer
from storage.archive import COMPRESS_LEVEL, ArchiveWriter


def test_every_request_shares_one_callback_so_scrapys_source_check_is_cached() -> None:
    spider = SnapshotSpider()
    job = TagJob("tiktok", TagRef(name="cats", id=None))
    first = spider._request(Fetch(url="https://www.tiktok.com/tag/cats", step="tag_page"), job)
    second = spider._request(Fetch(url="https://www.tiktok.com/tag/dogs", step="tag_page"), job)
    assert first is not None
    assert second is not None
    assert first.callback is second.callback
    is_generator_with_return_value(first.callback)
    del first
    assert second.callback in _generator_callbacks_cache  # a hit: no getsource + ast.parse
    # a queued request (scrapy-redis, JOBDIR) still names the callback and comes back to it
    restored = request_from_dict(second.to_dict(spider=spider), spider=spider)
    assert restored.callback is spider.on_page


UNIVERSAL = "script#__UNIVERSAL_DATA_FOR_REHYDRATION__::text"
OPEN = '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">'


def _parsed(html: str) -> str | None:
    return Selector(text=html).css(UNIVERSAL).get()


@pytest.mark.parametrize("variant", ["ssr", "csr", "not_found", "captcha", "layout_changed",
                                     "login_wall", "override"])
def test_rehydration_script_read_without_the_tree_equals_the_parsers(
        replica: ReplicaServer, variant: str) -> None:
    for name in ("cats", "benchhttp0001", "été"):
        replica.world.set_variant("tiktok", name, variant)
        for _ in range(3):  # the unpinned variants alternate between page shapes
            status, _headers, body = replica.dispatch("GET", f"/tiktok/tag/{quote(name)}", {})
            html = body.decode("utf-8")
            assert _universal_script_text(html) == _parsed(html), (variant, name, status)


@pytest.mark.parametrize("html", [
    f"<html><body>{OPEN}{{\"a\": 1}}</script></body></html>",
    f"<html><body>{OPEN}{{\"a\": \"</div>\"}}</SCRIPT ></body></html>",
    f"<html><body><!-- {OPEN}{{\"a\": 1}}</script> --></body></html>",
    f"<html><body><textarea>{OPEN}{{\"a\": 1}}</script></textarea></body></html>",
    f"<html><head><title>{OPEN}</title></head><body>{OPEN}{{\"a\": 2}}</script></body></html>",
    f"<html><body><noscript>{OPEN}{{\"a\": 1}}</script></noscript></body></html>",
    f"<html><body>{OPEN}</script></body></html>",
    f"<html><body>{OPEN}{{\"a\":\r\n1}}</script></body></html>",
    f"<html><body>{OPEN}{{\"a\": \"<!--<script>\"}}</script>{{}}</script></body></html>",
    f"<html><body><script>var s = '<style>';</script>{OPEN}{{\"a\": 1}}</script></body></html>",
    '<html><body><script type="application/json" id="__UNIVERSAL_DATA_FOR_REHYDRATION__">'
    '{"a": 3}</script></body></html>',
    "<html><body><p>no script</p></body></html>",
])
def test_rehydration_script_odd_pages_read_as_the_parser_reads_them(html: str) -> None:
    assert _universal_script_text(html) == _parsed(html)


def test_served_tag_page_is_read_without_building_the_tree(
        replica: ReplicaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    replica.world.set_variant("tiktok", "cats", "ssr")
    _status, _headers, body = replica.dispatch("GET", "/tiktok/tag/cats", {})
    html = body.decode("utf-8")
    expected = _parsed(html)
    assert expected is not None
    assert expected.startswith("{")

    def no_tree(*args: object, **kwargs: object) -> None:
        raise AssertionError("the HTML tree was built")

    monkeypatch.setattr("crawler.platforms.tiktok.Selector", no_tree)
    assert _universal_script_text(html) == expected


def test_warc_records_are_gzip_members_at_the_chosen_level(tmp_path: Path) -> None:
    when = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    body = b'<html><body>{"views": 123456789}</body></html>' * 200
    plains: dict[int, list[bytes]] = {}
    for level in (COMPRESS_LEVEL, 9):
        writer = ArchiveWriter(tmp_path / f"l{level}", "run-1", compresslevel=level)
        refs = [writer.write_response("tiktok", url=f"https://www.tiktok.com/tag/t{i}", status=200,
                                      headers={"Content-Type": "text/html", "Set-Cookie": "s=1"},
                                      body=body, observed_at=when, meta={"Tag": f"t{i}"})
                for i in range(3)]
        (path,) = writer.close()
        data = path.read_bytes()
        with path.open("rb") as fh:  # digests checked: a bad block digest raises
            records = [(r.rec_headers.get_header("WARC-Record-ID"), r.content_stream().read(),
                        r.http_headers.get_header("Set-Cookie"))
                       for r in ArchiveIterator(fh, check_digests="raise")]
        assert records == [(ref.record_id, body, None) for ref in refs]
        members, rest = [], data
        while rest:  # one gzip member per record, each compressed at the writer's level
            inflate = zlib.decompressobj(31)
            plain = inflate.decompress(rest)
            member = rest[:len(rest) - len(inflate.unused_data)]
            assert member == zlib.compress(plain, level, wbits=31)
            members.append(plain)
            rest = inflate.unused_data
        assert len(members) == 3
        assert all(m.startswith(b"WARC/1.1\r\n") for m in members)
        plains[level] = members
    # the level check above can tell the two levels apart: they compress these records
    # differently (compared as bytes: with random record ids the lengths can tie)
    assert all(zlib.compress(m, COMPRESS_LEVEL, wbits=31) != zlib.compress(m, 9, wbits=31)
               for m in plains[COMPRESS_LEVEL])


def test_tag_memo_gives_what_normalize_tag_gives_and_never_hides_a_bad_tag() -> None:
    memo = TagMemo()
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def post(tag: object) -> PostItem:
        return PostItem(platform="tiktok", tag=tag, post_id="1", observed_at=now,
                        source="embedded_json")

    for raw in [" #TikTok难民# ", "Cats", "cats", " #TikTok难民# "] * 2:
        assert normalize_item(post(raw), memo).tag == normalize_tag(raw)
    for bad in ["#", "a\x00b", 7, "#"]:
        item = normalize_item(post(bad), memo)
        assert [p for p in item.problems if p.startswith("tag: ")], bad
    assert set(memo.known) == {" #TikTok难民# ", "Cats", "cats"}


def test_one_item_worker_per_callback_because_each_page_yields_one_object() -> None:
    from crawler.cli.main import project_settings

    # Scrapy starts CONCURRENT_ITEMS tasks per callback output; 100 of them per page was ~10% of
    # an HTTP crawl. The backfill yields one batch per page, as the snapshot spider does
    # (tests/test_backfill*.py).
    assert project_settings({}).getint("CONCURRENT_ITEMS") == 1


def test_meta_refresh_is_not_followed_so_the_adapter_sees_the_page() -> None:

    from types import SimpleNamespace

    from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware
    from scrapy.exceptions import NotConfigured

    from crawler.cli.main import project_settings

    settings = project_settings({})
    with pytest.raises(NotConfigured):  # Scrapy leaves it out of the downloader chain
        MetaRefreshMiddleware.from_crawler(SimpleNamespace(settings=settings))


def test_crawls_start_with_the_startup_heap_frozen_and_a_larger_young_generation() -> None:
    import gc

    import pyarrow as pa

    from crawler.cli.main import CRAWL_GC_THRESHOLD, start_process

    seen: dict[str, object] = {}

    class Process:
        def start(self) -> None:
            seen["threshold"] = gc.get_threshold()
            seen["frozen"] = gc.get_freeze_count()
            seen["alive"] = [object()]  # made after the freeze: the collector still sees it
            seen["arrow_pool"] = pa.default_memory_pool().backend_name

    class Watching(Process):
        def start(self) -> None:
            super().start()
            seen["marker_visible"] = any(obj is marker for obj in gc.get_objects())

    before, pool = gc.get_threshold(), pa.default_memory_pool()
    marker = [object()]
    try:
        start_process(Watching())
        assert seen["threshold"] == CRAWL_GC_THRESHOLD
        assert seen["frozen"] > 1000
        assert gc.is_tracked(seen["alive"])
        assert seen["marker_visible"] is False  # frozen during the crawl: out of its view
        assert seen["arrow_pool"] == "system"
        assert gc.get_freeze_count() == 0  # and back for shutdown
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        pa.set_memory_pool(pool)


def test_a_crawl_process_does_not_load_duckdb() -> None:
    # the health checks read datasets with pyarrow; DuckDB (~50 ms and tens of MiB to import)
    # is for queries and reports
    code = ("import sys, crawler.cli.main, crawler.spiders.snapshot, crawler.spiders.backfill, "
            "crawler.spiders.worker, crawler.extensions.health; print('duckdb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "False"

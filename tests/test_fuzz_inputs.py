"""Property-based tests over the inputs a user or a file controls: config, source rules, WARC.

Each accepts what it can and refuses the rest with its own named error; none may raise
anything else, hang, or write outside its root. (Counter parsing, tag normalization and path
building have their own properties in test_text_counts.py, test_text_tags.py and
test_storage_paths.py; pages cut anywhere are in test_fuzz_pages.py.)
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crawler.platforms.base import Page, PlatformError, TagResult
from crawler.platforms.configured import (
    SourceConfigError,
    build_platform,
    check_source,
    load_sources,
)
from crawler.services.reparse import reparse
from crawler.services.watchconfig import ConfigError, load_config
from crawler.text.tags import parse_tag_arg
from storage.archive import ArchiveWriter
from storage.errors import StorageError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / "tagarchive.example.toml").read_text(encoding="utf-8")
FAST = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# each reparse example writes a run record: fewer examples keep the file within seconds
ARCHIVE = settings(FAST, max_examples=100)
AT = datetime(2026, 1, 10, 12, tzinfo=UTC)

# --- config files -----------------------------------------------------------------------------

TOML_BITS = st.sampled_from(["[", "]", "[[", "]]", "=", '"', "'", "\n", ".", ",", "{", "}",
                             "#", "true", "1", "-1", "1e999", "watches", "source", "politeness",
                             "out", "timezone", "every", "cron", "platforms", "tags", "x", " ",
                             "\\u0000", "\x00", "日本", "nan", "inf"])


@FAST
@given(edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 40),
                                st.lists(TOML_BITS, max_size=6).map("".join)), max_size=6))
def test_an_edited_config_loads_or_names_its_problem(tmp_path_factory: Any,
                                                     edits: list[tuple[float, int, str]]) -> None:
    text = EXAMPLE
    for where, cut, insert in edits:  # splice: delete `cut` chars at `where`, insert `insert`
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut:]
    path = tmp_path_factory.mktemp("cfg") / "tagarchive.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        message = str(exc).strip()
        assert message.startswith(f"{path}: ")
        if "TOML" not in message:  # TOML's own parse errors may quote the line below theirs
            assert "\n" not in message


@FAST
@given(data=st.binary(max_size=400))
def test_any_bytes_as_a_config_load_or_name_their_problem(tmp_path_factory: Any,
                                                          data: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "tagarchive.toml"
    path.write_bytes(data)
    try:
        load_config(path)
    except ConfigError as exc:  # refused by naming the file and what is wrong in it
        assert str(exc).startswith(f"{path}: ")
        assert str(exc).strip() != f"{path}:"
    try:  # what `--config` on crawl and platforms reads
        sources = load_sources(path, set())
    except SourceConfigError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert isinstance(sources, list)


# --- source rules -----------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20), st.floats(),
                    st.text(max_size=20))
ANY_RULE = st.fixed_dictionaries({}, optional={
    "css": st.sampled_from(["span.v::text", "h1", "::text", "a[", "div > p::attr(x)", ""]),
    "xpath": st.sampled_from(["//span/text()", "//*[", "count(//a)", "//@x"]),
    "json": st.sampled_from(["a.b", 'a."b c"[0]', "[0]", "a..b", "x[99]", '"', "a[0][1]"]),
    "script": st.sampled_from(["script#d", "script[", "#x"]),
    "from_capture": st.sampled_from(["/api/", "/none/"]),
    "extra": SCALARS,
})
GOOD_RULE = st.one_of(
    st.fixed_dictionaries({"css": st.sampled_from(["span.v::text", "h1::text", "span"])}),
    st.fixed_dictionaries({"xpath": st.sampled_from(["//span/text()", "//h1//text()",
                                                     "count(//span)", "//@class"])}),
    st.fixed_dictionaries({"json": st.sampled_from(["a.b", 'a."b c"[0]', "a", "[0]"])},
                          optional={"script": st.just("script#d")}),
)
RULE = st.one_of(GOOD_RULE, GOOD_RULE, ANY_RULE)
ANY_SOURCE = st.fixed_dictionaries(
    {"name": st.sampled_from(["forum", "a_1", "forum", "tiktok", "Bad", "f" * 40]),
     "url": st.sampled_from(["https://f.example/t/{tag}", "https://f.example/?q={tag}&a=1",
                             "https://f.example/t/{tag}", "ftp://x/{tag}", "https://x/",
                             "{tag}", "https:///{tag}"]),
     "counters": st.dictionaries(st.sampled_from(["views", "posts", "discussions", "likes"]),
                                 st.one_of(RULE, RULE, SCALARS), min_size=1, max_size=3)},
    optional={"render": st.one_of(st.just(False), SCALARS), "title": SCALARS,
              "capture": st.lists(st.sampled_from(["/api/", "(", "/none/"]), max_size=2),
              "not_found_text": SCALARS, "tag_display": st.one_of(RULE, SCALARS),
              "unexpected": SCALARS})
GOOD_SOURCE = st.fixed_dictionaries(
    {"name": st.sampled_from(["forum", "a_1"]),
     "url": st.sampled_from(["https://f.example/t/{tag}", "https://f.example/?q={tag}&a=1"]),
     "counters": st.dictionaries(st.sampled_from(["views", "posts", "discussions",
                                                  "participants"]), GOOD_RULE, min_size=1)},
    optional={"not_found_text": st.just("No such tag"), "tag_display": GOOD_RULE})
SOURCE = st.one_of(GOOD_SOURCE, ANY_SOURCE)
PAGE_TEXT = st.one_of(
    st.text(max_size=300),
    st.builds(lambda a, b: f'<html><span class="v">{a}</span><h1>{b}</h1>'
                           f'<script id="d">{json.dumps({"a": {"b": a, "b c": [b]}})}</script>',
              st.text(max_size=30), st.one_of(st.integers(), st.text(max_size=10))),
    st.builds(json.dumps, st.recursive(SCALARS, lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "b c", "x"]), c,
                                                 max_size=3)), max_leaves=8)),
)


@FAST
@given(raw=SOURCE, text=PAGE_TEXT, status=st.sampled_from([200, 302, 404, 500]))
def test_source_rules_are_refused_by_key_or_read_any_page_safely(raw: dict, text: str,
                                                                 status: int) -> None:
    try:
        spec = check_source(raw, "source[0]", {"tiktok"})
    except SourceConfigError as exc:
        assert str(exc).startswith("source[0]"), exc
        return
    platform = build_platform(spec)("https://mirror.example")
    fetch = platform.first_fetch(parse_tag_arg("sometag"))
    assert fetch.url.startswith("https://mirror.example/")
    page = Page(url=fetch.url, status=status, headers={}, text=text, observed_at=AT)
    try:
        result = platform.handle(fetch.step, page, parse_tag_arg("sometag"), {})
    except PlatformError:
        return
    assert isinstance(result, TagResult)
    for counter in ("views", "posts", "discussions", "participants"):
        value = result.snapshot.get(counter)
        # an exact counter is only ever an integer the page itself held
        assert value is None or (isinstance(value, int) and str(value) in text), (counter, value)


# --- WARC archives read by reparse ------------------------------------------------------------


def _archive(root: Path) -> Path:
    """A small real archive: two TikTok pages as a crawl writes them."""
    from replica.server import ReplicaServer
    from replica.world import World

    server = ReplicaServer(world=World(seed=2025))
    writer = ArchiveWriter(root, "20260110T120000Z-00000001")
    for tag in ("warcfuzz", "other"):
        server.world.set_variant("tiktok", tag, "ssr")
        status, headers, body = server.dispatch("GET", f"/tiktok/tag/{tag}", {})
        writer.write_response(
            "tiktok", url=f"http://127.0.0.1/tiktok/tag/{tag}", status=status, headers=headers,
            body=body, observed_at=AT,
            meta={"Platform": "tiktok", "Tag": {"name": tag, "id": None}, "Step": "tag_page",
                  "State": {}, "Run-Id": "20260110T120000Z-00000001"})
    [path] = writer.rotate()
    return path


@pytest.fixture(scope="module")
def warc_bytes(tmp_path_factory: Any) -> tuple[str, bytes]:
    root = tmp_path_factory.mktemp("warc")
    path = _archive(root)
    return path.relative_to(root).as_posix(), path.read_bytes()


def _reparse(tmp_path_factory: Any, rel: str, data: bytes) -> Any:
    """Reparse one archive file alone; returns (report, {tag: views}) or None when refused."""
    root = tmp_path_factory.mktemp("root")
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_bytes(data)
    try:
        report = reparse(root, compact_after=False)
    except StorageError as exc:  # named, one line
        assert "\n" not in str(exc)
        return None
    views = {}
    if (root / "snapshots").is_dir():
        views = {r["tag"]: r["views"] for r in pq.read_table(root / "snapshots").to_pylist()}
    assert report.snapshots == len(views)
    return report, views


def test_the_intact_archive_reparses_to_both_pages(tmp_path_factory: Any,
                                                   warc_bytes: tuple[str, bytes]) -> None:
    report, views = _reparse(tmp_path_factory, *warc_bytes)
    assert (report.pages, report.snapshots, report.failures) == (2, 2, {})
    assert set(views) == {"warcfuzz", "other"}
    assert all(v > 0 for v in views.values())


@pytest.fixture(scope="module")
def intact_views(tmp_path_factory: Any, warc_bytes: tuple[str, bytes]) -> dict[str, int]:
    return _reparse(tmp_path_factory, *warc_bytes)[1]


@ARCHIVE
@given(cut=st.floats(0, 1))
def test_a_truncated_archive_reparses_what_it_can_and_names_the_rest(
    tmp_path_factory: Any, warc_bytes: tuple[str, bytes], intact_views: dict[str, int],
    cut: float
) -> None:
    rel, data = warc_bytes
    got = _reparse(tmp_path_factory, rel, data[: int(len(data) * cut)])
    if got is not None:
        report, views = got
        assert report.pages <= 2
        assert report.snapshots <= report.pages
        assert all(intact_views[tag] == n for tag, n in views.items())  # never another number


@ARCHIVE
@given(flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_a_corrupted_archive_reparses_what_it_can_and_names_the_rest(
    tmp_path_factory: Any, warc_bytes: tuple[str, bytes], flips: list[tuple[float, int]]
) -> None:
    rel, data = warc_bytes
    raw = bytearray(gzip.decompress(data))  # corrupt the records, not only the compression
    for where, value in flips:
        raw[min(int(where * len(raw)), len(raw) - 1)] = value
    got = _reparse(tmp_path_factory, rel, gzip.compress(bytes(raw)))
    if got is not None:
        assert got[0].pages <= 2


@ARCHIVE
@given(headers=st.dictionaries(
    st.sampled_from(["Platform", "Tag", "Step", "State", "Run-Id", "Captures"]),
    st.one_of(st.text(max_size=20), st.builds(json.dumps, st.recursive(
        SCALARS, lambda c: st.one_of(st.lists(c, max_size=2),
                                     st.dictionaries(st.sampled_from(["name", "id"]), c,
                                                     max_size=2)), max_leaves=4))),
    max_size=6), date=st.sampled_from(["2026-01-10T12:00:00.000000Z", "2026-01-10T12:00:00Z",
                                       "yesterday", ""]))
def test_hostile_record_headers_are_skipped_by_name(
    tmp_path_factory: Any, headers: dict[str, str], date: str
) -> None:
    from warcio.warcwriter import WARCWriter

    assume(all("\n" not in v and "\r" not in v for v in headers.values()))
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version="1.1")
    extra = {f"WARC-Tagarchive-{k}": v for k, v in headers.items()}
    if date:
        extra["WARC-Date"] = date
    record = writer.create_warc_record("http://127.0.0.1/tiktok/tag/x", "resource",
                                       payload=io.BytesIO(b"<html></html>"), length=13,
                                       warc_content_type="text/html",
                                       warc_headers_dict=extra)
    writer.write_record(record)
    rel = "archive/platform=tiktok/date=2026-01-10/20260110T120000Z-00000001-0001.warc.gz"
    got = _reparse(tmp_path_factory, rel, out.getvalue())
    if got is not None:
        assert got[0].snapshots == 0  # an empty page never yields a number

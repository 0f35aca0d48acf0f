"""The item rules as plain functions (crawler/rules/), and the seams the pipelines use."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from scrapy.settings import Settings
from scrapy.signalmanager import SignalManager
from scrapy.statscollectors import MemoryStatsCollector

from crawler.items import ActivityItem, PostItem, SnapshotItem
from crawler.rules import (
    DATASET_OF,
    Rows,
    TagMemo,
    dedupe_key,
    item_kind,
    item_problems,
    normalize_item,
    raw_json,
    reject_row,
)
from crawler.signals import run_started
from storage import DATASETS, SCHEMA_VERSION

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def snapshot(**kw: object) -> SnapshotItem:
    base: dict[str, object] = dict(platform="tiktok", tag="cats", observed_at=NOW,
                                   source="embedded_json", views=5)
    base.update(kw)
    return SnapshotItem(**base)  # type: ignore[arg-type]


def post(**kw: object) -> PostItem:
    base: dict[str, object] = dict(platform="tiktok", tag="cats", post_id="1", observed_at=NOW,
                                   source="embedded_json")
    base.update(kw)
    return PostItem(**base)  # type: ignore[arg-type]


def test_dedupe_key_names_the_kind_and_the_identity() -> None:
    assert dedupe_key(snapshot()) == ("snapshot", "tiktok", "cats")
    assert dedupe_key(post(post_id="9")) == ("post", "tiktok", "cats", "9")
    day = ActivityItem(platform="tiktok", tag="cats", day=date(2026, 11, 20), observed_at=NOW,
                       source="api", coverage="complete")
    assert dedupe_key(day) == ("activity", "tiktok", "cats", "2026-11-20")
    assert dedupe_key(object()) is None
    # the same post under another tag is another row
    assert dedupe_key(post(tag="dogs")) != dedupe_key(post())


def test_normalize_item_parses_display_text_and_canonicalizes_the_tag() -> None:
    item = normalize_item(snapshot(tag=" #Cats ", views=None, views_text="1.2M"))
    assert (item.tag, item.views, item.views_text, item.views_semantics) == (
        "cats", 1_200_000, "1.2M", "rounded")
    bad = normalize_item(post(tag="#"))
    assert [p for p in bad.problems if p.startswith("tag: ")]


def test_normalize_item_takes_the_tag_rule_it_is_given() -> None:
    memo = TagMemo()
    normalize_item(post(tag="Cats"), memo)
    assert memo.known == {"Cats": "cats"}
    assert normalize_item(post(tag="X"), lambda raw: "fixed").tag == "fixed"


def test_reject_row_carries_reasons_raw_json_and_run() -> None:
    item = snapshot(views=-1)
    kind = item_kind(item)
    reasons = item_problems(item, NOW, 10**15, timedelta(minutes=5))
    row = reject_row(item, kind, reasons, NOW, "r1")  # type: ignore[arg-type]
    assert (kind, row["date"], row["item_type"], row["run_id"]) == (
        "snapshot", "2026-11-23", "snapshot", "r1")
    assert row["reasons"] == ["views: negative (-1)"]
    assert row["raw"] == raw_json(item)
    partitions = {"date", "platform"}  # Hive partition columns, not in the file's schema
    assert set(row) - partitions <= set(DATASETS["rejects"].schema.names)
    assert item_kind(object()) is None


def test_rows_give_the_schema_columns_partitioned_and_labelled() -> None:
    rows = Rows()
    row = rows.row(snapshot(), DATASET_OF[SnapshotItem], "r1")
    assert set(row) - {"date", "platform"} <= set(DATASETS["snapshots"].schema.names)
    assert (row["platform"], row["tag"], row["views"], row["date"], row["run_id"],
            row["schema_version"]) == ("tiktok", "cats", 5, "2026-11-23", "r1", SCHEMA_VERSION)
    day = ActivityItem(platform="tiktok", tag="cats", day=date(2026, 11, 20), observed_at=NOW,
                       source="api", coverage="complete")
    assert rows.row(day, "activity", "r1")["date"] == "2026-11-20"  # its own day


def test_the_dedupe_pipeline_forgets_its_keys_when_a_run_starts() -> None:
    """The worker starts each batch with `run_started`, not by reaching into Scrapy's scraper."""
    from types import SimpleNamespace

    from pipelines.dedupe import DedupePipeline

    signals = SignalManager()
    crawler = SimpleNamespace(settings=Settings(), signals=signals, spider=None)
    crawler.stats = MemoryStatsCollector(crawler)  # type: ignore[arg-type]
    pipeline = DedupePipeline.from_crawler(crawler)
    signals.send_catch_log(run_started, run=object())  # the spider opens
    pipeline.process_item(post())
    assert pipeline.seen == {("post", "tiktok", "cats", "1")}
    signals.send_catch_log(run_started, run=object())  # a worker's next batch
    assert pipeline.seen == set()
    assert pipeline.process_item(post()) is not None  # the same post, a new run: kept


def test_validated_gives_an_identity_field_and_refuses_a_missing_one() -> None:
    """Dedupe and store report outcomes under fields ValidatePipeline guaranteed; an item that
    skipped it is a wiring error, said loudly instead of an outcome filed under None."""
    from pipelines import validated

    assert validated("tiktok", "platform") == "tiktok"
    assert validated("", "tag") == ""  # emptiness is ValidatePipeline's business, not this
    with pytest.raises(RuntimeError, match="without platform got past ValidatePipeline"):
        validated(None, "platform")


def test_a_dedupe_key_keeps_a_missing_identity_field_as_none() -> None:
    """An unvalidated item still has a key (what dedupe did before mypy typed it so)."""
    assert dedupe_key(PostItem(platform="tiktok", tag="cats")) == ("post", "tiktok", "cats", None)

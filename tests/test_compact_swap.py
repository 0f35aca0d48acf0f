"""Compaction under load: concurrent readers and writers, a crash at each step, random SIGKILLs."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pytest

import storage.compact.local as compaction
import storage.compact.swap as swap
from storage import DatasetWriter, duckdb_connect, open_dataset
from storage.compact import compact
from storage.locks import swapping
from tests.compact_helpers import (
    DAY,
    NOW,
    all_readable,
    data_files,
    per_partition,
    publish,
    rows,
    run_id,
    snapshot,
    tree,
)

PARTITION = ("tiktok", "2026-01-10")


class SimulatedCrash(BaseException):
    """Raised where the process would die; compaction code catches only Exception."""


def batch(run: int, unique: int, duplicated: int, platform: str = "tiktok") -> list[dict]:
    """`unique` observations of run `run` on DAY, the first `duplicated` of them stored twice."""
    moments = [DAY + timedelta(seconds=run * 1000 + i) for i in range(unique)]
    rows_ = [snapshot(f"t{i % 7}", m, platform=platform, views=run) for i, m in enumerate(moments)]
    return rows_ + rows_[:duplicated]


def unique_count(records: list[dict]) -> Counter[tuple[str, str]]:
    """Rows per partition once duplicates by (tag, observed_at, run_id) are removed."""
    keys = {(r["platform"], str(r["date"]), r["tag"], r["observed_at"], r["run_id"])
            for r in records}
    return Counter(k[:2] for k in keys)


def test_readers_never_see_a_partial_double_or_empty_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Had the two-rename fallback been used, its window is widened so a reader would catch it.
    for step in ("_retire", "_install"):
        slow = getattr(swap, step)
        monkeypatch.setattr(swap, step, lambda *a, _s=slow: (time.sleep(0.02), _s(*a)))
    publish(tmp_path, 1, "snapshots", batch(1, 10, 5))
    publish(tmp_path, 2, "snapshots", batch(2, 10, 5))
    compact(tmp_path, now=NOW)
    # Every state the partition goes through, in order; a reader may see any state between the
    # one current when its query starts and the one after the change in progress when it ends.
    states = [len(rows(tmp_path, "snapshots"))]
    version = [0]
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []
    raced: list[str] = []
    exchanged: list[bool] = []
    failures: list[BaseException] = []
    con = duckdb_connect(tmp_path)
    where = "platform = 'tiktok' AND date = DATE '2026-01-10'"

    def read(use_duckdb: bool) -> int:
        if use_duckdb:
            return con.execute(f"SELECT count(*) FROM snapshots WHERE {where}").fetchone()[0]
        dataset = open_dataset(tmp_path, "snapshots")
        return dataset.count_rows(
            filter=(pc.field("platform") == "tiktok") & (pc.field("date") == "2026-01-10"))

    def reader() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            start = version[0]
            try:
                count = read(n % 2 == 0)
            except (duckdb.IOException, FileNotFoundError) as exc:
                # Listed the old files, then the swap removed one before it was opened (or, for
                # pyarrow, stat-ed): the query fails (documented), it never answers wrongly.
                # DuckDB's "No files found" would be an empty view and is not accepted.
                if isinstance(exc, duckdb.IOException) and "No such file" not in str(exc):
                    failures.append(exc)
                raced.append(type(exc).__name__)
                continue
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
                return
            seen.append((start, version[0], count))

    def change(action: Callable[[], Any], count_after: int) -> None:
        states.append(count_after)
        action()
        version[0] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        run = 10
        # A dozen swaps, and more while a loaded machine has starved the reader of turns.
        while len(exchanged) < 12 or (len(seen) < 40 and len(exchanged) < 40):
            for _ in range(2):
                run += 1
                change(lambda r=run: publish(tmp_path, r, "snapshots", batch(r, 10, 5)),
                       states[-1] + 15)
            change(lambda: exchanged.append(compact(tmp_path, ["snapshots"], now=NOW).exchange),
                   states[-1] - 10)
            time.sleep(0.01)  # let the reader run against the settled state too
    finally:
        stop.set()
        thread.join()
    assert not failures, failures[:3]
    assert all(exchanged)
    assert len(seen) >= 40, (len(seen), len(raced))
    wrong = [(a, b, c) for a, b, c in seen if c not in states[a: b + 2]]
    assert not wrong, (wrong[:5], states[:10])
    assert len(rows(tmp_path, "snapshots")) == states[-1] == 20 + len(exchanged) * 20


def test_a_writer_publishing_during_compactions_loses_nothing(tmp_path: Path) -> None:
    publish(tmp_path, 1, "snapshots", batch(1, 20, 0))
    publish(tmp_path, 2, "snapshots", batch(2, 20, 0, platform="xiaohongshu"))
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def crawl() -> None:
        # One file per row, as fast as it goes, into the partitions being compacted.
        try:
            with DatasetWriter(tmp_path, run_id(5000), flush_rows=1) as writer:
                i = 0
                while not stop.is_set():
                    i += 1
                    at = DAY + timedelta(hours=12, microseconds=i)
                    platform = ("tiktok", "xiaohongshu")[i % 2]
                    writer.add("snapshots", snapshot("w", at, platform=platform))
                    written.append(i)
                    time.sleep(0.002)  # hourly crawls are slower still; this keeps files few
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=crawl)
    thread.start()
    carried = compacted = 0
    try:
        for _ in range(5):
            # wait for new files first: a starved writer thread must not leave nothing to do
            target, deadline = len(written) + 3, time.monotonic() + 10
            while len(written) < target and time.monotonic() < deadline and not errors:
                time.sleep(0.005)
            report = compact(tmp_path, ["snapshots"], now=NOW)
            carried += report.datasets["snapshots"].carried_over
            compacted += report.datasets["snapshots"].compacted
            assert report.errors == []
    finally:
        stop.set()
        thread.join()
    compact(tmp_path, ["snapshots"], now=NOW)
    assert not errors
    got = rows(tmp_path, "snapshots")
    assert len(got) == 40 + len(written)
    assert len({(r["platform"], r["observed_at"], r["run_id"]) for r in got}) == len(got)
    assert compacted >= 5
    assert len(written) > 5
    assert len(data_files(tmp_path)) == 2


def test_a_file_published_between_listing_and_swap_is_carried_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(tmp_path, 1, "snapshots", batch(1, 5, 2))
    publish(tmp_path, 2, "snapshots", batch(2, 5, 0))
    original = compaction.deduplicate
    late: list[Path] = []
    inode: list[int] = []

    def dedupe_then_a_crawl_publishes(dataset: str, tables: Any) -> Any:
        result = original(dataset, tables)
        late.extend(publish(tmp_path, 3, "snapshots", batch(3, 5, 0)))
        inode.append(late[0].stat().st_ino)
        return result

    monkeypatch.setattr(compaction, "deduplicate", dedupe_then_a_crawl_publishes)
    report = compact(tmp_path, ["snapshots"], now=NOW).datasets["snapshots"]

    assert (report.compacted, report.carried_over, report.files_after) == (1, 1, 2)
    (path,) = late
    assert path.stat().st_ino == inode[0]  # the crawl's own file, linked, not rewritten
    assert len(rows(tmp_path, "snapshots")) == 15


def test_writers_wait_while_a_swap_holds_the_lock(tmp_path: Path) -> None:
    publish(tmp_path, 1, "snapshots", batch(1, 3, 0))
    done = threading.Event()

    def crawl() -> None:
        publish(tmp_path, 2, "snapshots", batch(2, 3, 0))
        done.set()

    with swapping(tmp_path, timeout=5):
        thread = threading.Thread(target=crawl)
        thread.start()
        time.sleep(0.3)
        assert not done.is_set()
        assert len(data_files(tmp_path)) == 1
        assert not any(".tmp" in p for p in tree(tmp_path))  # not even its temp file yet
    thread.join(timeout=60)  # a hang guard: it publishes as soon as the swap ends
    assert done.is_set()
    assert len(data_files(tmp_path)) == 2


def crash_in(monkeypatch: pytest.MonkeyPatch, name: str, module: Any = compaction) -> None:
    """Make <module>.<name> (storage.compact.local by default) die like a killed process (no
    cleanup after it)."""

    def crash(*args: Any, **kwargs: Any) -> None:
        raise SimulatedCrash(name)

    monkeypatch.setattr(module, name, crash)


def build(root: Path) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """Two partitions with duplicates; returns raw and unique counts per partition."""
    for run in (1, 2, 3):
        publish(root, run, "snapshots", batch(run, 6, 3) + batch(run, 4, 1, "xiaohongshu"))
    everything = rows(root, "snapshots")
    return per_partition(everything), unique_count(everything)


@pytest.mark.parametrize("step", ["write_job", "swap_in", "discard", "fallback"])
def test_a_crash_at_any_step_leaves_old_or_new_and_the_next_run_repairs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    raw, unique = build(tmp_path)
    with monkeypatch.context() as patch:
        if step == "fallback":  # killed between the two renames of the fallback swap
            patch.setattr(swap, "_renameat2", None)
            crash_in(patch, "_install", swap)
            patch.setattr(swap, "_restore", lambda *a: None)
        else:
            crash_in(patch, step)
        with pytest.raises(SimulatedCrash):
            compact(tmp_path, ["snapshots"], now=NOW)

    assert all_readable(tmp_path) >= 1
    visible = per_partition(rows(tmp_path, "snapshots"))
    first = ("tiktok", "2026-01-10")  # partitions are compacted in name order
    if step == "fallback":
        assert visible[first] == 0  # the documented window of the fallback
    else:
        assert visible[first] in (raw[first], unique[first])
    assert visible[("xiaohongshu", "2026-01-10")] == raw[("xiaohongshu", "2026-01-10")]
    assert any(p.startswith(".tagarchive/") for p in tree(tmp_path))  # the crashed job

    report = compact(tmp_path, ["snapshots"], now=NOW)

    assert report.recovered_jobs == 1
    assert report.errors == []
    assert per_partition(rows(tmp_path, "snapshots")) == unique
    assert unique_count(rows(tmp_path, "snapshots")) == unique
    assert tree(tmp_path) == data_files(tmp_path)
    assert len(data_files(tmp_path)) == 2


def test_a_crawl_recreating_a_partition_after_a_fallback_crash_is_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, unique = build(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(swap, "_renameat2", None)
        crash_in(patch, "_install", swap)
        patch.setattr(swap, "_restore", lambda *a: None)
        with pytest.raises(SimulatedCrash):
            compact(tmp_path, ["snapshots"], now=NOW)
    publish(tmp_path, 9, "snapshots", batch(9, 5, 0))  # recreates the missing directory
    assert per_partition(rows(tmp_path, "snapshots"))[PARTITION] == 5

    report = compact(tmp_path, ["snapshots"], now=NOW)

    assert report.recovered_jobs == 1
    assert report.errors == []
    assert per_partition(rows(tmp_path, "snapshots"))[PARTITION] == unique[PARTITION] + 5
    assert tree(tmp_path) == data_files(tmp_path)
    assert len(data_files(tmp_path)) == 2


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    # Children fork from a server that has imported pyarrow once, so a run starts in
    # milliseconds and the kills land inside compaction rather than inside imports.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["storage.compact.local"])
    platforms = ("tiktok", "xiaohongshu")
    rng = random.Random(5)
    run = 0

    def crawl_round(days: int) -> None:
        nonlocal run
        for day in range(days):
            run += 1
            rows_ = []
            for platform in platforms:
                moment_batch = batch(run, 4, 2, platform)
                for row in moment_batch:
                    row["observed_at"] += timedelta(days=day)
                    row["date"] = str(row["observed_at"].date())
                rows_ += moment_batch
            publish(tmp_path, run, "snapshots", rows_)

    crawl_round(2)
    crawl_round(2)
    warm_up = context.Process(target=time.sleep, args=(0,))  # starts the fork server
    warm_up.start()
    warm_up.join()
    started = time.monotonic()  # one uninterrupted run sets the range of kill moments
    child = context.Process(target=compact, args=(str(tmp_path), ["snapshots"]),
                            kwargs={"now": NOW})
    child.start()
    child.join()
    assert child.exitcode == 0
    duration = time.monotonic() - started
    crawl_round(2)
    kills = attempts = 0
    while kills < 20:
        attempts += 1
        assert attempts < 80, f"only {kills} kills landed in {attempts} runs"
        current = rows(tmp_path, "snapshots")
        before, unique = per_partition(current), unique_count(current)
        child = context.Process(target=compact, args=(str(tmp_path), ["snapshots"]),
                                kwargs={"now": NOW})
        child.start()
        time.sleep(rng.uniform(0.0, duration))
        child.kill()
        child.join()
        kills += child.exitcode == -9

        assert all_readable(tmp_path) >= len(before)
        after = per_partition(rows(tmp_path, "snapshots"))
        for partition, count in after.items():
            assert count in (before[partition], unique[partition]), (partition, count)
        assert set(after) == set(before)
        crawl_round(2)  # the next hours' crawls give the next run work again

    unique = unique_count(rows(tmp_path, "snapshots"))
    report = compact(tmp_path, ["snapshots"], now=NOW)
    assert report.errors == []
    final = rows(tmp_path, "snapshots")
    assert per_partition(final) == unique == unique_count(final)
    assert len(data_files(tmp_path)) == len(unique)
    assert tree(tmp_path) == data_files(tmp_path)

"""Backfill walks: a tag's public timeline walked back in time, and what it proves per day.

Adapters page through a timeline (crawler/platforms/timeline.py); a `Walk` keeps what the pages
showed: every post counted once, per UTC day, and which days the walk can vouch for. Its
coverage per day is `complete` where the listing is chronological and was walked to the
window's start without hitting a cap, and `lower_bound` where the listing is ranked (a sample of
popular posts) or stopped at a cap.

`WalkStore` keeps a walk resumable, under `<out>/.tagarchive/backfill/…`, outside every dataset
tree: every page appends its post ids to a journal, and the state file (the next page to fetch,
naming how much of the journal it vouches for) is replaced atomically only once the rows of the
pages it vouches for are on disk (the spider flushes the dataset writer first). A walk
interrupted at any point (kill -9 too) resumes from the last state written, with the journal cut
back to what that state vouches for. Rows written after that state are not lost either: the
state names the run that was writing, and `stored_posts` reads that run's posts back, so a
re-fetched page counts them once and stores them no second time.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from crawler.platforms.base import Fetch, RenderSpec, SignSpec
from crawler.platforms.timeline import TimelinePage, Window
from crawler.text.tags import TagRef

STATE_VERSION = 1
BACKFILL_DIR = Path(".tagarchive", "backfill")
COMPLETE = "complete"
LOWER_BOUND = "lower_bound"


class BackfillStateError(ValueError):
    """A state file that cannot be resumed (another version, another walk, or damaged)."""


# --- fetches as plain data (the state file) -------------------------------------------------


def fetch_to_state(fetch: Fetch) -> dict[str, Any]:
    return {
        "url": fetch.url, "step": fetch.step, "method": fetch.method,
        "body": base64.b64encode(fetch.body).decode("ascii") if fetch.body is not None else None,
        "headers": dict(fetch.headers), "state": fetch.state,
        "render": None if fetch.render is None else fetch.render.to_meta(),
        # a signed page, and the rendered one that stands in for it (docs/access.md)
        "sign": None if fetch.sign is None else {
            **fetch.sign.to_meta(),
            "fallback": None if fetch.sign.fallback is None else fetch_to_state(
                fetch.sign.fallback)},
    }


def fetch_from_state(data: dict[str, Any]) -> Fetch:
    render, sign = data.get("render"), data.get("sign")  # no "sign" in states before signing
    return Fetch(
        url=data["url"], step=data["step"], method=data.get("method", "GET"),
        body=base64.b64decode(data["body"]) if data.get("body") is not None else None,
        headers=dict(data.get("headers") or {}), state=dict(data.get("state") or {}),
        render=None if render is None else RenderSpec(
            capture=tuple(render.get("capture") or ()), wait_for=render.get("wait_for"),
            timeout_ms=int(render.get("timeout_ms", 15_000))),
        sign=None if sign is None else SignSpec(
            signer=sign["signer"], uri=sign.get("uri", ""),
            fallback=fetch_from_state(sign["fallback"]) if sign.get("fallback") else None),
    )


# --- the walk -------------------------------------------------------------------------------


@dataclass
class Walk:
    """One backfill's progress: posts counted per day, caps met, and the next page to fetch."""

    platform: str
    tag: TagRef
    window: Window
    next_fetch: Fetch | None = None
    pages: int = 0
    ranked: bool = False
    capped_spans: list[tuple[datetime, datetime]] = field(default_factory=list)
    reached: datetime | None = None  # the oldest post time any page showed
    tag_display: str | None = None
    done: bool = False
    seen: set[str] = field(default_factory=set)
    by_day: dict[date, set[str]] = field(default_factory=dict)
    authors: dict[date, set[str]] = field(default_factory=dict)
    # pages read per way they were fetched (http, signed_http, in_page_fetch, render)
    fetched_by: dict[str, int] = field(default_factory=dict)

    @property
    def posts(self) -> int:
        return sum(len(ids) for ids in self.by_day.values())

    def accept(self, page: TimelinePage,
               fetched_by: str = "http") -> tuple[list[dict[str, Any]], list[list[Any]]]:
        """Count one page, fetched as `fetched_by`: returns its new in-window posts and their
        journal entries.

        The walk's next fetch becomes the page's, unless a chronological listing has already
        shown a post older than the window (everything newer is then proven).
        """
        self.pages += 1
        self.fetched_by[fetched_by] = self.fetched_by.get(fetched_by, 0) + 1
        self.ranked |= page.ranked
        if page.oldest_seen is not None and (self.reached is None
                                             or page.oldest_seen < self.reached):
            self.reached = page.oldest_seen
        if page.tag_display and not self.tag_display:
            self.tag_display = page.tag_display
        if page.capped:
            through = page.oldest_seen or self.window.end
            span = page.capped_span or (self.window.start, through + timedelta(microseconds=1))
            self.capped_spans.append(span)
        fresh: list[dict[str, Any]] = []
        entries: list[list[Any]] = []
        for post in page.posts:
            created, post_id = post.get("created_at"), post.get("post_id")
            if created is None or post_id is None or not self.window.contains(created):
                continue
            if post_id in self.seen:
                continue  # shown twice (overlapping pages, a re-query after a cap, a resume)
            day = created.astimezone(UTC).date()
            author = post.get("author_id")
            self._count(str(post_id), day, author)
            fresh.append(post)
            entries.append([str(post_id), day.isoformat(), author])
        passed = (not self.ranked and page.oldest_seen is not None
                  and page.oldest_seen < self.window.start)
        self.next_fetch = None if passed else page.next_fetch
        self.done = self.next_fetch is None
        return fresh, entries

    def _count(self, post_id: str, day: date, author: str | None) -> None:
        self.seen.add(post_id)
        self.by_day.setdefault(day, set()).add(post_id)
        if author is not None:
            self.authors.setdefault(day, set()).add(str(author))

    def replay(self, entries: list[list[Any]]) -> None:
        """Count journal entries again (on resume); ids already counted are skipped."""
        for post_id, day, author in entries:
            if post_id not in self.seen:
                self._count(post_id, date.fromisoformat(day), author)

    def coverage(self) -> dict[date, str]:
        """Per window day: complete, or lower_bound where ranked or capped."""
        out = {}
        for day in self.window.days():
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = start + timedelta(days=1)
            capped = any(a < end and start < b for a, b in self.capped_spans)
            out[day] = LOWER_BOUND if self.ranked or capped else COMPLETE
        return out

    def activity(self, observed_at: datetime, source: str) -> list[dict[str, Any]]:
        """One activity row per window day (zero days too, so a re-run replaces every day).

        `source` is the adapter's (its rendered timeline's captured JSON, say); a walk whose
        pages were all signed API answers, none rendered, read `api`."""
        if "render" not in self.fetched_by and any(
                way in self.fetched_by for way in ("signed_http", "in_page_fetch")):
            source = "api"
        coverage = self.coverage()
        return [{"platform": self.platform, "day": day,
                 "posts": len(self.by_day.get(day, ())),
                 "participants": len(self.authors.get(day, ())),
                 "coverage": coverage[day], "source": source, "observed_at": observed_at}
                for day in self.window.days()]

    def as_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "platform": self.platform,
            "tag": {"name": self.tag.name, "id": self.tag.id},
            "window": self.window.as_state(),
            "next": None if self.next_fetch is None else fetch_to_state(self.next_fetch),
            "pages": self.pages,
            "posts": self.posts,
            "ranked": self.ranked,
            "capped_spans": [[a.isoformat(), b.isoformat()] for a, b in self.capped_spans],
            "reached": None if self.reached is None else self.reached.isoformat(),
            "tag_display": self.tag_display,
            "done": self.done,
            "fetched_by": dict(self.fetched_by),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Walk:
        if data.get("version") != STATE_VERSION:
            raise BackfillStateError(f"state version {data.get('version')!r}, expected "
                                     f"{STATE_VERSION}")
        tag = data["tag"]
        walk = cls(platform=data["platform"], tag=TagRef(name=tag["name"], id=tag["id"]),
                   window=Window.from_state(data["window"]))
        walk.next_fetch = fetch_from_state(data["next"]) if data.get("next") else None
        walk.pages = int(data["pages"])
        walk.ranked = bool(data["ranked"])
        walk.capped_spans = [(datetime.fromisoformat(a), datetime.fromisoformat(b))
                             for a, b in data["capped_spans"]]
        walk.reached = datetime.fromisoformat(data["reached"]) if data.get("reached") else None
        walk.tag_display = data.get("tag_display")
        walk.done = bool(data["done"])
        walk.fetched_by = {str(k): int(v) for k, v in (data.get("fetched_by") or {}).items()}
        return walk

    def progress(self) -> float | None:
        """How much of the window is proven (0..1) for a chronological walk, else None."""
        if self.ranked or self.reached is None:
            return None
        span = (self.window.end - self.window.start).total_seconds()
        covered = (self.window.end - max(self.reached, self.window.start)).total_seconds()
        return max(0.0, min(1.0, covered / span))


# --- files ----------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WalkStore:
    """A walk's state file and journal under `<out>/.tagarchive/backfill/<platform>/<tag>/…`."""

    run_id: str | None = None  # the run now walking: named in every state it writes
    previous_run: str | None = None  # the run named by the state `resume` read
    finished = False  # a state with `done` was committed: every row of the walk is on disk

    def __init__(self, out: str | os.PathLike[str], platform: str, tag_key: str,
                 window: Window) -> None:
        from storage.paths import ensure_state_path  # UnsafePathError if .tagarchive leads out

        root = Path(out)
        self.directory = ensure_state_path(root, root / BACKFILL_DIR / platform / quote(
            tag_key, safe="") / f"{window.since.isoformat()}_{window.until.isoformat()}")
        self.state_path = self.directory / "state.json"
        self.journal_path = self.directory / "journal.jsonl"

    def exists(self) -> bool:
        return self.state_path.is_file()

    def read_state(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] | None = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise BackfillStateError(f"{self.state_path} is damaged: {exc}") from None
        return state

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One process per walk: a second backfill of the same window is refused."""
        from storage.locks import exclusive

        self.directory.mkdir(parents=True, exist_ok=True)
        with exclusive(self.directory, f"the backfill in {self.directory}"):
            yield

    def start(self, walk: Walk, run_id: str | None = None) -> None:
        """Begin a fresh walk for run `run_id`: an empty journal, then the first state."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.journal_path, "wb") as handle:
            os.fsync(handle.fileno())
        self.run_id = run_id
        self.commit(walk.as_state(), journal_bytes=0, durable_rename=True)

    def resume(self) -> Walk:
        """The walk as its last state left it, its journal cut back to that state and replayed.

        `previous_run` is then the run that wrote that state: rows it stored after it are on
        disk but in no journal (see `stored_posts` and `adopt`).
        """
        data = self.read_state()
        if data is None:
            raise BackfillStateError(f"no backfill state in {self.directory}")
        walk = Walk.from_state(data)
        size = int(data.get("journal_bytes", 0))
        with open(self.journal_path, "r+b") as handle:
            # pages journaled after the last state write were never vouched for: drop them
            handle.truncate(size)
            handle.seek(0)
            for line in handle.read().decode("utf-8").splitlines():
                walk.replay(json.loads(line)["posts"])
        self.previous_run = data.get("run_id")
        return walk

    def adopt(self, walk: Walk, run_id: str, stored: list[list[Any]]) -> None:
        """Hand a resumed walk to run `run_id`, counting first the posts an interrupted run
        stored after its last state (`stored_posts`): a re-fetched page shows them again, and
        they are then neither counted nor stored twice. Committed before the run writes a row,
        so the state always names the run whose rows may lie beyond it."""
        recovered = [entry for entry in stored if entry[0] not in walk.seen]
        size = self.journal_path.stat().st_size
        if recovered:
            walk.replay(recovered)
            size = self.append({"page": None, "stored_by": self.previous_run,
                                "posts": recovered})
        self.run_id = run_id
        self.commit(walk.as_state(), journal_bytes=size, durable_rename=True)

    def journal(self, walk: Walk, entries: list[list[Any]], fetched_by: str | None = None) -> int:
        """After a page: append its posts (and how it was fetched) to the journal (not synced:
        no state vouches for the line yet). Returns the journal's length with it, for the state
        that will."""
        line: dict[str, Any] = {"page": walk.pages, "posts": entries}
        if fetched_by is not None:
            line["fetched_by"] = fetched_by
        return self.append(line)

    def append(self, line: dict[str, Any]) -> int:
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        with open(self.journal_path, "ab") as handle:
            handle.write(data)
            return handle.tell()

    def commit(self, state: dict[str, Any], journal_bytes: int,
               durable_rename: bool = False) -> None:
        """Vouch for the journal up to `journal_bytes`: sync it, then replace the state.

        Call only once the rows of every page so far journaled are durable (flushed): the state
        is what `--resume` trusts.
        """
        with open(self.journal_path, "rb") as handle:
            os.fsync(handle.fileno())
        data = dict(state, journal_bytes=journal_bytes, run_id=self.run_id,
                    updated_at=datetime.now(UTC).isoformat())
        temp = self.directory / ".state.json.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.state_path)
        self.finished = bool(state.get("done"))
        if durable_rename:
            # between pages this is skipped: should a power cut undo the rename, the older state
            # names a shorter journal, which resume cuts to, and the same run, whose rows
            # resume reads back
            _fsync_dir(self.directory)

    def record(self, walk: Walk, entries: list[list[Any]]) -> None:
        """Journal a page and vouch for it at once (its rows must already be durable)."""
        self.commit(walk.as_state(), self.journal(walk, entries))


def stored_posts(root: str, platform: str, run_id: str) -> list[list[Any]]:
    """Journal entries ([post_id, day, author]) for the `posts` rows run `run_id` stored.

    A backfill run stores one walk's posts only. Its rows are in partitions dated on or after
    the day it started (a post's partition is the day it was observed), which the run id
    names; they keep their run_id through compaction.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    from storage import StorageError, open_dataset

    where = (ds.field("platform") == platform) & (ds.field("run_id") == run_id)
    try:
        started = datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").date()
        where &= ds.field("date") >= started.isoformat()
    except ValueError:  # a run id chosen by a scheduler (TAGARCHIVE_RUN_ID): read every day
        pass
    try:
        table = open_dataset(root, "posts").to_table(
            columns=["post_id", "created_at", "author_id"], filter=where)
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"reading back the posts of run {run_id} failed: {exc}") from exc
    entries = []
    for post_id, created, author in zip(*(table[c].to_pylist() for c in table.column_names),
                                        strict=True):
        if created is not None:
            entries.append([post_id, created.astimezone(UTC).date().isoformat(), author])
    return entries

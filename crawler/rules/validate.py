"""Validate: every reason an item must not be stored, and its row in `rejects`."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from crawler.items import (
    ACTIVITY_COUNTERS,
    COUNTERS,
    POST_COUNTERS,
    ActivityItem,
    PostItem,
    SnapshotItem,
)
from crawler.text.textcheck import looks_mojibake

TEXT_FIELDS = ("tag_display", "text", "author_name")
COVERAGE = ("complete", "lower_bound", "platform_reported")
_KINDS = {SnapshotItem: "snapshot", PostItem: "post", ActivityItem: "activity"}


def item_kind(item: Any) -> str | None:
    """"snapshot", "post" or "activity" (its `rejects.item_type`); None for anything else."""
    return _KINDS.get(type(item))


def item_problems(item: Any, now: datetime, max_count: int, skew: timedelta) -> list[str]:
    """Every reason this item must not be stored (empty when it is fine)."""
    reasons = list(item.problems)
    if not item.platform:
        reasons.append("missing identity: platform")
    if isinstance(item, SnapshotItem):
        if not item.tag:
            reasons.append("missing identity: tag")
        counters: tuple[str, ...] = COUNTERS
        # a capped counter (Instagram's media_count at 2^31-1) is seen, only not stored as a
        # value: its figure is in <counter>_text
        # and a snapshot whose caveats say why it has no counter (a Mastodon-API server that
        # keeps no tag history) still records the tag, its url and the posts seen under it
        if all(getattr(item, c) is None and getattr(item, f"{c}_semantics") != "capped"
               for c in COUNTERS) and not item.problems and not item.caveats:
            reasons.append("no counter at all")
    elif isinstance(item, ActivityItem):
        if not item.tag:
            reasons.append("missing identity: tag")
        if item.day is None:
            reasons.append("missing identity: day")
        elif item.day > (now + skew).date():
            reasons.append(f"day in the future ({item.day.isoformat()})")
        if item.coverage not in COVERAGE:
            reasons.append(f"coverage: unknown ({item.coverage!r})")
        counters = ACTIVITY_COUNTERS
    else:
        if not item.post_id:
            reasons.append("missing identity: post_id")
        counters = POST_COUNTERS
    if not item.source:
        reasons.append("missing source")
    reasons += _counter_problems(item, counters, max_count)
    if item.observed_at is None:
        reasons.append("missing observed_at")
    elif item.observed_at > now + skew:
        reasons.append(f"observed_at in the future ({item.observed_at.isoformat()})")
    created = getattr(item, "created_at", None)
    if created is not None and created > now + skew:
        reasons.append(f"created_at in the future ({created.isoformat()})")
    for name in TEXT_FIELDS:
        value = getattr(item, name, None)
        if isinstance(value, str) and looks_mojibake(value):
            reasons.append(f"{name}: mojibake ({value[:40]!r})")
    return reasons


def _counter_problems(item: Any, counters: tuple[str, ...], max_count: int) -> list[str]:
    reasons = []
    for name in counters:
        value = getattr(item, name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            reasons.append(f"{name}: not an integer ({value!r})")
        elif value < 0:
            reasons.append(f"{name}: negative ({value})")
        elif value > max_count:
            reasons.append(f"{name}: {value} above the sane bound {max_count}")
    return reasons


def raw_json(item: Any) -> str:
    """The item as JSON for the rejects dataset (datetimes as ISO strings)."""
    data = {f.name: getattr(item, f.name) for f in fields(item)
            if f.name not in ("problems", "job_key")}
    return json.dumps(data, default=str, ensure_ascii=False, sort_keys=True)


def reject_row(item: Any, kind: str, reasons: list[str], now: datetime,
               run_id: str) -> dict[str, Any]:
    """The item's row in the `rejects` dataset, with the reasons it was not stored."""
    return {
        "date": now.strftime("%Y-%m-%d"),
        "rejected_at": now,
        "platform": item.platform,
        "item_type": kind,
        "tag": item.tag,
        "reasons": reasons,
        "raw": raw_json(item),
        "run_id": run_id,
    }

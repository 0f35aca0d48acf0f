"""The dedupe key: one snapshot per (platform, tag), post per (platform, tag, post), and
activity row per (platform, tag, day) within a run."""

from __future__ import annotations

from typing import Any

from crawler.items import ActivityItem, PostItem, SnapshotItem


def dedupe_key(item: Any) -> tuple[str | None, ...] | None:
    """The key two items of one run share when they are the same row (None: never deduped).

    The first element names the kind ("snapshot", "post", "activity"); the others are the
    item's identity fields, None where it lacks one (validation rejects such items first).
    """
    if isinstance(item, SnapshotItem):
        return ("snapshot", item.platform, item.tag)
    if isinstance(item, PostItem):
        return ("post", item.platform, item.tag, item.post_id)
    if isinstance(item, ActivityItem):
        return ("activity", item.platform, item.tag, str(item.day))
    return None

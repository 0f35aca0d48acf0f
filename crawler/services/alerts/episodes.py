"""Episodes: an alert fires once when its condition begins to hold and resolves once when it ends.

The state lives in the `alerts` dataset itself: an episode is open when the last `firing` or
`resolved` row of its key (the alert, and its tag, watch or platform) says `firing`. Nothing
else is kept, so a restarted service (or another machine reading the same root) knows which
episodes are open, and the record of what was sent is the state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.services.alerts.model import FIRING, RESOLVED, Observation, episode_key

logger = logging.getLogger("tagarchive.alerts")

EpisodeKey = tuple[str, str, str, str]
_COLUMNS = ["alert", "kind", "watch", "platform", "tag", "state", "sent_at", "value",
            "observed_at"]


@dataclass(frozen=True)
class Transition:
    """An observation that opens (`firing`) or closes (`resolved`) an episode."""

    state: str
    seen: Observation
    opened: dict[str, Any] | None = None  # the firing row a resolution closes


def open_episodes(root: str | Path) -> dict[EpisodeKey, dict[str, Any]]:
    """The firing row of every open episode, by key, read from the `alerts` dataset."""
    import pyarrow.dataset as ds

    from storage import open_dataset

    table = open_dataset(root, "alerts").to_table(
        columns=_COLUMNS, filter=ds.field("state").isin([FIRING, RESOLVED]))
    last: dict[EpisodeKey, dict[str, Any]] = {}
    for row in sorted(table.to_pylist(), key=lambda r: r["sent_at"]):
        last[episode_key(row["alert"], row["kind"], row["watch"], row["platform"],
                         row["tag"])] = row
    return {key: row for key, row in last.items() if row["state"] == FIRING}


def transitions(observations: list[Observation],
                opened: dict[EpisodeKey, dict[str, Any]]) -> list[Transition]:
    """The observations that change an episode: the condition holds and none is open (fire),
    or it no longer holds and one is (resolve). Unknown (None) changes nothing."""
    changes = []
    for seen in observations:
        row = opened.get(seen.key)
        if seen.holds is True and row is None:
            changes.append(Transition(FIRING, seen))
        elif seen.holds is False and row is not None:
            changes.append(Transition(RESOLVED, seen, row))
    return changes


def write_rows(root: str | Path, run_id: str, rows: list[dict[str, Any]]) -> bool:
    """Append rows to `alerts`; a storage failure is logged (the episode then fires again on
    the next run: at least once, never lost)."""
    from storage import DatasetWriter, StorageError

    if not rows:
        return True
    try:
        with DatasetWriter(root, run_id, flush_rows=len(rows)) as writer:
            for row in rows:
                writer.add("alerts", row)
    except StorageError as exc:
        logger.error("alerts: cannot store %d alert row(s) of run %s: %s", len(rows), run_id,
                     exc)
        return False
    return True

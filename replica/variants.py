"""Per-tag test variants of the replica: login walls, layout changes, scheduled 429s and 5xx."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VARIANTS", "Failure", "Key", "Variants"]

Key = tuple[str, str]  # (platform, normalized tag)

VARIANTS = frozenset(
    {
        "normal",
        "not_found",
        "login_wall",
        "captcha",
        "layout_changed",
        "rate_limited",
        "server_error",
        "csr",
        "ssr",
        "override",
        "ip_block",
        # YouTube: the EU consent interstitial, and which of the two hashtag header forms to serve
        "consent",
        "hashtag_header",
        "page_header",
        # Mastodon-API servers: GoToSocial's empty history, a Tag id "" (replica/mastodon.py)
        "history_stub",
        "tag_without_row",
        # Bluesky: 2023's hitsTotal, and a cursor page refused with 403 (replica/bluesky.py)
        "hits_total",
        "cursor_forbidden",
        # Xiaohongshu: the topic notes feed in its other known forms (replica/xiaohongshu.py)
        "notes_list_data",
        "notes_recommend_path",
        "notes_uncaptured",
        # TikTok: counters rounded as the real JSON carries them; videoCount 0 beside the views
        "rounded_counts",
        "zero_video_count",
        # Instagram: the hashtag answered at top level, as the app's tags/{tag}/info/ does
        "app_info",
    }
)
_OVERRIDABLE = ("views", "posts", "discussions", "participants")
_DEFAULT_PARAMS: dict[str, dict[str, int]] = {
    "rate_limited": {"times": 1, "retry_after": 1},
    "server_error": {"times": 2, "status": 503},
}


@dataclass(frozen=True)
class Failure:
    """A transient failure a variant wants served instead of the real response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""


class Variants:
    """The variants switched on, per (platform, normalized tag); safe across server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._on: dict[Key, dict[str, dict[str, Any]]] = {}

    def switch(self, key: Key, name: str, **params: Any) -> None:
        """Switch a test variant on for a tag; "normal" removes all of that tag's."""
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; known: {sorted(VARIANTS)}")
        clean: dict[str, Any] = dict(_DEFAULT_PARAMS.get(name, {}))
        if name == "override":
            unknown = set(params) - set(_OVERRIDABLE)
            if unknown:
                raise ValueError(f"override accepts {_OVERRIDABLE}, not {sorted(unknown)}")
        elif params and not set(params) <= set(clean):
            raise ValueError(f"variant {name!r} accepts {sorted(clean)}, got {sorted(params)}")
        for k, v in params.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"variant parameter {k}={v!r} must be a non-negative int")
            clean[k] = v
        if name == "server_error" and not 500 <= clean["status"] <= 599:
            raise ValueError("server_error status must be 5xx")
        if name in ("rate_limited", "server_error"):
            clean["remaining"] = clean["times"]
        with self._lock:
            if name == "normal":
                self._on.pop(key, None)
                return
            current = self._on.setdefault(key, {})
            # csr and ssr contradict each other; the later call wins.
            if name in ("csr", "ssr"):
                current.pop("ssr" if name == "csr" else "csr", None)
            if name in ("hashtag_header", "page_header"):
                current.pop("page_header" if name == "hashtag_header" else "hashtag_header", None)
            current[name] = clean

    def clear(self) -> None:
        """Switch every variant off."""
        with self._lock:
            self._on.clear()

    def of(self, key: Key) -> dict[str, dict[str, Any]]:
        """Copy of the variants active for a tag, name -> params."""
        with self._lock:
            return {k: dict(v) for k, v in self._on.get(key, {}).items()}

    def has(self, key: Key, name: str) -> bool:
        """Whether the variant is on for the tag."""
        with self._lock:
            return name in self._on.get(key, {})

    def active(self) -> list[dict[str, Any]]:
        """Every active variant, as the admin endpoint lists them."""
        with self._lock:
            return [
                {"platform": p, "tag": t, "name": n, "params": dict(params)}
                for (p, t), names in sorted(self._on.items())
                for n, params in names.items()
            ]

    def take_failure(self, key: Key) -> Failure | None:
        """Consume one scheduled 429/5xx for a request about this tag, if any remain.

        rate_limited fires before server_error when both are set, as an edge limiter would.
        """
        with self._lock:
            names = self._on.get(key, {})
            limited = names.get("rate_limited")
            if limited and limited["remaining"] > 0:
                limited["remaining"] -= 1
                headers = {"Retry-After": str(limited["retry_after"])}
                return Failure(429, headers, "rate_limited")
            broken = names.get("server_error")
            if broken and broken["remaining"] > 0:
                broken["remaining"] -= 1
                return Failure(broken["status"], {}, "server_error")
        return None

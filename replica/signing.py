"""The state of a platform's in-page signer, as the replica models it (docs/access.md).

Each signing platform (Xiaohongshu, TikTok, Douyin) keeps one `SignerState`:

- `version`: the "script version" the site serves. Each version signs with its own key, and a
  page keeps the script it loaded: after a change, a page loaded before it signs with the old
  key and its calls are refused, until it is loaded again. Version 1 is the key the replica
  always had.
- `ttl_ms`: how old a signature's timestamp may be when it arrives (Xiaohongshu's `X-t`). A
  few minutes on the real site [INF: the exact window is not documented]; the replica answers
  an old one like any refused signature (Xiaohongshu: HTTP 406 with `X-Kong-Sign: 1`, as third
  parties logged a wrong one [3P]; for an expired one [INF]), never with the captcha.
- `exposed`: whether the page script still exposes its signer on `window` (`_webmsxyw`,
  `byted_acrawler.frontierSign`). A site can stop exposing it and still sign its own calls
  (a third-party note says Xiaohongshu did so with `_webmsxyw` [3P]).
- `refused`: how many calls were refused, by reason (`unsigned`, `bad_signature`,
  `stale_key`, `expired`), so tests can tell what the crawler met.

Switched by tests in-process (`app.signing.set(version=2)`) or over HTTP
(`POST /__replica__/signing {"platform": "xiaohongshu", "version": 2}`); `reset()` (and
`POST /__replica__/clear`) restores the defaults.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

DEFAULT_TTL_MS = 5 * 60 * 1000  # "a few minutes" [INF]
REASONS = ("unsigned", "bad_signature", "stale_key", "expired")


class SignerState:
    """One platform's signer: script version, signature lifetime, exposure; refusals counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 1
        self.ttl_ms = DEFAULT_TTL_MS
        self.exposed = True
        self.refused: Counter[str] = Counter()

    def set(self, *, version: int | None = None, ttl_ms: int | None = None,
            exposed: bool | None = None) -> None:
        """Change what the site serves from now on; the values are checked."""
        with self._lock:
            if version is not None:
                if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                    raise ValueError("version must be an int >= 1")
                self.version = version
            if ttl_ms is not None:
                if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms < 1:
                    raise ValueError("ttl_ms must be an int >= 1")
                self.ttl_ms = ttl_ms
            if exposed is not None:
                if not isinstance(exposed, bool):
                    raise ValueError("exposed must be true or false")
                self.exposed = exposed

    def reset(self) -> None:
        """The defaults, and no refusals counted."""
        with self._lock:
            self.version, self.ttl_ms, self.exposed = 1, DEFAULT_TTL_MS, True
            self.refused.clear()

    def refuse(self, reason: str) -> None:
        """Count one refused call."""
        with self._lock:
            self.refused[reason] += 1

    def state(self) -> dict[str, Any]:
        """Plain data for the admin endpoint and tests."""
        with self._lock:
            return {"version": self.version, "ttl_ms": self.ttl_ms, "exposed": self.exposed,
                    "refused": dict(self.refused)}

    def expired(self, stamp_ms: int) -> bool:
        """Whether a signature made at `stamp_ms` (the signer's clock) is too old now."""
        return time.time() * 1000 - stamp_ms > self.ttl_ms


def versioned_key(base: str, version: int) -> str:
    """The signing key of a script version: version 1 keeps the replica's original key."""
    return base if version == 1 else f"{base}:v{version}"


def script(text: str, state: SignerState) -> str:
    """A page script as served under the current state: its version and whether it exposes
    its signer are written into it (the placeholders `__SCRIPT_VERSION__` and
    `__SIGNER_EXPOSED__`), as a site builds a new bundle."""
    return (text.replace("__SCRIPT_VERSION__", str(state.version))
            .replace("__SIGNER_EXPOSED__", "true" if state.exposed else "false"))

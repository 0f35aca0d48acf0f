"""Alert rules as data: what to watch for, where to send it, and one observation of a rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

THRESHOLD, GROWTH, SURGE, UNHEALTHY, LOGIN_LOST = (
    "threshold", "growth", "surge", "unhealthy", "login_lost")
KINDS = (THRESHOLD, GROWTH, SURGE, UNHEALTHY, LOGIN_LOST)
COUNTER_KINDS = (THRESHOLD, GROWTH, SURGE)
FIRING, RESOLVED, TEST = "firing", "resolved", "test"

DEFAULT_SCORE = 3.5  # Iglewicz & Hoaglin's cut-off for the modified z-score
DEFAULT_HISTORY = 12  # growth intervals a surge is scored against
MIN_HISTORY = 5  # fewer earlier intervals than this: no surge verdict yet
DEFAULT_LOOKBACK_DAYS = 14


@dataclass(frozen=True)
class AlertRule:
    """One `[[alert]]` table, checked: its condition, its scope and its targets."""

    name: str
    kind: str  # one of KINDS
    when: str  # the condition as written, for messages
    targets: tuple[str, ...]  # Apprise URLs as configured: ${VAR} not yet expanded
    watches: tuple[str, ...] = ()  # the watches whose runs evaluate it; () = every watch
    platforms: tuple[str, ...] = ()  # () = each watch's own
    tags: tuple[str, ...] = ()  # tag keys as snapshots name them; () = each watch's own
    counter: str | None = None  # threshold, growth, surge
    op: str | None = None  # threshold: >=, >, <=, <
    threshold: float | None = None  # threshold: the value; growth: the fraction (+0.5 = +50%);
    # surge: the score
    window: float | None = None  # growth: seconds
    history: int = DEFAULT_HISTORY  # surge: earlier intervals scored against
    lookback_days: int = DEFAULT_LOOKBACK_DAYS  # how far back snapshots are read
    enabled: bool = True

    def follows(self, watch: str) -> bool:
        """Whether a run of this watch evaluates the rule."""
        return self.enabled and (not self.watches or watch in self.watches)


@dataclass
class Observation:
    """What the Parquet says about one rule for one subject (a tag, a watch or a platform).

    `holds` is True when the condition holds, False when it does not, None when the data cannot
    say (no value, too little history): then the episode stays as it is.
    """

    rule: AlertRule
    holds: bool | None
    watch: str | None = None
    platform: str | None = None
    tag: str | None = None
    value: int | None = None
    semantics: str | None = None
    text: str | None = None  # the counter's display text, when the platform gave one
    baseline: int | None = None
    baseline_semantics: str | None = None
    baseline_at: datetime | None = None
    change: float | None = None
    score: float | None = None
    detail: str | None = None
    observed_at: datetime | None = None
    window: tuple[datetime | None, datetime | None] | None = None  # a `window` count's span

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The episode this observation belongs to: the alert, and its subject."""
        return episode_key(self.rule.name, self.rule.kind, self.watch, self.platform, self.tag)


def episode_key(alert: str, kind: str, watch: str | None, platform: str | None,
                tag: str | None) -> tuple[str, str, str, str]:
    """An episode's identity: a counter alert per (platform, tag), whichever watch read it;
    `unhealthy` per watch; `login_lost` per platform."""
    if kind == UNHEALTHY:
        return (alert, watch or "", "", "")
    if kind == LOGIN_LOST:
        return (alert, "", platform or "", "")
    return (alert, "", platform or "", tag or "")

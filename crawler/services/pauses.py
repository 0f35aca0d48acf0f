"""Platforms the scheduler pauses after a lost login, until their session is renewed.

When a fire's crawl ends a platform's tags `login_wall` while the platform had a sign-in (or
needs one), the login is lost, in the sense of the `login lost` alert (the same condition:
crawler/services/alerts/observe.py): the scheduler pauses that platform. Its watches' next
fires crawl their other platforms and leave it out (a watch with nothing else left records a
`skipped` run naming the pause); nothing is sent to it, so a dead session is not replayed hour
after hour. The pause is a file, `<state_dir>/paused/<platform>.json` (owner-only), shown by
`tagarchive status`, and ends when the session is renewed: a session file the config names (or
TAGARCHIVE_SESSION_<PLATFORM>) newer than the pause, a profile `tagarchive signin --profile`
signed in since, or `tagarchive schedule resume PLATFORM`.

Not the circuit breaker's cool-off (crawler/downloader/breakerstate.py): that one backs off a
platform answering captchas, blocks or rate limits, and ends by itself after a time; a pause for
a lost login ends only when a person renews the session.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler.services.alerts.model import LOGIN_LOST
from crawler.services.watchmodel import Config, Watch

logger = logging.getLogger("tagarchive.schedule")

PAUSED_DIR = "paused"
LOGIN_WALL = "login_wall"  # the outcome crawler/platforms/base.py names Outcome.LOGIN_WALL
NOT_ATTEMPTED = "not_attempted"


@dataclass(frozen=True)
class Pause:
    """One paused platform: since when, why, and the run that found it."""

    platform: str
    since: str  # ISO time, UTC
    reason: str
    run_id: str | None = None
    watch: str | None = None
    kind: str = LOGIN_LOST

    @property
    def since_time(self) -> datetime:
        return datetime.fromisoformat(self.since.replace("Z", "+00:00"))

    def line(self) -> str:
        """How `status` and the runs rows name it."""
        since = self.since_time.isoformat(timespec="seconds").replace("+00:00", "Z")
        return (f"{self.platform} paused since {since} (login lost: {self.reason}); "
                f"renew the session (tagarchive signin {self.platform}) or run "
                f"`tagarchive schedule resume {self.platform}`")


def pause_path(config: Config, platform: str) -> Path:
    return config.state_dir / PAUSED_DIR / f"{platform}.json"


def active(config: Config) -> dict[str, Pause]:
    """The paused platforms; a damaged file is skipped with a warning, never fatal."""
    found: dict[str, Pause] = {}
    directory = config.state_dir / PAUSED_DIR
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            pause = Pause(**{k: data[k] for k in ("platform", "since", "reason")},
                          run_id=data.get("run_id"), watch=data.get("watch"),
                          kind=data.get("kind", LOGIN_LOST))
            pause.since_time  # noqa: B018 - a malformed time is a damaged file
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("pause file %s is damaged (%s); ignored", path, type(exc).__name__)
            continue
        found[pause.platform] = pause
    return found


def begin(config: Config, platform: str, reason: str, run_id: str | None = None,
          watch: str | None = None) -> Pause:
    """Pause a platform (a platform already paused keeps its first pause)."""
    existing = active(config).get(platform)
    if existing is not None:
        return existing
    # to the microsecond: a session file renewed in the same second is newer than the pause
    pause = Pause(platform, datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                  reason[:500], run_id, watch)
    path = pause_path(config, platform)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(pause), handle, ensure_ascii=False)
    os.replace(partial, path)
    logger.warning("%s", pause.line(), extra={"fields": {"paused": platform, "watch": watch,
                                                         "run_id": run_id}})
    return pause


def lift(config: Config, platform: str, why: str) -> bool:
    """End a platform's pause; False if it was not paused."""
    try:
        pause_path(config, platform).unlink()
    except FileNotFoundError:
        return False
    logger.info("%s resumed: %s", platform, why, extra={"fields": {"resumed": platform}})
    return True


def renewed(config: Config, pause: Pause, environ: dict[str, str]) -> str | None:
    """What renewed the platform's session since the pause began, or None."""
    since = pause.since_time.timestamp()
    files = [Path(path) for p, path in config.signin.session_files if p == pause.platform]
    named = environ.get(f"TAGARCHIVE_SESSION_{pause.platform.upper()}")
    if named:
        files.append(Path(named))
    for file in files:
        with contextlib.suppress(OSError):
            if file.stat().st_mtime > since:
                return f"the session file {file} is newer than the pause"
    if config.browser.profile is not None:
        from crawler.downloader.profiles import signed_in_at

        when = signed_in_at(config.browser.profile, pause.platform)
        if when is not None and when > since:
            return f"the profile {config.browser.profile / pause.platform} was signed in again"
    return None


def before_fire(config: Config, watch: Watch,
                environ: dict[str, str]) -> tuple[tuple[str, ...], str | None]:
    """The watch's platforms this fire crawls, and a note naming those left out (or None).

    Pauses whose session was renewed end here, so the fire crawls the platform again."""
    paused = active(config)
    left_out = []
    for platform in watch.platforms:
        pause = paused.get(platform)
        if pause is None:
            continue
        why = renewed(config, pause, environ)
        if why is not None and lift(config, platform, why):
            continue
        left_out.append(pause)
    if not left_out:
        return watch.platforms, None
    remaining = tuple(p for p in watch.platforms if p not in {x.platform for x in left_out})
    return remaining, "; ".join(p.line() for p in left_out)


def has_signin(config: Config, platform: str, environ: dict[str, str]) -> bool:
    """Whether the watch's crawls of the platform go signed in (or the platform needs it)."""
    from crawler.downloader.profiles import signed_in_at
    from crawler.platforms import platform_class

    profile = config.browser.profile
    return bool(any(p == platform for p, _f in config.signin.session_files)
                or any(p == platform for p, _t, _s in config.signin.variables)
                or environ.get(f"TAGARCHIVE_SESSION_{platform.upper()}")
                or config.browser.cdp  # the user's browser: its sessions are not seen here
                or (profile is not None and signed_in_at(profile, platform) is not None)
                or platform_class(platform).signin == "required")


def after_fire(config: Config, watch: Watch, run_id: str,
               environ: dict[str, str]) -> list[Pause]:
    """Pause each platform of the fire whose login was lost: one of its tags ended login_wall
    (as the `login lost` alert sees it) while it had a sign-in. Returns the new pauses."""
    from crawler.services.fires import find_record

    try:
        record = find_record(config.out, run_id)
    except (OSError, ValueError) as exc:
        logger.warning("cannot read the record of run %s: %s", run_id, exc)
        return []
    if record is None:
        return []
    outcomes: list[dict[str, Any]] = record.get("outcomes") or []
    started = []
    for platform in watch.platforms:
        ended = [o for o in outcomes if o.get("platform") == platform
                 and o.get("status") != NOT_ATTEMPTED]
        walls = [o for o in ended if o.get("status") == LOGIN_WALL]
        if not walls or not has_signin(config, platform, environ):
            continue
        detail = next((o.get("detail") for o in walls if o.get("detail")), "") or ""
        reason = (f"{len(walls)} of {len(ended)} tag(s) met a login wall in run {run_id}"
                  + (f": {detail}" if detail else ""))
        started.append(begin(config, platform, reason, run_id, watch.name))
    return started

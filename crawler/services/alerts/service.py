"""The alerts' part of the service: after each scheduled run, and `tagarchive alerts test`.

After a fire, the rules that follow its watch are observed from the Parquet (observe.py),
compared with the open episodes (episodes.py), and each change is sent to the rule's targets
(send.py) and stored as one `alerts` row, deliveries included. An unreachable target is a
warning line and a delivery error in that row; nothing here stops the service.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from crawler.services.alerts import messages
from crawler.services.alerts.episodes import open_episodes, transitions, write_rows
from crawler.services.alerts.model import FIRING, TEST, AlertRule, Observation
from crawler.services.alerts.observe import observe
from crawler.services.alerts.send import Delivery, accepts, deliver
from crawler.services.fires import FireResult, find_record
from crawler.services.watchmodel import Config
from storage import new_run_id, utc_day

logger = logging.getLogger("tagarchive.alerts")

# One evaluation at a time in this process: two fires ending together must not both open the
# same episode.
_EVALUATING = threading.Lock()
_NOTIFY_TYPE = {FIRING: "warning", "resolved": "success", TEST: "info"}


def after_fire(config: Config, result: FireResult) -> None:
    """The scheduler's post-run step; logs, never raises (the run is already stored)."""
    if not any(rule.follows(result.watch) for rule in config.alerts):
        return
    try:
        evaluate(config, result.watch, result.run_id)
    except Exception as exc:  # noqa: BLE001 - a storage or reading failure: logged, not fatal
        logger.error("alerts after run %s of %s failed: %s", result.run_id, result.watch, exc,
                     extra={"fields": {"run_id": result.run_id, "watch": result.watch}})


def evaluate(config: Config, watch_name: str, run_id: str,
             environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Observe the rules following this watch after its run `run_id`, send and store what
    changed; returns the rows stored."""
    watch = config.watch(watch_name)
    rules = [rule for rule in config.alerts if rule.follows(watch.name)]
    environ = os.environ if environ is None else environ
    with _EVALUATING:
        run = find_record(config.out, run_id) if any(
            rule.kind in ("unhealthy", "login_lost") for rule in rules) else None
        seen = observe(rules, watch, run, config.out)
        changes = transitions(seen, open_episodes(config.out))
        rows = [announce(change.state, change.seen, run_id, environ, change.opened)
                for change in changes]
        write_rows(config.out, new_run_id(), rows)
    logger.debug("alerts after run %s of %s: %d observation(s), %d sent", run_id, watch.name,
                 len(seen), len(rows), extra={"fields": {"run_id": run_id, "watch": watch.name}})
    return rows


def announce(state: str, seen: Observation, run_id: str, environ: Mapping[str, str],
             opened: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one episode's start or end to each target; the `alerts` row that records it."""
    title = messages.title(state, seen)
    body = messages.body(state, seen, run_id, opened)
    deliveries = send_all(seen.rule, state, title, body, environ)
    sent_at = datetime.now(UTC)
    logger.info("alert %s %s: %s (%s)", seen.rule.name, state, messages.subject(seen),
                _summary(deliveries), extra={"fields": {
                    "alert": seen.rule.name, "state": state, "run_id": run_id,
                    "watch": seen.watch}})
    return {
        "date": utc_day(sent_at), "sent_at": sent_at, "run_id": run_id,
        "alert": seen.rule.name, "kind": seen.rule.kind, "state": state,
        "watch": seen.watch, "platform": seen.platform, "tag": seen.tag,
        "counter": seen.rule.counter, "value": seen.value, "semantics": seen.semantics,
        "baseline": seen.baseline, "baseline_semantics": seen.baseline_semantics,
        "baseline_at": seen.baseline_at, "change": seen.change, "score": seen.score,
        "threshold": seen.rule.threshold, "detail": seen.detail,
        "message": f"{title}\n{body}", "observed_at": seen.observed_at,
        "targets": [d.target for d in deliveries],
        "deliveries": [d.as_row() for d in deliveries],
    }


def send_all(rule: AlertRule, state: str, title: str, body: str,
             environ: Mapping[str, str]) -> list[Delivery]:
    """One message to each of the rule's targets; a failed one is a warning, never more."""
    deliveries = []
    for template in rule.targets:
        delivery = deliver(template, title, body, _NOTIFY_TYPE[state], environ)
        if not delivery.ok:
            logger.warning("alert %s: %s to %s failed: %s", rule.name, state, delivery.target,
                           delivery.error, extra={"fields": {"alert": rule.name}})
        deliveries.append(delivery)
    return deliveries


def _summary(deliveries: list[Delivery]) -> str:
    ok = sum(d.ok for d in deliveries)
    return f"{ok} of {len(deliveries)} target(s) took it"


def send_test(config: Config, names: list[str] | None = None,
              environ: Mapping[str, str] | None = None,
              record: bool = True) -> list[tuple[AlertRule, Delivery]]:
    """`tagarchive alerts test`: a test message to every target of each (named) alert, each
    stored as a `test` row unless `record` is false."""
    environ = os.environ if environ is None else environ
    run_id = new_run_id()
    results, rows = [], []
    for rule in select(config, names):
        title, body = messages.test_message(rule, str(config.path))
        deliveries = send_all(rule, TEST, title, body, environ)
        results += [(rule, d) for d in deliveries]
        sent_at = datetime.now(UTC)
        rows.append({"date": utc_day(sent_at), "sent_at": sent_at, "run_id": run_id,
                     "alert": rule.name, "kind": rule.kind, "state": TEST,
                     "counter": rule.counter, "threshold": rule.threshold,
                     "message": f"{title}\n{body}", "targets": [d.target for d in deliveries],
                     "deliveries": [d.as_row() for d in deliveries]})
    if record:
        write_rows(config.out, run_id, rows)
    return results


def check_targets(config: Config, names: list[str] | None = None,
                  environ: Mapping[str, str] | None = None
                  ) -> list[tuple[AlertRule, Delivery]]:
    """`tagarchive alerts check`: whether each target's variables are set and Apprise
    understands its URL; nothing is sent or stored."""
    environ = os.environ if environ is None else environ
    return [(rule, accepts(t, environ)) for rule in select(config, names) for t in rule.targets]


def select(config: Config, names: list[str] | None) -> list[AlertRule]:
    """The config's alerts, or the named ones; ValueError names an unknown one."""
    if not names:
        return list(config.alerts)
    known = {rule.name: rule for rule in config.alerts}
    for name in names:
        if name not in known:
            raise ValueError(f"{config.path}: no alert named {name!r} "
                             f"(known: {', '.join(known) or 'none'})")
    return [known[name] for name in dict.fromkeys(names)]

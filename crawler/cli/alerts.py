"""`tagarchive alerts test|check|list`: try the [[alert]] targets, and read the `alerts` dataset.

Exit codes: `test` 0 when every target took the test message, 1 when one did not (each named on
its own line); `check` 0 when every target's variables are set and Apprise understands its URL,
1 when one is not; `list` 0. All: 2 for a config or usage error (one line naming file, key and
problem), 3 when the archive cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.extensions.runrecord import EXIT_OK, EXIT_TAG_FAILED

if TYPE_CHECKING:
    from crawler.services.alerts.model import AlertRule
    from crawler.services.alerts.send import Delivery
    from crawler.services.watchmodel import Config

_SHOWN = ("sent_at", "alert", "kind", "state", "watch", "platform", "tag", "counter", "value",
          "semantics", "baseline", "change", "score", "threshold", "targets", "deliveries",
          "run_id", "message")


def _config(args: argparse.Namespace) -> Config:
    from crawler.services.watchconfig import find_config, load_config
    from crawler.services.watchvalues import ConfigError

    try:
        config = load_config(find_config(args.config))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not config.alerts:
        raise UsageError(f"{config.path}: alert: no alert defined: add an [[alert]] table "
                         "(docs/alerts.md)")
    return config


def _quiet_log() -> None:
    # each failed target is printed below; the service's warning line would repeat it
    logging.getLogger("tagarchive.alerts").addHandler(logging.NullHandler())


def _print(results: list[tuple[AlertRule, Delivery]], word: str) -> int:
    failed = 0
    for rule, delivery in results:
        if delivery.ok:
            print(f"{word:<6} {rule.name}  {delivery.target}")
        else:
            failed += 1
            print(f"failed {rule.name}  {delivery.target}: {delivery.error}", file=sys.stderr)
    if failed:
        print(f"tagarchive: {failed} of {len(results)} target(s) failed", file=sys.stderr)
    return EXIT_TAG_FAILED if failed else EXIT_OK


def cmd_alerts_test(args: argparse.Namespace) -> int:
    from crawler.services.alerts.service import send_test

    config = _config(args)
    _quiet_log()
    try:
        results = send_test(config, args.alert or None, record=not args.no_record)
    except ValueError as exc:  # an unknown --alert
        raise UsageError(str(exc)) from None
    return _print(results, "sent")


def cmd_alerts_check(args: argparse.Namespace) -> int:
    from crawler.services.alerts.service import check_targets

    config = _config(args)
    _quiet_log()
    try:
        results = check_targets(config, args.alert or None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return _print(results, "ok")


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from storage import StorageError, open_dataset

    root = args.root
    if root is None:
        from crawler.services.watchconfig import find_config, load_config
        from crawler.services.watchvalues import ConfigError

        try:
            root = load_config(find_config(args.config)).out
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    try:
        rows = open_dataset(root, "alerts").to_table(columns=list(_SHOWN)).to_pylist()
    except (StorageError, OSError) as exc:
        raise EnvironmentProblem(f"cannot read the alerts of {root}: {exc}") from None
    rows = [r for r in rows if not args.alert or r["alert"] in args.alert]
    rows = sorted(rows, key=lambda r: r["sent_at"], reverse=True)[:args.limit]
    if args.json:
        print(json.dumps([_plain(r) for r in rows], ensure_ascii=False, indent=2))
    elif not rows:
        print(f"no alert recorded under {root}")
    for row in [] if args.json else rows:
        print(_line(row))
    return EXIT_OK


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.astimezone(UTC).isoformat().replace("+00:00", "Z")
            if isinstance(v, datetime) else v for k, v in row.items()}


def _line(row: dict[str, Any]) -> str:
    """One alert in a line: when, state, alert, subject, value, how many targets took it."""
    from crawler.services.alerts.messages import counter_value

    when = row["sent_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    subject = "/".join(x for x in (row["platform"], row["tag"]) if x) or row["watch"] or "-"
    value = (f"{row['counter']} {counter_value(row['value'], row['semantics'])}"
             if row["counter"] and row["value"] is not None else "")
    deliveries = row["deliveries"] or []
    took = sum(1 for d in deliveries if d["ok"])
    parts = [when, f"{row['state']:<8}", row["alert"], subject, value,
             f"{took}/{len(deliveries)} took it"]
    return "  ".join(p for p in parts if p)


def register(sub: Any) -> None:
    """Add `alerts test|check|list` to the `tagarchive` command line."""
    alerts = sub.add_parser("alerts", help="try the [[alert]] targets; list recent alerts")
    actions = alerts.add_subparsers(dest="alerts_command", required=True)
    test = actions.add_parser("test", help="send a test message to every target",
                              description="Send a test message to every target of each "
                              "[[alert]] (or of --alert NAME) and store it as a `test` row. "
                              "Exit 1 when a target did not take it.")
    check = actions.add_parser("check", help="are the targets usable? (sends nothing)",
                               description="Expand each target's ${VAR} references and ask "
                               "Apprise whether it understands the URL; nothing is sent.")
    for p in (test, check):
        p.add_argument("--config", metavar="FILE",
                       help="the TOML config (default: $TAGARCHIVE_CONFIG, else "
                            "./tagarchive.toml)")
        p.add_argument("--alert", action="append", default=[], metavar="NAME",
                       help="only this alert (repeatable)")
    test.add_argument("--no-record", action="store_true",
                      help="do not store the test rows in the alerts dataset")
    test.set_defaults(func=cmd_alerts_test)
    check.set_defaults(func=cmd_alerts_check)
    listing = actions.add_parser("list", help="recent alerts from the alerts dataset")
    listing.add_argument("--config", metavar="FILE", help="read the archive its `out` names")
    listing.add_argument("--root", metavar="DIR", help="the archive root (instead of --config)")
    listing.add_argument("--alert", action="append", default=[], metavar="NAME",
                         help="only this alert (repeatable)")
    listing.add_argument("--limit", type=int, default=20, help="newest N rows (default 20)")
    listing.add_argument("--json", action="store_true", help="JSON for scripts")
    listing.set_defaults(func=cmd_alerts_list)

"""The text of an alert: a title and a few lines with the numbers, marked as what they are.

A rounded value ("1.2亿") is shown with ≈ and its display text, a lower bound with ≥, a window
count with its window, so a message never claims more precision than the Parquet holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crawler.services.alerts.model import (
    FIRING,
    GROWTH,
    LOGIN_LOST,
    SURGE,
    THRESHOLD,
    UNHEALTHY,
    AlertRule,
    Observation,
)

_MARK = {"rounded": "≈", "lower_bound": "≥"}


def when(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def number(value: float) -> str:
    """12345678 -> '12,345,678'; a whole float as an integer."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def counter_value(value: int | None, semantics: str | None, text: str | None = None) -> str:
    """A counter as it may be claimed: '≈120,000,000 (rounded: 1.2亿)', '≥5,000 (lower bound)'."""
    if value is None:
        return "no value"
    shown = _MARK.get(semantics or "", "") + number(value)
    if semantics == "rounded":
        return shown + (f" (rounded: {text})" if text and text != str(value) else " (rounded)")
    if semantics == "lower_bound":
        return shown + " (lower bound)"
    return shown


def subject(seen: Observation) -> str:
    if seen.rule.kind == UNHEALTHY:
        return f"watch {seen.watch}"
    if seen.rule.kind == LOGIN_LOST:
        return f"{seen.platform}"
    return f"{seen.platform}/{seen.tag}"


def title(state: str, seen: Observation) -> str:
    ended = "" if state == FIRING else " resolved"
    return f"tagarchive alert {seen.rule.name}{ended}: {subject(seen)}"


def body(state: str, seen: Observation, run_id: str,
         opened: dict[str, Any] | None = None) -> str:
    """The message: what holds (or no longer does), the numbers behind it, where it came from."""
    rule = seen.rule
    head = (f"{rule.when} holds for {subject(seen)}" if state == FIRING
            else f"{rule.when} no longer holds for {subject(seen)}")
    lines = [head + (f" (watch {seen.watch})." if rule.kind != UNHEALTHY else ".")]
    lines.append(_numbers(seen))
    if seen.detail and rule.kind != SURGE:
        lines.append(seen.detail)
    if opened is not None:
        lines.append(f"Firing since {when(opened.get('sent_at'))}.")
    lines.append(f"Run {run_id}, observed {when(seen.observed_at)}.")
    return "\n".join(line for line in lines if line)


def _numbers(seen: Observation) -> str:
    rule, counter = seen.rule, seen.rule.counter
    value = counter_value(seen.value, seen.semantics, seen.text)
    if rule.kind == THRESHOLD:
        assert rule.threshold is not None
        window = ""
        if seen.window is not None:
            window = f", a count over {when(seen.window[0])} – {when(seen.window[1])}"
        return f"{counter} {value}{window}; threshold {rule.op} {number(rule.threshold)}."
    if rule.kind == GROWTH:
        before = counter_value(seen.baseline, seen.baseline_semantics)
        change = "unknown" if seen.change is None else f"{seen.change:+.1%}"
        return (f"{counter} {before} at {when(seen.baseline_at)} -> {value} at "
                f"{when(seen.observed_at)}: {change} (alert at {rule.threshold or 0:+.0%}).")
    if rule.kind == SURGE:
        rate = "unknown" if seen.change is None else f"{seen.change:+.2%} an hour"
        score = "unknown" if seen.score is None else f"{seen.score:.1f}"
        before = counter_value(seen.baseline, seen.baseline_semantics)
        return (f"{counter} {before} at {when(seen.baseline_at)} -> {value}: {rate}; "
                f"{seen.detail}; score {score} (alert at {rule.threshold or 0:g}).")
    if rule.kind == LOGIN_LOST:
        return f"{seen.value} of {seen.baseline} tag(s) met a login wall."
    return ""


def test_message(rule: AlertRule, config_path: str) -> tuple[str, str]:
    """The title and body `tagarchive alerts test` sends."""
    return (f"tagarchive alert {rule.name}: test message",
            f"A test of the alert {rule.name} ({rule.when}) in {config_path}, sent by "
            "`tagarchive alerts test`. Nothing has happened.")

"""Platforms users declare in the TOML config (`[[source]]`), without writing code.

```toml
[[source]]
name = "forum"                                   # a-z, 0-9, _ ; not a built-in name
title = "Example forum"
url = "https://forum.example.org/tags/{tag}"     # {tag} is URL-quoted; hosts may be overridden
render = false                                   # true: load it in Chromium first
capture = ["/api/tags/"]                         # rendered only: JSON responses to keep
not_found_text = "No such tag"                   # optional: page text that means not found
rule_timeout = 5                                 # optional: seconds per rule per page

[source.counters.views]                          # views | posts | discussions | participants
css = "span.views::text"                         # exactly one of css, xpath, json
pick = "first"                                   # css/xpath: when several elements match
[source.counters.posts]
json = 'data."post-count"'                       # dotted path; "quoted" keys; [0] indexes
script = "script#__DATA__"                       # JSON inside this element (default: body)
[source.counters.participants]
json = "stats.people"
from_capture = "/api/tags/"                      # read from a captured response instead
```

A rule that yields an integer is exact; text ("1.2万", "3,400 posts") is parsed and marked
approximate like any display text. Every rule is checked when the config is loaded, and an error
names the key (`source[0].counters.views.css: …`).

A counter rule must find one value: a css/xpath rule matching several elements is the page's
`layout_changed`, naming the rule, unless the rule says `pick = "first"` or `"last"` (matches
are never joined into one number). `tag_display` joins its matches with a space by default.

Rules are bounded in time: css and xpath run in a helper process (`serve_rules`) that is killed
when one rule takes longer than the source's `rule_timeout` on a page (the tag's outcome is
`error`, detail `rule_timeout: …` naming the rule); `from_capture` patterns run with the
`regex` package's timeout. Capture patterns that nest one repetition in another are refused
when the config is loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from re import _parser as _re_parser  # the stdlib's own regex parser (3.11+), to inspect capture
from typing import Any
from urllib.parse import quote, urlsplit

import regex
from parsel import Selector
from parsel.csstranslator import css2xpath

from crawler.items import COUNTERS
from crawler.platforms.base import (
    Fetch,
    LayoutChanged,
    NotFound,
    Page,
    Platform,
    PlatformError,
    RenderSpec,
    TagResult,
    Unsupported,
    check_status,
)
from crawler.text.tags import InvalidTagError, TagRef, display_tag

NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
RULE_KINDS = ("css", "xpath", "json")
# How a css/xpath rule takes its value when several elements match: "one" (the default for a
# counter: several is an error), "first", "last", or "join" (with a space; tag_display's default).
COUNTER_PICKS = ("one", "first", "last")
DISPLAY_PICKS = (*COUNTER_PICKS, "join")
# Seconds one rule may take on one page (`rule_timeout` changes it per source).
RULE_TIMEOUT_S = 5.0
MAX_RULE_TIMEOUT_S = 300.0
_SEGMENT = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^."\[\]]+))\s*((?:\[\d+\])*)\s*')


class SourceConfigError(ValueError):
    """A `[[source]]` that cannot work; the message names the file and key."""


class AmbiguousRule(LayoutChanged):
    """A counter rule matched several elements and says nothing about which one to take."""


class RuleFailed(PlatformError):
    """A rule could not be evaluated on this page (outcome `error`, detail naming the rule)."""


class RuleTimeout(RuleFailed):
    """A rule ran past its time budget on this page and was stopped."""


@dataclass(frozen=True)
class Rule:
    """How to read one counter (or the tag's display name) from a page or a captured response."""

    kind: str
    expr: str
    script: str | None = None
    from_capture: str | None = None
    # the rule's name in messages at crawl time: "<source>.counters.views"
    where: str = ""
    # css/xpath only: which match to take when several do (see COUNTER_PICKS, DISPLAY_PICKS)
    pick: str = "one"

    def describe(self) -> str:
        return f"{self.where} ({self.kind} {self.expr!r})"


def parse_json_path(path: str, where: str) -> list[str | int]:
    """'a."b.c"[0].d' -> ['a', 'b.c', 0, 'd']."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if match is None or match.end() == pos:
            raise SourceConfigError(f"{where}: cannot read JSON path {path!r} at {pos}")
        steps.append(match.group(1) if match.group(1) is not None else match.group(2))
        steps.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(3)))
        pos = match.end()
        if pos < len(path):
            if path[pos] != ".":
                raise SourceConfigError(f"{where}: expected '.' at {pos} in {path!r}")
            pos += 1
    if not steps:
        raise SourceConfigError(f"{where}: empty JSON path")
    return steps


def walk(data: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if not isinstance(data, list) or step >= len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[step] if isinstance(step, int) else data.get(step)
    return data


def _nested_repeat(pattern: str) -> bool:
    """Whether a (valid) pattern repeats something that itself repeats, as in `(a+)+` or
    `(\\w+\\s?)*`: the shape whose backtracking takes exponential time on a near-miss.

    Possessive repeats (`a++`) and atomic groups (`(?>…)`) never give back what they matched,
    so what they hold counts as outside any repeat (a nesting inside them still counts). Other
    slow shapes (overlapping alternatives such as `(a|aa)+`) are not recognised here: the
    run-time timeout bounds them.
    """

    def walk(items: Any, inside: bool) -> bool:
        for op, arg in items:
            name, now = str(op), inside
            if name in ("MAX_REPEAT", "MIN_REPEAT"):
                repeats = arg[1] > 1
                if repeats and inside:
                    return True
                children, now = [arg[2]], inside or repeats
            elif name == "POSSESSIVE_REPEAT":
                children, now = [arg[2]], False
            elif name == "ATOMIC_GROUP":
                children, now = [arg], False
            elif name == "SUBPATTERN":
                children = [arg[3]]
            elif name == "BRANCH":
                children = arg[1]
            elif name in ("ASSERT", "ASSERT_NOT"):
                children = [arg[1]]
            elif name == "GROUPREF_EXISTS":
                children = [part for part in arg[1:] if part is not None]
            else:
                continue
            if any(walk(child, now) for child in children):
                return True
        return False

    return walk(_re_parser.parse(pattern), False)


def check_pattern(pattern: str, where: str) -> None:
    """A capture pattern both `re` (the browser's capture) and `regex` (from_capture) accept,
    without nested repetition; raises SourceConfigError naming `where`."""
    try:
        re.compile(pattern)
        regex.compile(pattern)
    except (re.error, regex.error) as exc:
        raise SourceConfigError(f"{where}: {exc}") from None
    if _nested_repeat(pattern):
        raise SourceConfigError(
            f"{where}: {pattern!r} repeats a repetition (like (a+)+), which can take exponential "
            f"time on a long URL; write it without the nesting, or make the outer repeat "
            f"possessive (*+, ++)")


def _check_rule(raw: Any, where: str, render: bool, captures: list[str], *,
                name: str, picks: tuple[str, ...], default_pick: str) -> Rule:
    if not isinstance(raw, dict):
        raise SourceConfigError(f"{where}: must be a table with one of css, xpath, json")
    kinds = [k for k in RULE_KINDS if k in raw]
    unknown = set(raw) - {*RULE_KINDS, "script", "from_capture", "pick"}
    if unknown:
        raise SourceConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if len(kinds) != 1:
        raise SourceConfigError(f"{where}: give exactly one of css, xpath, json")
    kind = kinds[0]
    expr = raw[kind]
    if not isinstance(expr, str) or not expr.strip():
        raise SourceConfigError(f"{where}.{kind}: must be a non-empty string")
    try:
        if kind == "css":
            css2xpath(expr)
        elif kind == "xpath":
            Selector(text="<html/>").xpath(expr)
        else:
            parse_json_path(expr, f"{where}.json")
    except SourceConfigError:
        raise
    except Exception as exc:
        raise SourceConfigError(f"{where}.{kind}: invalid {kind} ({exc})") from None
    script = raw.get("script")
    capture = raw.get("from_capture")
    if (script or capture) and kind != "json":
        raise SourceConfigError(f"{where}: script/from_capture only go with json")
    if capture is not None:
        if not render:
            raise SourceConfigError(f"{where}.from_capture: needs render = true")
        if capture not in captures:
            raise SourceConfigError(f"{where}.from_capture: {capture!r} is not in capture")
    if script is not None:
        try:
            css2xpath(script)
        except Exception as exc:
            raise SourceConfigError(f"{where}.script: invalid css ({exc})") from None
    pick = raw.get("pick", default_pick)
    if "pick" in raw and kind == "json":
        raise SourceConfigError(f"{where}.pick: only goes with css or xpath (a json path "
                                f"names one value)")
    if pick not in picks:
        raise SourceConfigError(f"{where}.pick: one of {', '.join(picks)}"
                                + ("" if "join" in picks else " (a counter is never joined)"))
    label = f"{name}{where[where.index('.'):]}" if "." in where else name
    return Rule(kind=kind, expr=expr, script=script, from_capture=capture, where=label,
                pick=pick)


def check_source(raw: Any, where: str, builtin: set[str]) -> dict[str, Any]:
    """A validated source spec; raises SourceConfigError naming the offending key."""
    if not isinstance(raw, dict):
        raise SourceConfigError(f"{where}: must be a table")
    allowed = {"name", "title", "url", "render", "capture", "not_found_text", "counters",
               "tag_display", "rule_timeout"}
    unknown = set(raw) - allowed
    if unknown:
        raise SourceConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise SourceConfigError(f"{where}.name: 2-32 of a-z 0-9 _ starting with a letter")
    if name in builtin:
        raise SourceConfigError(f"{where}.name: {name!r} is a built-in platform")
    url = raw.get("url")
    if not isinstance(url, str) or "{tag}" not in url:
        raise SourceConfigError(f"{where}.url: a URL template containing {{tag}}")
    parts = urlsplit(url.replace("{tag}", "x"))
    if "@" in parts.netloc:  # never echoed: the run record and every error line would carry it
        raise SourceConfigError(f"{where}.url: must not carry credentials (user:password@)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceConfigError(f"{where}.url: must be an absolute http(s) URL")
    render = raw.get("render", False)
    if not isinstance(render, bool):
        raise SourceConfigError(f"{where}.render: true or false")
    captures = raw.get("capture", [])
    if not isinstance(captures, list) or not all(isinstance(c, str) for c in captures):
        raise SourceConfigError(f"{where}.capture: a list of regular expressions")
    if captures and not render:
        raise SourceConfigError(f"{where}.capture: needs render = true")
    for i, pattern in enumerate(captures):
        check_pattern(pattern, f"{where}.capture[{i}]")
    budget = raw.get("rule_timeout", RULE_TIMEOUT_S)
    if (isinstance(budget, bool) or not isinstance(budget, int | float)
            or not 0 < budget <= MAX_RULE_TIMEOUT_S):
        raise SourceConfigError(f"{where}.rule_timeout: seconds, above 0 and at most "
                                f"{MAX_RULE_TIMEOUT_S:g}")
    counters = raw.get("counters")
    if not isinstance(counters, dict) or not counters:
        raise SourceConfigError(f"{where}.counters: at least one of {', '.join(COUNTERS)}")
    rules = {}
    for counter, rule in counters.items():
        if counter not in COUNTERS:
            raise SourceConfigError(f"{where}.counters.{counter}: not one of "
                                    f"{', '.join(COUNTERS)}")
        rules[counter] = _check_rule(rule, f"{where}.counters.{counter}", render, captures,
                                     name=name, picks=COUNTER_PICKS, default_pick="one")
    display = raw.get("tag_display")
    display_rule = (_check_rule(display, f"{where}.tag_display", render, captures, name=name,
                                picks=DISPLAY_PICKS, default_pick="join")
                    if display is not None else None)
    not_found = raw.get("not_found_text")
    if not_found is not None and (not isinstance(not_found, str) or not not_found):
        raise SourceConfigError(f"{where}.not_found_text: a non-empty string")
    return {"name": name, "title": raw.get("title") or name, "url": url, "render": render,
            "capture": tuple(captures), "rules": rules, "display": display_rule,
            "not_found_text": not_found, "rule_timeout": float(budget)}


class ConfiguredPlatform(Platform):
    """A platform built from a `[[source]]` spec; one subclass per source."""

    spec: dict[str, Any]

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.name is None:
            raise Unsupported(f"{self.name} is config-defined: tags are names")
        path = self.spec["path_template"].replace("{tag}", quote(tag.name, safe=""))
        render = None
        if self.spec["render"]:
            render = RenderSpec(capture=self.spec["capture"])
        return Fetch(url=self.url(path), step="page", render=render)

    def on_page(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        check_status(page)
        marker = self.spec["not_found_text"]
        if marker and marker in page.text:
            raise NotFound(f"page says {marker!r}")
        snapshot: dict[str, Any] = {"platform": self.name, "url": page.url,
                                    "observed_at": page.observed_at,
                                    "source": "rendered_dom" if page.rendered else "embedded_json"}
        rules = self.spec["rules"]
        display = self.spec["display"]
        budget = self.spec["rule_timeout"]
        everything = [*rules.values(), *([display] if display is not None else [])]
        selected = select_all(everything, page, budget)
        found = 0
        for counter, rule in rules.items():
            value, source = extract(rule, page, selected, budget)
            if value is None:
                continue
            found += 1
            if isinstance(value, int) and not isinstance(value, bool):
                snapshot[counter] = value
            else:
                snapshot[f"{counter}_text"] = str(value).strip()
            if source:
                snapshot["source"] = source
        if found == 0:
            raise LayoutChanged("no counter rule matched the page")
        shown = extract(display, page, selected, budget)[0] if display is not None else None
        try:
            snapshot["tag_display"] = display_tag(str(shown)) if shown else tag.name
        except InvalidTagError:
            snapshot["tag_display"] = tag.name
        return TagResult(snapshot=snapshot)


# A css/xpath evaluation: (kind, expression, the rule's description for messages).
Query = tuple[str, str, str]


def _queries(rule: Rule) -> list[Query]:
    if rule.kind in ("css", "xpath"):
        return [(rule.kind, rule.expr, rule.describe())]
    if rule.script and rule.from_capture is None:
        return [("css", rule.script + "::text", f"{rule.where}.script ({rule.script!r})")]
    return []


def select_all(rules: list[Rule], page: Page, budget: float) -> dict[tuple[str, str], list[str]]:
    """The stripped, non-blank texts every css/xpath of these rules selects on the page, each
    rule within `budget` seconds (RuleTimeout names the one that overran)."""
    queries = list({(kind, expr): (kind, expr, what)
                    for rule in rules for kind, expr, what in _queries(rule)}.values())
    if not queries:
        return {}
    answers = HELPER.evaluate(page.text, queries, budget)
    return {(kind, expr): texts for (kind, expr, _), texts in zip(queries, answers, strict=True)}


def choose(rule: Rule, texts: list[str]) -> str | None:
    """The one value of a css/xpath rule from what it matched, as its `pick` says."""
    if not texts:
        return None
    if len(texts) == 1 or rule.pick == "first":
        return texts[0]
    if rule.pick == "last":
        return texts[-1]
    if rule.pick == "join":
        return " ".join(texts)
    shown = ", ".join(repr(t[:20]) for t in texts[:3]) + (", …" if len(texts) > 3 else "")
    what = "a counter" if ".counters." in rule.where else "this rule"
    raise AmbiguousRule(f"{rule.describe()} matched {len(texts)} elements ({shown}); {what} "
                        f"takes one: narrow the rule, or set pick = \"first\" or \"last\"")


def extract(rule: Rule, page: Page, selected: dict[tuple[str, str], list[str]],
            budget: float) -> tuple[Any, str | None]:
    """(value, source) for one rule; value None when the rule matched nothing.

    `selected` holds what select_all() found for the page's css/xpath queries. Pages are parsed
    as HTML whatever they hold: parsel would take a JSON body for JSON and refuse css/xpath on
    it, where a changed page must read as "no rule matched"."""
    if rule.kind in ("css", "xpath"):
        value = choose(rule, selected[(rule.kind, rule.expr)])
        return value, ("rendered_dom" if page.rendered else None)
    steps = parse_json_path(rule.expr, "json")
    if rule.from_capture is not None:
        for cap in reversed(_captured(rule, page, budget)):
            value = walk(cap.json(), steps)
            if value is not None:
                return value, "captured_xhr"
        return None, None
    raw: str | None = page.text
    if rule.script:
        # the first element the script selector matches, as documented
        texts = selected[("css", rule.script + "::text")]
        raw = texts[0] if texts else None
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None, None
    return walk(data, steps), ("embedded_json" if rule.script else "api")


_PATTERNS: dict[str, Any] = {}


def _captured(rule: Rule, page: Page, budget: float) -> list[Any]:
    """The page's captured responses whose URL matches `from_capture`, within the budget."""
    pattern = _PATTERNS.get(rule.from_capture or "")
    if pattern is None:
        pattern = _PATTERNS.setdefault(rule.from_capture or "", regex.compile(rule.from_capture))
    deadline = time.monotonic() + budget
    kept = []
    for cap in page.captured:
        try:
            if pattern.search(cap.url, timeout=max(deadline - time.monotonic(), 0.001)):
                kept.append(cap)
        except TimeoutError:
            raise RuleTimeout(f"rule_timeout: {rule.where}.from_capture ({rule.from_capture!r}) "
                              f"took longer than {budget:g} s on this page's captured URLs "
                              f"and was stopped") from None
    return kept


# --- css/xpath in a helper process --------------------------------------------------------
#
# lxml evaluates an XPath in C with no way to interrupt it: `//*[count(preceding::*)]` on a
# large page runs for minutes, and neither a thread nor a signal handler can stop it. So the
# expressions run in one long-lived helper process per crawl process, which is killed (and
# started again for the next page) when a rule overruns. A round trip costs about a millisecond
# plus copying the page; the helper also arms SIGALRM, whose default action ends it, in case
# the crawl itself is gone.

_ROOT = str(Path(__file__).resolve().parents[2])
HELPER_START_S = 60.0
_HELPER_MAIN = "from crawler.platforms.configured import serve_rules; serve_rules()"


class _RuleHelper:
    """The parent's side of the helper process: evaluate(), and kill on overrun."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0
        self._pending = bytearray()
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _HELPER_MAIN], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
        self._owner = os.getpid()
        self._pending = bytearray()
        # wait for its imports here, so that no rule's budget pays for them
        ready = self._reply(self._proc, time.monotonic() + HELPER_START_S)
        if not ready or "ready" not in ready:
            self.stop()
            detail = (ready or {}).get("error") or f"no answer within {HELPER_START_S:g} s"
            raise RuleFailed(f"the css/xpath rule helper did not start: {detail}")
        return self._proc

    def stop(self) -> None:
        """End the helper (at exit, and when a rule overran)."""
        proc, self._proc = self._proc, None
        if proc is None or self._owner != os.getpid():
            return  # a forked child leaves its parent's helper alone
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        proc.kill()
        proc.wait()

    def _send(self, job: bytes) -> subprocess.Popen[bytes]:
        for attempt in (1, 2):
            proc = self._proc
            if proc is None or self._owner != os.getpid() or proc.poll() is not None:
                if proc is not None and self._owner == os.getpid():
                    self.stop()
                proc = self._start()
            try:
                assert proc.stdin is not None
                proc.stdin.write(job)
                proc.stdin.flush()
                return proc
            except (BrokenPipeError, OSError):
                self.stop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _reply(self, proc: subprocess.Popen[bytes], deadline: float) -> dict[str, Any] | None:
        """The helper's next answer, or None when the deadline passed first."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return {"error": f"the rule helper exited (code {proc.wait()})"}
            self._pending += chunk
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending = bytearray(rest)
        return json.loads(line)

    def evaluate(self, text: str, queries: list[Query], budget: float) -> list[list[str]]:
        """Each query's stripped, non-blank matches on the page; parsing the page and each
        query get `budget` seconds each."""
        if os.name != "posix":  # no select() on pipes: evaluated here, without a time bound
            return [_select(Selector(text=text, type="html"), kind, expr)
                    for kind, expr, _ in queries]
        job = json.dumps({"text": text, "queries": [[k, e] for k, e, _ in queries],
                          "alarm": budget + 10}).encode() + b"\n"
        steps = [f"parsing the page for {queries[0][2]}", *(q[2] for q in queries)]
        with self._lock:
            try:
                proc = self._send(job)
                answers = [self._answer(proc, step, budget) for step in steps]
            except BaseException:
                self.stop()  # never leave answers to this page for the next one to read
                raise
        return answers[1:]

    def _answer(self, proc: subprocess.Popen[bytes], step: str, budget: float) -> list[str]:
        reply = self._reply(proc, time.monotonic() + budget)
        if reply is None:
            raise RuleTimeout(f"rule_timeout: {step} took longer than {budget:g} s on this "
                              f"page and was stopped")
        if "error" in reply:
            raise RuleFailed(f"{step}: {reply['error']}")
        return reply.get("texts") or []


HELPER = _RuleHelper()
atexit.register(HELPER.stop)


def _select(selector: Selector, kind: str, expr: str) -> list[str]:
    found = selector.css(expr) if kind == "css" else selector.xpath(expr)
    return [t.strip() for t in found.getall() if t.strip()]


def serve_rules() -> None:
    """The helper process: a JSON job per line on stdin ({"text", "queries", "alarm"}); answers
    {"parsed": true}, then {"texts": [...]} or {"error": "..."} per query, one per line."""
    import signal

    alarm = getattr(signal, "setitimer", None)
    out = sys.stdout.buffer

    def answer(reply: dict[str, Any]) -> None:
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()

    answer({"ready": True})
    for line in sys.stdin.buffer:
        job = json.loads(line)
        if alarm is not None:  # SIGALRM's default action ends the process, even inside lxml
            alarm(signal.ITIMER_REAL, job["alarm"])
        try:
            selector = Selector(text=job["text"], type="html")
        except Exception as exc:
            answer({"error": f"cannot parse the page ({type(exc).__name__}: {exc})"})
            continue
        answer({"parsed": True})
        for kind, expr in job["queries"]:
            if alarm is not None:
                alarm(signal.ITIMER_REAL, job["alarm"])
            try:
                answer({"texts": _select(selector, kind, expr)})
            except Exception as exc:
                answer({"error": f"{type(exc).__name__}: {exc}"})
                break
        if alarm is not None:
            alarm(signal.ITIMER_REAL, 0)


def build_platform(spec: dict[str, Any]) -> type[ConfiguredPlatform]:
    """A Platform subclass for one validated source spec."""
    parts = urlsplit(spec["url"].replace("{tag}", "__TAG__"))
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    full = {**spec, "path_template": path.replace("__TAG__", "{tag}")}
    counters = {c: f"{r.kind} {r.expr}" for c, r in spec["rules"].items()}
    return type(f"Configured_{spec['name']}", (ConfiguredPlatform,), {
        "name": spec["name"], "title": spec["title"],
        "default_base_url": f"{parts.scheme}://{parts.netloc}",
        "hosts": (parts.hostname,), "browser": "always" if spec["render"] else "never",
        "counters": counters, "spec": full,
    })


def load_sources(path: str | Path, builtin: set[str]) -> list[type[ConfiguredPlatform]]:
    """Every `[[source]]` of a TOML config file, validated."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceConfigError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SourceConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourceConfigError(f"{path}: {exc}") from None
    raw = data.get("source", [])
    if not isinstance(raw, list):
        raise SourceConfigError(f"{path}: source: use [[source]] tables")
    specs, names = [], set()
    for i, entry in enumerate(raw):
        try:
            spec = check_source(entry, f"source[{i}]", builtin)
        except SourceConfigError as exc:
            raise SourceConfigError(f"{path}: {exc}") from None
        if spec["name"] in names:
            raise SourceConfigError(f"{path}: source[{i}].name: {spec['name']!r} given twice")
        names.add(spec["name"])
        specs.append(build_platform(spec))
    return specs

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

Rules are bounded in time (crawler/platforms/configured_rules.py reads them): css and xpath run
in a helper process (`serve_rules`, crawler/platforms/configured_helper.py) that is killed
when one rule takes longer than the source's `rule_timeout` on a page (the tag's outcome is
`error`, detail `rule_timeout: …` naming the rule); `from_capture` patterns run with the
`regex` package's timeout. Capture patterns that nest one repetition in another are refused
when the config is loaded.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any
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
    RenderSpec,
    TagResult,
    Unsupported,
    check_status,
)
from crawler.platforms.configured_rules import (
    Rule,
    SourceConfigError,
    extract,
    parse_json_path,
    select_all,
)
from crawler.text.tags import InvalidTagError, TagRef, display_tag

if TYPE_CHECKING:
    # typeshed types the stdlib's regex parser under its pre-3.11 name; 3.11 re-exports it there
    import sre_parse as _re_parser
else:
    from re import _parser as _re_parser  # the stdlib's own regex parser, to inspect capture

NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
RULE_KINDS = ("css", "xpath", "json")
# How a css/xpath rule takes its value when several elements match: "one" (the default for a
# counter: several is an error), "first", "last", or "join" (with a space; tag_display's default).
COUNTER_PICKS = ("one", "first", "last")
DISPLAY_PICKS = (*COUNTER_PICKS, "join")
# Seconds one rule may take on one page (`rule_timeout` changes it per source).
RULE_TIMEOUT_S = 5.0
MAX_RULE_TIMEOUT_S = 300.0


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

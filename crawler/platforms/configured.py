"""Platforms users declare in the TOML config (`[[source]]`), without writing code.

```toml
[[source]]
name = "forum"                                   # a-z, 0-9, _ ; not a built-in name
title = "Example forum"
url = "https://forum.example.org/tags/{tag}"     # {tag} is URL-quoted; hosts may be overridden
render = false                                   # true: load it in Chromium first
capture = ["/api/tags/"]                         # rendered only: JSON responses to keep
not_found_text = "No such tag"                   # optional: page text that means not found

[source.counters.views]                          # views | posts | discussions | participants
css = "span.views::text"                         # exactly one of css, xpath, json
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
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

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
from crawler.tags import InvalidTagError, TagRef, display_tag

NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
RULE_KINDS = ("css", "xpath", "json")
_SEGMENT = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^."\[\]]+))\s*((?:\[\d+\])*)\s*')


class SourceConfigError(ValueError):
    """A `[[source]]` that cannot work; the message names the file and key."""


@dataclass(frozen=True)
class Rule:
    """How to read one counter from a page or a captured response."""

    kind: str
    expr: str
    script: str | None = None
    from_capture: str | None = None


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


def _check_rule(raw: Any, where: str, render: bool, captures: list[str]) -> Rule:
    if not isinstance(raw, dict):
        raise SourceConfigError(f"{where}: must be a table with one of css, xpath, json")
    kinds = [k for k in RULE_KINDS if k in raw]
    unknown = set(raw) - {*RULE_KINDS, "script", "from_capture"}
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
    return Rule(kind=kind, expr=expr, script=script, from_capture=capture)


def check_source(raw: Any, where: str, builtin: set[str]) -> dict[str, Any]:
    """A validated source spec; raises SourceConfigError naming the offending key."""
    if not isinstance(raw, dict):
        raise SourceConfigError(f"{where}: must be a table")
    allowed = {"name", "title", "url", "render", "capture", "not_found_text", "counters",
               "tag_display"}
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
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SourceConfigError(f"{where}.capture[{i}]: {exc}") from None
    counters = raw.get("counters")
    if not isinstance(counters, dict) or not counters:
        raise SourceConfigError(f"{where}.counters: at least one of {', '.join(COUNTERS)}")
    rules = {}
    for counter, rule in counters.items():
        if counter not in COUNTERS:
            raise SourceConfigError(f"{where}.counters.{counter}: not one of "
                                    f"{', '.join(COUNTERS)}")
        rules[counter] = _check_rule(rule, f"{where}.counters.{counter}", render, captures)
    display = raw.get("tag_display")
    display_rule = (_check_rule(display, f"{where}.tag_display", render, captures)
                    if display is not None else None)
    not_found = raw.get("not_found_text")
    if not_found is not None and (not isinstance(not_found, str) or not not_found):
        raise SourceConfigError(f"{where}.not_found_text: a non-empty string")
    return {"name": name, "title": raw.get("title") or name, "url": url, "render": render,
            "capture": tuple(captures), "rules": rules, "display": display_rule,
            "not_found_text": not_found}


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
        found = 0
        for counter, rule in self.spec["rules"].items():
            value, source = extract(rule, page)
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
        display = self.spec["display"]
        shown = extract(display, page)[0] if display is not None else None
        try:
            snapshot["tag_display"] = display_tag(str(shown)) if shown else tag.name
        except InvalidTagError:
            snapshot["tag_display"] = tag.name
        return TagResult(snapshot=snapshot)


def extract(rule: Rule, page: Page) -> tuple[Any, str | None]:
    """(value, source) for one rule; value None when the rule matched nothing.

    Pages are parsed as HTML whatever they hold: parsel would take a JSON body for JSON and
    refuse css/xpath on it, where a changed page must read as "no rule matched"."""
    if rule.kind == "css":
        texts = Selector(text=page.text, type="html").css(rule.expr).getall()
        text = " ".join(t.strip() for t in texts if t.strip())
        return (text or None), ("rendered_dom" if page.rendered else None)
    if rule.kind == "xpath":
        texts = Selector(text=page.text, type="html").xpath(rule.expr).getall()
        text = " ".join(t.strip() for t in texts if t.strip())
        return (text or None), ("rendered_dom" if page.rendered else None)
    steps = parse_json_path(rule.expr, "json")
    if rule.from_capture is not None:
        for cap in reversed(page.captured_matching(rule.from_capture)):
            value = walk(cap.json(), steps)
            if value is not None:
                return value, "captured_xhr"
        return None, None
    raw = page.text
    if rule.script:
        raw = Selector(text=page.text, type="html").css(rule.script + "::text").get()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None, None
    return walk(data, steps), ("embedded_json" if rule.script else "api")


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

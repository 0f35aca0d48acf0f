"""Shared plumbing for replica platform apps: request/response types, signing, HTML helpers."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qsl

from replica.world import Failure, World

Response = tuple[int, dict[str, str], bytes]

HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"
JS = "application/javascript; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

# No favicon request. Only Xiaohongshu's pages load images and a font (replica/xiaohongshu.py),
# for the rendered benchmark; the other platforms' pages stay cheap to render.
NO_ICON = '<link rel="icon" href="data:,">'


class Query(dict[str, str]):
    """Parsed query string (first value per name) that also keeps the raw text and all pairs."""

    def __init__(self, raw: str = "") -> None:
        self.raw = raw
        self.pairs: list[tuple[str, str]] = parse_qsl(raw, keep_blank_values=True)
        super().__init__()
        for k, v in self.pairs:
            self.setdefault(k, v)


class App(Protocol):
    """A platform replica mounted under /<platform>/ by ReplicaServer."""

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response: ...

    def kind(self, method: str, path: str) -> str: ...


def fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a, the hash both replica signers use (cheap in JS with Math.imul)."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def respond(status: int, body: bytes | str, content_type: str, **headers: str) -> Response:
    data = body.encode("utf-8") if isinstance(body, str) else body
    out = {"Content-Type": content_type}
    out.update({k.replace("_", "-"): v for k, v in headers.items()})
    return status, out, data


def json_response(status: int, payload: Any, extra: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    out = respond(status, body, JSON)
    out[1]["Cache-Control"] = "no-store"
    if extra:
        out[1].update(extra)
    return out


def html_response(status: int, page: str, extra: Mapping[str, str] | None = None) -> Response:
    out = respond(status, page, HTML)
    if extra:
        out[1].update(extra)
    return out


def empty_response() -> Response:
    # TikTok signals bot detection with HTTP 200 and a zero-length body.
    return 200, {"Content-Type": JSON}, b""


def not_found() -> Response:
    return respond(404, "not found\n", TEXT)


def method_not_allowed(allowed: str) -> Response:
    return respond(405, "method not allowed\n", TEXT, Allow=allowed)


def failure_response(failure: Failure, as_json: bool) -> Response:
    reason = "Too Many Requests" if failure.status == 429 else "Service Unavailable"
    if as_json:
        return json_response(failure.status, {"error": reason}, failure.headers)
    page = f"<!doctype html><title>{failure.status}</title><h1>{failure.status} {reason}</h1>"
    return html_response(failure.status, page, failure.headers)


def script_json(payload: Any) -> str:
    """JSON safe to embed inside a <script> element."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "\\u003c!--")


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def static_file(name: str) -> bytes:
    return resources.files("replica").joinpath("static", name).read_bytes()


def gate(world: World, platform: str, tag: str, as_json: bool) -> Response | None:
    """Serve a scheduled rate-limit or server-error response for this tag, if one is due."""
    failure = world.take_failure(platform, tag)
    return failure_response(failure, as_json) if failure else None

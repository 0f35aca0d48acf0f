"""The web application (Starlette): routes, security headers, the host check.

Routes: `/` (watches, recent alerts, tags), `/tag/<tag>` (the tag's report, live), `/sql` and
`/sql.csv` (the SQL box), `/api/newest?tag=` and `/api/section?tag=` (what the live page polls),
`/healthz`, `/static/...`. Everything is GET: nothing here changes the archive.

Every response carries a Content-Security-Policy that allows this origin only and no inline
script or style, so the page can fetch nothing from elsewhere and a value from the archive can
never run. The Host header must name a loopback address unless the server was started with
--public (a web page elsewhere rebinding its own name to 127.0.0.1 cannot read the archive),
and the SQL box and the API refuse requests another site makes from a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from crawler.report import NothingToReport
from crawler.serve import pages
from crawler.serve.live import LiveArchive
from crawler.serve.sql import DEFAULT_MEMORY, SqlBox, SqlBusy, SqlError, SqlResult, to_csv
from storage.errors import StorageError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from crawler.services.watchmodel import Config

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
# Paths another site's page must not make the browser call: they run queries.
_SAME_SITE_ONLY = ("/sql", "/api/")


@dataclass(frozen=True)
class ServeOptions:
    """How the app behaves: freshness, the SQL box's limits, who may connect."""

    refresh: float = 5.0
    sql_timeout: float = 10.0
    sql_rows: int = 1000
    csv_rows: int = 100_000
    sql_memory: str = DEFAULT_MEMORY
    public: bool = False
    config: Config | None = None


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response; refuses cross-site calls of the SQL box and API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
            await send(message)

        path: str = scope["path"]
        if path.startswith(_SAME_SITE_ONLY) and \
                Headers(scope=scope).get("sec-fetch-site") == "cross-site":
            refused = PlainTextResponse("tagarchive serve: cross-site requests are refused",
                                        status_code=403)
            await refused(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


class ServeApp:
    """The endpoints, over one LiveArchive and one SqlBox."""

    def __init__(self, live: LiveArchive, options: ServeOptions) -> None:
        self.live = live
        self.options = options
        self.sql = SqlBox(options.sql_timeout, memory=options.sql_memory)
        self.report_css = resources.files("crawler.report").joinpath(
            "assets/report.css").read_text("utf-8")

    def _page(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(pages.page(title, body, refresh=self.options.refresh,
                                       root=self.live.root), status_code=status)

    def index(self, request: Request) -> Response:
        status, status_error = None, None
        if self.options.config is not None:
            from crawler.services.status import collect

            try:
                status = collect(self.options.config)
            except (StorageError, OSError, ValueError) as exc:
                status_error = f"cannot read the watches' state: {exc}"
        body = pages.index_body(self.live.tags(), status, status_error, self.live.alerts(),
                                datetime.now(UTC))
        return self._page("The archive", body)

    def tag(self, request: Request) -> Response:
        tag = request.path_params["tag"]
        try:
            section = self.live.section(tag)
        except NothingToReport as exc:
            return self._page("No such tag", pages.error_body("No such tag", str(exc)), 404)
        return self._page(f"#{section.display}", pages.tag_body(section))

    def newest(self, request: Request) -> Response:
        tag = request.query_params.get("tag", "")
        newest, count = self.live.newest(tag)
        return JSONResponse({"tag": tag, "newest": _iso(newest), "snapshots": count,
                             "generation": self.live.generation})

    def section(self, request: Request) -> Response:
        tag = request.query_params.get("tag", "")
        try:
            section = self.live.section(tag)
        except NothingToReport as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"tag": section.tag, "newest": _iso(section.newest),
                             "snapshots": section.snapshots, "html": section.html,
                             "generation": self.live.generation})

    def _run(self, sql: str, limit: int) -> tuple[SqlResult | None, str | None, int]:
        try:
            return self.sql.run(self.live.datasets(), sql, limit), None, 200
        except SqlBusy as exc:
            return None, str(exc), 503
        except SqlError as exc:
            return None, str(exc), 400

    def sql_page(self, request: Request) -> Response:
        sql = request.query_params.get("q", "")
        result, error, status = (None, None, 200) if not sql.strip() else \
            self._run(sql, self.options.sql_rows)
        body = pages.sql_body(sql, result, error, limit=self.options.sql_rows,
                              csv_limit=self.options.csv_rows, timeout=self.options.sql_timeout,
                              columns=self.live.columns())
        return self._page("SQL", body, status)

    def sql_csv(self, request: Request) -> Response:
        result, error, status = self._run(request.query_params.get("q", ""),
                                          self.options.csv_rows)
        if result is None:
            return PlainTextResponse(f"tagarchive serve: {error}", status_code=status)
        return Response(to_csv(result.columns, result.rows), media_type="text/csv",
                        headers={"content-disposition":
                                 'attachment; filename="tagarchive-query.csv"',
                                 "x-tagarchive-rows": str(len(result.rows)),
                                 "x-tagarchive-truncated": str(result.truncated).lower()})

    def stylesheet(self, request: Request) -> Response:
        return Response(self.report_css, media_type="text/css")

    def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "root": self.live.root,
                             "generation": self.live.current(),
                             "listing_error": self.live.listing_error})

    def storage_failed(self, request: Request, exc: Exception) -> Response:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": text}, status_code=503)
        return self._page("Archive unreadable",
                          pages.error_body("The archive could not be read", text), 503)


def allowed_hosts(public: bool, extra: Sequence[str] = ()) -> list[str]:
    """The Host header values accepted: loopback names, or any when serving beyond loopback."""
    return ["*"] if public else [*LOOPBACK_NAMES, *extra]


def create_app(live: LiveArchive, options: ServeOptions) -> Starlette:
    """The ASGI application over an opened archive."""
    app = ServeApp(live, options)
    routes: list[Any] = [
        Route("/", app.index),
        Route("/tag/{tag:path}", app.tag),
        Route("/api/newest", app.newest),
        Route("/api/section", app.section),
        Route("/sql", app.sql_page),
        Route("/sql.csv", app.sql_csv),
        Route("/healthz", app.health),
        Route("/static/report.css", app.stylesheet),
        Mount("/static", StaticFiles(packages=[("crawler.serve", "static")]), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders),
                    Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(options.public),
                               www_redirect=False)],
        exception_handlers={StorageError: app.storage_failed},
    )

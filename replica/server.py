"""HTTP server mounting every replica platform app under /<platform>/ plus robots and admin."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from replica.accounts import Accounts
from replica.base import (
    TEXT,
    App,
    Query,
    Response,
    esc,
    html_response,
    json_response,
    method_not_allowed,
    not_found,
    respond,
)
from replica.faults import FaultPlan
from replica.platforms import APPS
from replica.signing import SignerState
from replica.world import World

ADMIN = "/__replica__/"
ROOT = "replica"  # platform label used in hits for robots/admin/unknown paths


def robots_txt(platforms: Mapping[str, App]) -> str:
    """robots.txt allowing the tag pages and APIs but not /tiktok/private/ or the admin API."""
    lines = ["User-agent: *", "Disallow: /tiktok/private/", f"Disallow: {ADMIN}"]
    for name in platforms:
        lines.append(f"Allow: /{name}/")
    return "\n".join(lines) + "\n"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # the default backlog of 5 overflows under a crawl's burst of connections, and each dropped
    # SYN costs the client a 1 s retransmit
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], replica: ReplicaServer) -> None:
        self.replica = replica
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall
        # for seconds on an offline machine.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # without it, Nagle plus delayed ACK stall every keep-alive response by ~40 ms
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that goes away mid-answer (a killed crawl, a reset test) is not a replica bug
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        # Idle keep-alive connections (browsers hold them open) would otherwise keep their
        # handler threads blocked in readline() after stop().
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    # buffer the status line, headers and body into one send; handle_one_request() flushes
    wbufsize = 64 * 1024
    server_version = "replica/1.0"
    sys_version = ""
    timeout = 30
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def _serve(self, method: str) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._write(method, respond(411, "Content-Length required\n", TEXT))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._write(method, respond(400, "bad Content-Length\n", TEXT))
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "cookie" in headers:
            # lets tests prove a user's session really reached the platform
            self.server.replica.cookies_seen.add(headers["cookie"])
        try:
            response = self.server.replica.dispatch(method, self.path, headers, body)
        except Exception:
            # A replica bug must not look like a platform answer; the traceback is the one thing
            # worth printing despite the quiet logging.
            traceback.print_exc(file=sys.stderr)
            response = respond(500, "replica internal error\n", TEXT)
        self.server.replica.asset_wait(self.path)
        fault = None if self.path.startswith(ADMIN) else self.server.replica.faults.take(self.path)
        if fault is not None:
            self.server.replica.faults.serve(self, method, fault, response)
            return
        self._write(method, response)

    def _write(self, method: str, response: Response) -> None:
        status, headers, payload = response
        if any(k.lower() == "date" for k in headers):
            # an app that dates its answers by the world's clock (replica/bluesky.py) sends the
            # one Date header; otherwise send_response adds the wall clock's
            self.send_response_only(status)
            self.send_header("Server", self.version_string())
        else:
            self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD" and payload:
            self.wfile.write(payload)


class ReplicaServer:
    """Offline stand-in for the platforms' public pages and APIs, served on a local port.

    Use as a context manager or call start()/stop(). `dispatch()` answers a request in-process,
    without sockets, for callers that want the replica's responses without HTTP.
    """

    def __init__(
        self,
        world: World | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        asset_latency_ms: float = 0.0,
    ) -> None:
        self.world = world if world is not None else World()
        self.host = host
        self.port = port
        self.platforms: dict[str, App] = {
            name: factory(self.world, f"/{name}") for name, factory in APPS.items()
        }
        self.hits: Counter[tuple[str, str]] = Counter()
        self.cookies_seen: set[str] = set()
        # sign-in pages, the endpoints that say who is signed in, revoked sessions, and a
        # cookie a platform hands out (replica/accounts.py)
        self.accounts = Accounts()
        # transport faults (reset, stall, truncation, wrong charset): replica/faults.py
        self.faults = FaultPlan()
        self._hits_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Delay before each answer under /<platform>/assets/ (images, fonts), standing in for a
        # CDN's network wait; 0 (the default) answers at once. It may be changed while running.
        self.asset_latency_ms = asset_latency_ms
        self._stopping = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ReplicaServer:
        if self._httpd is not None:
            raise RuntimeError("ReplicaServer already started")
        httpd = _HTTPServer((self.host, self.port), self)
        self._stopping.clear()
        self._httpd = httpd
        self.port = httpd.server_port
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"replica-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self.faults.clear()  # wakes handlers held by a stall fault
        self._stopping.set()  # and those waiting out an asset latency
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ReplicaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("ReplicaServer is not running; call start() first")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def base_url(self, platform: str) -> str:
        if platform not in self.platforms:
            raise KeyError(f"unknown platform {platform!r}; known: {sorted(self.platforms)}")
        return f"{self.url}/{platform}"

    def is_asset(self, target: str) -> bool:
        """True for a request-target under a platform's /assets/ (its images and fonts)."""
        parts = urlsplit(target).path.split("/", 3)
        return len(parts) == 4 and parts[1] in self.platforms and parts[2] == "assets"

    def asset_wait(self, target: str) -> None:
        """Hold this handler thread for asset_latency_ms if `target` is an asset.

        Each connection has its own handler thread (ThreadingHTTPServer), so the wait delays
        only this answer; other connections are served meanwhile. stop() cuts the wait short.
        """
        delay = self.asset_latency_ms
        if delay > 0 and self.is_asset(target):
            self._stopping.wait(delay / 1000)

    def signers(self) -> dict[str, SignerState]:
        """The in-page signer state of each platform whose pages sign (replica/signing.py)."""
        found = {name: getattr(app, "signing", None) for name, app in self.platforms.items()}
        return {name: s for name, s in found.items() if isinstance(s, SignerState)}

    # -- accounting ---------------------------------------------------------------------------

    def _hit(self, platform: str, kind: str) -> None:
        with self._hits_lock:
            self.hits[(platform, kind)] += 1

    def hits_snapshot(self) -> dict[tuple[str, str], int]:
        with self._hits_lock:
            return dict(self.hits)

    def reset_hits(self) -> None:
        with self._hits_lock:
            self.hits.clear()

    # -- routing ------------------------------------------------------------------------------

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Response:
        """Answer one request; `target` is the request-target ("/tiktok/tag/x?y=1")."""
        split = urlsplit(target)
        path = unquote(split.path or "/", errors="replace")
        query = Query(split.query)
        headers = {k.lower(): v for k, v in headers.items()}
        if path.startswith(ADMIN):
            self._hit(ROOT, "admin")
            return self._admin(method, path[len(ADMIN) :], query, body)
        if path == "/robots.txt":
            self._hit(ROOT, "robots")
            return respond(200, robots_txt(self.platforms), TEXT)
        if path == "/":
            self._hit(ROOT, "index")
            return html_response(200, self._index())
        for name, app in self.platforms.items():
            mount = f"/{name}"
            if path == mount or path.startswith(mount + "/"):
                rel = path[len(mount) :] or "/"
                signin = self.accounts.kind(name, rel)  # login pages, "am I signed in"
                if signin is not None:
                    self._hit(name, signin)
                    return self.accounts.handle(name, method, rel, headers, body, mount)
                kind = app.kind(method, rel)
                self._hit(name, kind)
                if self.accounts.walled(name, headers, kind):  # a session it signed out
                    return self.accounts.login_wall(name)
                return self.accounts.with_cookie(
                    name, app.handle(method, rel, query, headers, body))
        self._hit(ROOT, "other")
        return not_found()

    def _index(self) -> str:
        items = "".join(
            f'<li><a href="/{esc(name)}/">{esc(name)}</a></li>' for name in self.platforms
        )
        return (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>tagarchive replica</title>'
            f'<link rel="icon" href="data:,"></head><body><h1>tagarchive replica</h1>'
            f"<ul>{items}</ul></body></html>"
        )

    def _admin(self, method: str, action: str, query: Query, body: bytes) -> Response:
        action = action.strip("/")
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError):
            return json_response(400, {"error": "body must be JSON"})
        if not isinstance(data, dict):
            return json_response(400, {"error": "body must be a JSON object"})
        try:
            if action == "state":
                if method not in ("GET", "HEAD"):
                    return method_not_allowed("GET, HEAD")
                state = self.world.state()
                state["platforms"] = {name: f"/{name}" for name in self.platforms}
                return json_response(200, state)
            if action == "hits":
                if method not in ("GET", "HEAD"):
                    return method_not_allowed("GET, HEAD")
                snapshot = self.hits_snapshot()
                return json_response(200, {f"{p}/{k}": n for (p, k), n in sorted(snapshot.items())})
            if method != "POST":
                return method_not_allowed("POST")
            if action == "tick":
                # the query string wins over the JSON body
                raw_n = query.get("n")
                now = self.world.clock.tick(int(raw_n if raw_n is not None else data.get("n", 1)))
                return json_response(200, {"now": _iso(now)})
            if action == "time":
                now = self.world.clock.set(datetime.fromisoformat(str(data["now"])))
                return json_response(200, {"now": _iso(now)})
            if action == "variant":
                params = data.get("params") or {}
                if not isinstance(params, dict):
                    raise ValueError("params must be an object")
                self.world.set_variant(
                    str(data["platform"]), str(data["tag"]), str(data["name"]), **params
                )
                return json_response(200, {"ok": True, "variants": self.world.all_variants()})
            if action == "clear":
                self.world.clear_variants()
                self.faults.clear()
                for signer in self.signers().values():
                    signer.reset()
                return json_response(200, {"ok": True})
            if action == "signing":
                # a platform's page script: version, signature lifetime, exposure
                # (replica/signing.py)
                signer = self.signers()[str(data.pop("platform"))]
                signer.set(**data)
                return json_response(200, {"ok": True, "signing": signer.state()})
            if action == "fault":
                self.faults.add_json(data)
                return json_response(200, {"ok": True, "faults": self.faults.active()})
            if action == "reset_hits":
                self.reset_hits()
                return json_response(200, {"ok": True})
        except (KeyError, TypeError, ValueError) as exc:
            return json_response(400, {"error": f"{type(exc).__name__}: {exc}"})
        return respond(404, "unknown admin action\n", TEXT)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


__all__ = ["ReplicaServer", "robots_txt"]

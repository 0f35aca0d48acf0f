"""`tagarchive serve`: a read-only local web view of the archive, live (docs/serve.md).

Exit codes: 0 stopped; 2 usage error (a bad option, a --host beyond loopback without --public,
a config that does not load); 3 environment error (no archive at --root, an unreadable archive,
the port in use or not ours to take); 130 interrupted (Ctrl-C). Errors are one line.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.extensions.runrecord import EXIT_OK

if TYPE_CHECKING:
    from crawler.services.watchmodel import Config

DEFAULT_PORT = 8765
log = logging.getLogger("tagarchive.serve")


def register(subparsers: Any) -> None:
    """Add `serve` to the `tagarchive` command line."""
    p = subparsers.add_parser(
        "serve",
        help="a read-only local web view of the archive, updated as snapshots land",
        description="Serve a read-only web view of the archive on 127.0.0.1: every watch with "
        "its freshness and verdict, recent alerts, each tag's report charts (updated live, "
        "without a reload) and a SQL box over the views of `tagarchive query`. Nothing is "
        "fetched from elsewhere and nothing is written. See docs/serve.md.",
    )
    p.add_argument("--root", metavar="ROOT",
                   help="archive root, a directory or s3://bucket/prefix (default: the config's "
                        "out, else ./data or $TAGARCHIVE_OUT)")
    p.add_argument("--config", metavar="FILE",
                   help="show this config's watches (default: $TAGARCHIVE_CONFIG, else "
                        "./tagarchive.toml when it exists)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; beyond loopback needs --public)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one, printed)")
    p.add_argument("--public", action="store_true",
                   help="allow a --host beyond loopback: anyone who reaches it reads the archive")
    p.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="how often to look for new files; open pages ask as often (default 5)")
    p.add_argument("--sql-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="stop a SQL box query after this long (default 10)")
    p.add_argument("--sql-rows", type=int, default=1000, metavar="N",
                   help="rows of a SQL result shown on the page (default 1000)")
    p.add_argument("--csv-rows", type=int, default=100_000, metavar="N",
                   help="rows of a SQL result in its CSV download (default 100000)")
    p.add_argument("--sql-memory", default="1GB", metavar="SIZE",
                   help="memory a SQL box query may use, as DuckDB writes sizes (default 1GB)")
    p.set_defaults(func=cmd_serve)


def _check_numbers(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, got {args.port}")
    for name in ("refresh", "sql_timeout"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be more than 0 seconds")
    for name in ("sql_rows", "csv_rows"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")


def _check_memory(size: str) -> None:
    import duckdb

    from crawler.serve.sql import locked_connection

    try:
        locked_connection({}, size).close()
    except duckdb.Error as exc:
        raise UsageError(f"--sql-memory {size!r}: {str(exc).splitlines()[0]}") from None


def _load_config(path: str | None) -> Config | None:
    """The watch config named or found (as `status` finds it), or None when there is none."""
    from crawler.services.watchconfig import find_config, load_config
    from crawler.services.watchvalues import ConfigError

    try:
        found = find_config(path)
    except ConfigError:
        return None  # no --config, no $TAGARCHIVE_CONFIG, no ./tagarchive.toml: no watches
    try:
        return load_config(found)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def listen(host: str, port: int, public: bool) -> socket.socket:
    """A listening socket on host:port. A host beyond loopback needs `public` (UsageError);
    a port in use or not ours is an EnvironmentProblem."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host!r}: {exc.strerror}") from None
    addresses = {str(info[4][0]).split("%", 1)[0] for info in infos}
    loopback = all(ipaddress.ip_address(a).is_loopback for a in addresses)
    if not loopback and not public:
        raise UsageError(f"--host {host} is not a loopback address: anyone who can reach it "
                         "could read the archive; add --public if that is what you mean")
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "the port is in use (by another server?)",
               errno.EACCES: "permission denied (ports below 1024 need privileges)",
               errno.EADDRNOTAVAIL: "not an address of this machine"}.get(
                   exc.errno or 0, exc.strerror or str(exc))
        raise EnvironmentProblem(f"cannot listen on {host} port {port}: {why}") from None
    if not loopback:
        log.warning("serving beyond loopback on %s port %s (--public): anyone who can reach "
                    "it can read the archive and run queries over it", host, port)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def cmd_serve(args: argparse.Namespace) -> int:
    _check_numbers(args)
    _check_memory(args.sql_memory)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="tagarchive: %(levelname)s: "
                            "%(message)s")
    config = _load_config(args.config)
    root = args.root or (str(config.out) if config is not None else
                         os.environ.get("TAGARCHIVE_OUT", "data"))

    import uvicorn

    from crawler.cli.analysis import open_root
    from crawler.serve import LiveArchive, ServeOptions, create_app
    from storage.errors import StorageError

    archive = open_root(root)  # the one-line errors of `query`: no archive, a bad S3 URL
    try:
        live = LiveArchive(archive, refresh=args.refresh)
    except (StorageError, OSError) as exc:
        archive.close()
        raise EnvironmentProblem(f"cannot list the archive at {root}: {exc}") from None
    try:
        options = ServeOptions(refresh=args.refresh, sql_timeout=args.sql_timeout,
                               sql_rows=args.sql_rows, csv_rows=args.csv_rows,
                               sql_memory=args.sql_memory, public=args.public, config=config)
        sock = listen(args.host, args.port, args.public)
        server = uvicorn.Server(uvicorn.Config(
            create_app(live, options), log_config=None, log_level="warning",
            access_log=False, lifespan="off", server_header=False, proxy_headers=False,
            timeout_graceful_shutdown=2))
        print(f"tagarchive serve: {_url(sock)} (read-only view of {live.root}; Ctrl-C stops)",
              flush=True)
        with sock:
            server.run(sockets=[sock])
    finally:
        live.close()
    print("tagarchive serve: stopped", file=sys.stderr)
    return EXIT_OK

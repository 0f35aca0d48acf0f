"""`tagarchive serve` from the command line: loopback unless --public, one-line errors with their
exit codes, the host and cross-site checks, the watches of a config on the index."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.cli.main import main
from storage import DatasetWriter, utc_day
from tests.analysis_helpers import HOUR, write_archive
from tests.serve_helpers import Served, start_serve

SENT = datetime(2025, 1, 14, 13, 5, tzinfo=UTC)
ALERTS = [  # the newest first, as the index lists them
    {"alert": "wall-100m", "kind": "threshold", "state": "firing", "platform": "tiktok",
     "tag": "wall", "counter": "views", "value": 150_000_000, "sent_at": SENT,
     "message": "#wall passed 100M views on TikTok",
     "deliveries": [{"target": "json://127.0.0.1", "ok": True, "error": None},
                    {"target": "mailto://mail.example", "ok": False, "error": "refused"}]},
    {"alert": "wall-100m", "kind": "threshold", "state": "test", "sent_at": SENT - HOUR,
     "message": "a test message from tagarchive alerts test",
     "deliveries": [{"target": "json://127.0.0.1", "ok": True, "error": None}]},
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = write_archive(tmp_path_factory.mktemp("serve-cli") / "data")
    with DatasetWriter(data, "20250114T130500Z-eeeeeeee") as writer:
        for alert in ALERTS:
            writer.add("alerts", {"date": utc_day(alert["sent_at"]), **alert})
    return data


@pytest.fixture(scope="module")
def served(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_serve("--root", str(root), cwd=tmp_path_factory.mktemp("serve-cli-cwd"))
    yield server
    server.stop()


@dataclass
class Ended:
    code: int
    stderr: str


@pytest.fixture
def serve(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> Callable[..., Ended]:
    """`tagarchive serve ARGS` in this process, for the errors raised before it listens."""
    monkeypatch.delenv("TAGARCHIVE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./tagarchive.toml to find

    def run(*args: str) -> Ended:
        capsys.readouterr()
        code = main(["serve", *args])
        return Ended(code, capsys.readouterr().err)

    return run


def test_a_root_without_an_archive_is_exit_3(serve: Callable[..., Ended], tmp_path: Path) -> None:
    result = serve("--root", str(tmp_path / "missing"), "--port", "0")
    assert result.code == 3
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("tagarchive: error: ")
    assert "missing" in result.stderr


def test_a_port_in_use_is_exit_3(serve: Callable[..., Ended], root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = serve("--root", str(root), "--port", str(port))
    assert result.code == 3
    assert result.stderr == (f"tagarchive: error: cannot listen on 127.0.0.1 port {port}: "
                             "the port is in use (by another server?)\n")


@pytest.mark.parametrize("args", [("--sql-rows", "0"), ("--refresh", "0"), ("--port", "70000"),
                                  ("--sql-timeout", "-1"), ("--sql-memory", "lots")])
def test_bad_numbers_are_exit_2(serve: Callable[..., Ended], root: Path,
                                args: tuple[str, str]) -> None:
    result = serve("--root", str(root), *args)
    assert result.code == 2
    assert result.stderr.count("\n") == 1


def test_binding_beyond_loopback_needs_public(serve: Callable[..., Ended], root: Path,
                                              tmp_path: Path) -> None:
    refused = serve("--root", str(root), "--host", "0.0.0.0", "--port", "0")
    assert refused.code == 2
    assert "--host 0.0.0.0 is not a loopback address" in refused.stderr
    assert "--public" in refused.stderr

    server = start_serve("--root", str(root), "--host", "0.0.0.0", "--public", cwd=tmp_path)
    try:
        port = int(server.url.rsplit(":", 1)[1].rstrip("/"))
        assert server.url == f"http://0.0.0.0:{port}/"
        warning = server.stderr.wait_for(lambda line: "beyond loopback" in line, 30,
                                         "the --public warning")
        assert "WARNING" in warning
        # listening on every address: loopback answers, and any Host header is accepted
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: archive.example\r\n"
                         b"Connection: close\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        server.stop()


def test_loopback_server_refuses_other_hosts_and_cross_site_queries(served: Served) -> None:
    status, _headers, _body = served.get("/", {"Host": "attacker.example"})
    assert status == 400
    status, _headers, body = served.get("/api/newest?tag=wall", {"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _headers, _body = served.get("/sql?q=select+1", {"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _headers, _body = served.get("/", {"Sec-Fetch-Site": "same-origin"})
    assert status == 200
    for path in ("/", "/static/serve.js", "/static/report.css", "/api/newest?tag=wall",
                 "/sql.csv?q=select+1", "/tag/nope"):
        status, headers, _body = served.get(path)
        assert "default-src 'self'" in headers["content-security-policy"], path
    assert served.get("/tag/nope")[0] == 404


def test_newest_answers_from_the_parquet(served: Served, root: Path) -> None:
    import json

    from storage import open_dataset

    moments = [r["observed_at"] for r in open_dataset(root, "snapshots").to_table().to_pylist()
               if r["tag"] == "wall"]
    status, _headers, body = served.get("/api/newest?tag=%23WALL")  # looked up as stored
    assert status == 200
    answer = json.loads(body)
    assert answer["newest"] == max(moments).astimezone(UTC).isoformat()
    assert answer["snapshots"] == len(moments)


def test_index_lists_recent_alerts_newest_first(served: Served) -> None:
    status, _headers, body = served.get("/")
    assert status == 200
    section = re.search(r'<section class="alerts">(.*?)</section>', body.decode())
    assert section is not None
    body_rows = re.search(r"<tbody>(.*?)</tbody>", section.group(1))
    assert body_rows is not None
    rows = re.findall(r"<tr>(.*?)</tr>", body_rows.group(1))
    assert len(rows) == len(ALERTS)
    for row, alert in zip(rows, ALERTS, strict=True):
        assert f"<td>{alert['state']}</td>" in row
        assert f"<td>{alert['message']}</td>" in row
        delivered = sum(1 for d in alert["deliveries"] if d["ok"])
        assert f"<td>{delivered} of {len(alert['deliveries'])}</td>" in row


def test_ctrl_c_stops_it_with_130(root: Path, tmp_path: Path) -> None:
    server = start_serve("--root", str(root), cwd=tmp_path)
    try:
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(timeout=60) == 130
    finally:
        server.stop()


CONFIG = '''
out = "data"
state_dir = "state"
[watches.good]
platforms = ["tiktok"]
tags = ["a"]
every = "1h"
[watches.bad]
platforms = ["tiktok"]
tags = ["c"]
every = "1h"
'''


def test_index_shows_each_watch_with_freshness_and_verdict(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    (tmp_path / "tagarchive.toml").write_text(CONFIG)
    with DatasetWriter(tmp_path / "data", "seed") as writer:
        for tag, minutes in (("a", 10), ("c", 600)):
            at = now - timedelta(minutes=minutes)
            writer.add("snapshots", {"platform": "tiktok", "date": utc_day(at), "tag": tag,
                                     "observed_at": at, "views": 1, "source": "api"})
        for run_id, watch, verdict, health in (("r-good", "good", "ok", "healthy"),
                                               ("r-bad", "bad", "failed", "unhealthy")):
            at = now - timedelta(minutes=10)
            writer.add("runs", {"run_id": run_id, "date": utc_day(at), "started_at": at,
                                "watch": watch, "verdict": verdict, "health": health,
                                "trigger": "schedule"})
    # --config only: the root is the config's out
    server = start_serve("--config", str(tmp_path / "tagarchive.toml"), cwd=tmp_path)
    try:
        status, _headers, body = server.get("/")
        page = body.decode()
    finally:
        server.stop()
    assert status == 200
    rows = dict(re.findall(r'<tr data-watch="(\w+)">(.*?)</tr>', page))
    assert set(rows) == {"good", "bad"}
    # 10 minutes old on an hourly watch is fresh; 10 hours is past 3 cadences (stale_intervals)
    assert 'data-state="fresh"' in rows["good"]
    assert ">ok · healthy<" in rows["good"]
    assert 'data-state="stale"' in rows["bad"]
    assert ">failed · unhealthy<" in rows["bad"]
    assert 'href="/tag/a"' in page

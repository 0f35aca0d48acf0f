"""An S3 server for tests: moto's server mode on a loopback port, behind a proxy that can fail.

`s3_server` (exposed by conftest.py) gives each test its own bucket on one moto server per
session, with the environment (endpoint, dummy keys, region) set in this process and available
as `.env` for subprocesses. Requests go through `FaultProxy`, so a test can make S3 fail the way
a real one does: answer 503 to writes or to everything, drop the connection mid-upload, or store
an upload and lose the answer.
"""

from __future__ import annotations

import http.client
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

PASS = "pass"
FAIL_WRITES = "fail-writes"  # PUT/POST/DELETE answered 503 SlowDown (S3 retries those)
DOWN = "down"  # every request answered 503
CUT = "cut"  # a PUT's body is read, then the connection is closed without an answer
# the request that makes an object exist (PutObject, CompleteMultipartUpload) reaches moto, then
# the connection is closed unanswered
LOSE_ANSWER = "lose-answer"

_WRITE_METHODS = {"PUT", "POST", "DELETE"}
_SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
              b"<Message>injected by the test proxy</Message></Error>")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-connection"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FaultProxy:
    """A reverse proxy to moto whose `mode` decides what S3 clients get; counts requests."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = PASS
        self.requests: list[tuple[str, str, str]] = []  # (mode, method, path)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                mode = proxy.mode
                body = self._body()
                proxy.requests.append((mode, self.command, self.path))
                writing = self.command in _WRITE_METHODS
                if mode == DOWN or (mode == FAIL_WRITES and writing):
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(_SLOW_DOWN)
                    return
                if mode == CUT and self.command == "PUT":
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port,
                                                      timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                completes = (self.command == "PUT" and "partNumber=" not in self.path) or (
                    self.command == "POST" and "uploadId=" in self.path)
                if mode == LOSE_ANSWER and completes:
                    self.close_connection = True
                    return
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class MotoServer:
    """moto's S3 server process and the proxy in front of it."""

    port: int
    process: subprocess.Popen[bytes]
    proxy: FaultProxy
    log: Any  # moto logs every request: to a file, since a full pipe would block it
    buckets: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def start(cls, timeout: float = 20.0) -> MotoServer:
        port = free_port()
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                error = log.read().decode(errors="replace")
                log.close()
                raise RuntimeError(f"moto server exited with {process.returncode}: {error[-500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    log.close()
                    raise RuntimeError(f"moto server did not answer on port {port}") from None
                time.sleep(0.05)
        return cls(port, process, FaultProxy(port), log)

    def stop(self) -> None:
        self.proxy.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class S3Bucket:
    """One test's bucket: `url` is the archive root, `env` the settings a subprocess needs."""

    def __init__(self, server: MotoServer, name: str, prefix: str = "archive-root") -> None:
        import boto3

        self.server = server
        self.proxy = server.proxy
        self.name = name
        self.prefix = prefix
        self.url = f"s3://{name}/{prefix}"
        self.env = {
            "TAGARCHIVE_S3_ENDPOINT": f"http://127.0.0.1:{server.proxy.port}",
            "AWS_ACCESS_KEY_ID": "tagarchive-test-key",
            "AWS_SECRET_ACCESS_KEY": "tagarchive-test-secret-0123456789",
            "AWS_REGION": "us-east-1",
            # a failing request is retried once: fast tests, and retries are still exercised
            "TAGARCHIVE_S3_RETRIES": "2",
        }
        # boto3 talks to moto directly, so inspecting the bucket is never hit by a fault
        self.client = boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
            aws_access_key_id="x", aws_secret_access_key="y")
        self.client.create_bucket(Bucket=name)

    def objects(self, under: str = "") -> list[str]:
        """Every object key under the root (relative to it), sorted.

        Keys ending in '/' are left out: pyarrow's delete_file() leaves such an empty directory
        marker behind, which no reader takes for a file.
        """
        base = f"{self.prefix}/{under}".rstrip("/")
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=base):
            keys += [item["Key"][len(self.prefix) + 1:] for item in page.get("Contents", [])
                     if not item["Key"].endswith("/")]
        return sorted(keys)

    def get(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")["Body"]
        return bytes(body.read())

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=f"{self.prefix}/{key}", Body=data)


@pytest.fixture(scope="session")
def s3_moto() -> Iterator[MotoServer]:
    server = MotoServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_server(s3_moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """A fresh bucket on the session's moto server, the S3 environment set for this process."""
    bucket = S3Bucket(s3_moto, f"tagarchive-test-{os.getpid()}-{next(s3_moto.buckets)}")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                 "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in bucket.env.items():
        monkeypatch.setenv(name, value)
    s3_moto.proxy.mode = PASS
    yield bucket
    s3_moto.proxy.mode = PASS

"""Transport faults the replica can serve instead of a clean answer, for the reliability tests.

Variants (replica/world.py) change what a platform says; faults change how the bytes arrive.
Each fault matches requests by a substring of the raw request target and spoils `times` of them
(0: every one until cleared):

- `reset`: the headers promise the whole body, `fraction` of it is sent, then the connection is
  reset (RST), as when a proxy or the platform's edge drops mid-transfer.
- `stall`: `fraction` of the response is sent (0: not even the status line), then nothing for
  `seconds`, then the connection is closed; a crawler must time out rather than hang.
- `truncate`: a well-formed HTTP response whose document is cut to `fraction` of its bytes
  (Content-Length matches what is sent), as a broken cache or upstream serves it.
- `charset`: the body is unchanged but `Content-Type` declares `charset` (mojibake if believed).
- `slow`: the answer is delayed by `seconds`, then served intact.
- `huge`: `size` bytes of filler are added before the end of an HTML page (the counters are
  untouched), to measure what a very large page costs a crawler.
- `body`: the answer's status and headers with `body` (text, sent as UTF-8) instead of its
  document: a hostile page or API answer a test writes byte for byte.

In-process: `server.faults.add("reset", "/tiktok/tag/x", times=2)`; over HTTP:
`POST /__replica__/fault {"kind": "reset", "match": "/tiktok/tag/x", "times": 2}`.
`server.faults.clear()` (or `POST /__replica__/clear`) removes them and wakes stalled answers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

Response = tuple[int, dict[str, str], bytes]

KINDS = ("reset", "stall", "truncate", "charset", "slow", "huge", "body")
# the largest filler a `huge` fault may add; more would be a test mistake, not a fault
MAX_HUGE = 512 * 1024 * 1024


class _Writer(Protocol):
    """The parts of the replica's request handler a fault needs."""

    close_connection: bool
    connection: socket.socket

    def _write(self, method: str, response: Response) -> None: ...

    def send_response(self, code: int, message: str | None = None) -> None: ...

    def send_header(self, keyword: str, value: str) -> None: ...

    def end_headers(self) -> None: ...

    @property
    def wfile(self) -> Any: ...


@dataclass
class Fault:
    """One scheduled fault; `remaining` is None when it applies to every matching request."""

    kind: str
    match: str
    remaining: int | None
    fraction: float = 0.5
    seconds: float = 30.0
    charset: str = "iso-8859-1"
    size: int = 0
    body: str = ""


class FaultPlan:
    """The faults a ReplicaServer serves; thread-safe, shared by every handler thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._released = threading.Event()
        self.fired: Counter[str] = Counter()

    def add(self, kind: str, match: str, *, times: int = 1, fraction: float = 0.5,
            seconds: float = 30.0, charset: str = "iso-8859-1", size: int = 0,
            body: str = "") -> Fault:
        """Schedule a fault for requests whose target contains `match`."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
        if not match:
            raise ValueError("a fault needs a non-empty match")
        if not isinstance(times, int) or isinstance(times, bool) or times < 0:
            raise ValueError(f"times must be a non-negative int, got {times!r}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within [0, 1], got {fraction!r}")
        if not 0.0 <= seconds <= 600.0:
            raise ValueError(f"seconds must be within [0, 600], got {seconds!r}")
        if not 0 <= size <= MAX_HUGE:
            raise ValueError(f"size must be within [0, {MAX_HUGE}], got {size!r}")
        if not charset.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"not a charset name: {charset!r}")
        if not isinstance(body, str) or len(body) > MAX_HUGE:
            raise ValueError(f"body must be text of at most {MAX_HUGE} characters")
        fault = Fault(kind, match, times or None, float(fraction), float(seconds), charset,
                      int(size), body)
        with self._lock:
            self._released.clear()
            self._faults.append(fault)
        return fault

    def add_json(self, data: dict[str, Any]) -> Fault:
        """`add` from an admin request body; unknown keys are an error, not ignored."""
        allowed = {"kind", "match", "times", "fraction", "seconds", "charset", "size", "body"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        params = {k: data[k] for k in ("times", "fraction", "seconds", "charset", "size", "body")
                  if k in data}
        return self.add(str(data["kind"]), str(data["match"]), **params)

    def clear(self) -> None:
        """Remove every fault and wake any answer still stalled."""
        with self._lock:
            self._faults.clear()
            self.fired.clear()
            self._released.set()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(vars(f)) for f in self._faults]

    def take(self, target: str) -> Fault | None:
        """The first fault matching this request target, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.match in target and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    self.fired[fault.kind] += 1
                    return fault
        return None

    def serve(self, handler: _Writer, method: str, fault: Fault, response: Response) -> None:
        """Write `response` to the client as `fault` spoils it."""
        status, headers, body = response
        if fault.kind == "slow":
            self._released.wait(fault.seconds)
            handler._write(method, response)
        elif fault.kind == "charset":
            kind = headers.get("Content-Type", "text/html").split(";")[0].strip()
            handler._write(method, (status, {**headers, "Content-Type":
                                             f"{kind}; charset={fault.charset}"}, body))
        elif fault.kind == "truncate":
            handler._write(method, (status, headers, body[: int(len(body) * fault.fraction)]))
        elif fault.kind == "huge":
            handler._write(method, (status, headers, _pad(body, fault.size)))
        elif fault.kind == "body":
            handler._write(method, (status, headers, fault.body.encode("utf-8")))
        elif fault.kind == "reset":
            self._partial(handler, response, fault.fraction)
            _reset(handler)
        elif fault.kind == "stall":
            if fault.fraction > 0:
                self._partial(handler, response, fault.fraction)
            self._released.wait(fault.seconds)
            handler.close_connection = True

    @staticmethod
    def _partial(handler: _Writer, response: Response, fraction: float) -> None:
        """Status line and headers announcing the whole body, then only part of it."""
        status, headers, body = response
        handler.close_connection = True
        handler.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: int(len(body) * fraction)])
        handler.wfile.flush()


def _pad(body: bytes, size: int) -> bytes:
    """Filler inside an HTML comment before `</body>` (or at the end), leaving the data intact."""
    filler = b"<!--" + b"filler " * (size // 7) + b"-->"
    cut = body.rfind(b"</body>")
    if cut < 0:
        return body + filler
    return body[:cut] + filler + body[cut:]


def _reset(handler: _Writer) -> None:
    """Abort the connection with a TCP RST instead of an orderly close."""
    handler.close_connection = True
    conn = handler.connection
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # the handler's file objects hold references that would delay close(); detaching
        # leaves the socket object unusable (later writes fail quietly) and frees the descriptor
        os.close(conn.detach())


__all__ = ["KINDS", "Fault", "FaultPlan"]

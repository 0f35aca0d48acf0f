"""css and xpath rules of config-defined sources, evaluated in a helper process with a time limit.

lxml evaluates an XPath in C with no way to interrupt it: `//*[count(preceding::*)]` on a
large page runs for minutes, and neither a thread nor a signal handler can stop it. So the
expressions run in one long-lived helper process per crawl process, which is killed (and
started again for the next page) when a rule overruns. A round trip costs about a millisecond
plus copying the page; the helper also arms SIGALRM, whose default action ends it, in case
the crawl itself is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from parsel import Selector

from crawler.platforms.base import PlatformError


class RuleFailed(PlatformError):
    """A rule could not be evaluated on this page (outcome `error`, detail naming the rule)."""


class RuleTimeout(RuleFailed):
    """A rule ran past its time budget on this page and was stopped."""



# A css/xpath evaluation: (kind, expression, the rule's description for messages).
Query = tuple[str, str, str]

_ROOT = str(Path(__file__).resolve().parents[2])
HELPER_START_S = 60.0
_HELPER_MAIN = "from crawler.platforms.configured_helper import serve_rules; serve_rules()"


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
        # serve_rules (below) answers one JSON object per line
        return cast(dict[str, Any], json.loads(line))

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

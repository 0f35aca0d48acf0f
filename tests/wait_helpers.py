"""Waiting on conditions, not on the clock: a loaded machine only makes a wait longer.

Each bound here is a hang guard (generous, named in the failure), never what decides a pass.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import psutil


def wait_until(condition: Callable[[], Any], timeout: float = 60.0,
               what: str = "the condition") -> Any:
    """Poll `condition` until it is truthy and return its value; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class StreamLines:
    """Every line a child process writes to one pipe, read by a thread as it comes.

    A test can wait for a line the process logs (what it is doing now) and still read the
    whole output once it has ended.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(ValueError, OSError):  # closed under it: nothing more to read
            for line in self.stream:
                with self._lock:
                    self._lines.append(line.rstrip("\n"))

    def matching(self, predicate: Callable[[str], bool]) -> list[str]:
        with self._lock:
            return [line for line in self._lines if predicate(line)]

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """The first line satisfying `predicate`, once one has been written."""
        return wait_until(lambda: next(iter(self.matching(predicate)), None), timeout, what)

    def text(self, timeout: float = 30) -> str:
        """All of it, once the pipe has closed (the process ended)."""
        self._thread.join(timeout)
        with self._lock:
            return "\n".join(self._lines)

    def close(self, timeout: float = 30) -> None:
        """Once the process is gone: the rest read, then the pipe closed."""
        self._thread.join(timeout)
        self.stream.close()


def reap(proc: subprocess.Popen[Any], group: bool = False) -> None:
    """Kill a child that is still running, and what it started, and wait for it: no test leaves
    a process (or a Popen warning that it is still running) to the next one. What it started
    is found before the kill: a killed service's crawls run in sessions of their own. `group`:
    the child was started with start_new_session; its process group is killed."""
    if proc.poll() is None:
        try:
            started = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            started = []
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        for process in started:
            with contextlib.suppress(psutil.Error):  # psutil checks it is still the same one
                process.kill()
    proc.wait()

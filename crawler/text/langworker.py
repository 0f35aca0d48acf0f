"""Post texts described (language, hashtags) in a second process, off the crawl's thread.

lingua's Rust calls hold the GIL for their whole length (measured: a Python thread beside
`compute_language_confidence_values_in_parallel` got 2% of its solo speed), so a thread would not
take the work off the crawl's thread; a process does, and it also loads the models (~0.12 s)
away from it.

The process is `python -m crawler.text.langworker`, started with pipes for its stdin and stdout
only: it imports `crawler.text` and lingua, not the crawl (multiprocessing's spawn imports the
parent's main module again, there the whole crawl: ~1.5 CPU-s and ~35 MB more per crawl). It
reads batches of texts on its stdin and answers each on its stdout, in order, and ends when its
stdin closes: when the crawl closes it, and when the crawl dies, even by `kill -9`. Its stderr
goes nowhere, so it never holds the crawl's own output open after the crawl is gone.

Frames on both pipes: a 4-byte big-endian length, then a pickle (the two ends are this module).
"""

from __future__ import annotations

import logging
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from typing import IO

from crawler.text.language import Described, describe_texts, detect_languages

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One frame's payload, or None at the end of the stream (or a frame cut short)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's loop: load the models, then answer each batch until stdin closes."""
    detect_languages(["loads the models"], parallel=False)
    while (frame := read_frame(stdin)) is not None:
        texts: list[str | None] = pickle.loads(frame)  # noqa: S301 - our own parent's frames
        write_frame(stdout, pickle.dumps(describe_texts(texts, parallel=False)))


class LanguageWorker:
    """describe_texts in the worker process, a batch at a time: submit() hands the texts over
    and returns at once; answers() waits for them. Whatever the process cannot answer (it did
    not start, it died) is described here, in this process: every text gets its answer."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: deque[Future[list[Described]]] = deque()  # answers to come, in order
        self._lock = threading.Lock()
        # batches for the current process's writer thread (None: close its stdin)
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def start(self) -> None:
        """Start the process (it loads the models in the background)."""
        if self._proc is not None:
            return
        try:
            proc = subprocess.Popen([sys.executable, "-m", "crawler.text.langworker"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
        except OSError as exc:
            logger.warning("language detection stays in this process: %s", exc)
            return
        self._proc, self._outbox = proc, queue.SimpleQueue()  # a process, its own outbox
        threading.Thread(target=self._write, args=(proc, self._outbox), daemon=True,
                         name="langworker-write").start()
        threading.Thread(target=self._read, args=(proc, self._outbox), daemon=True,
                         name="langworker-read").start()

    def submit(self, texts: list[str | None]) -> Future[list[Described]] | None:
        """The texts' answers to come, or None when there is no process to ask."""
        future: Future[list[Described]] = Future()
        with self._lock:
            if self._proc is None:
                return None
            self._pending.append(future)
            self._outbox.put(pickle.dumps(texts))  # written by the writer thread, in order
        return future

    def answers(self, future: Future[list[Described]] | None,
                texts: list[str | None]) -> list[Described]:
        """What submit() promised for `texts`, described here if the process did not answer."""
        if future is not None:
            try:
                return future.result()
            except Exception as exc:
                logger.warning("language worker failed (%s): %d texts described here", exc,
                               len(texts))
        return describe_texts(texts)

    def close(self) -> None:
        """Close the process's stdin once what it was given is written: it answers that and
        ends (not waited for; the reader thread reaps it)."""
        with self._lock:
            if self._proc is not None:
                self._outbox.put(None)
                self._proc = None

    def _write(self, proc: subprocess.Popen[bytes],
               outbox: queue.SimpleQueue[bytes | None]) -> None:
        assert proc.stdin is not None
        try:
            while (payload := outbox.get()) is not None:
                write_frame(proc.stdin, payload)
            proc.stdin.close()
        except (OSError, ValueError) as exc:  # the process died: the reader fails what waits
            logger.debug("language worker stdin: %s", exc)

    def _read(self, proc: subprocess.Popen[bytes],
              outbox: queue.SimpleQueue[bytes | None]) -> None:
        assert proc.stdout is not None
        while (frame := read_frame(proc.stdout)) is not None:
            with self._lock:
                future = self._pending.popleft()
            future.set_result(pickle.loads(frame))  # noqa: S301 - our own child's frames
        proc.stdout.close()
        proc.wait()
        outbox.put(None)  # its writer thread ends too, if it still waits for batches
        with self._lock:
            self._proc = None if self._proc is proc else self._proc
            waiting, self._pending = list(self._pending), deque()
        for future in waiting:
            future.set_exception(RuntimeError(f"the language worker ended (exit "
                                              f"{proc.returncode})"))


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)

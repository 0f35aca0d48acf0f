"""Run the replica standalone: python -m replica [--port N] [--seed S] [--host H]."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TextIO

from replica.server import ReplicaServer
from replica.world import World

# What signal.signal() returns and takes back: a function, SIG_DFL/SIG_IGN, or None for a handler
# not set from Python.
_SignalHandler = Callable[[int, FrameType | None], object] | int | None


def serve_forever(
    port: int = 0,
    seed: int = 2025,
    out: TextIO = sys.stdout,
    *,
    host: str = "127.0.0.1",
    stop: threading.Event | None = None,
) -> None:
    """Serve until Ctrl-C, SIGTERM or `stop` is set, printing the URLs first."""
    stop = stop if stop is not None else threading.Event()
    previous: dict[signal.Signals, _SignalHandler] = {}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (how a supervisor ends us) and Ctrl-C are a clean stop, not a crash; handling
        # SIGINT here too leaves no moment where it would surface as a KeyboardInterrupt
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        with ReplicaServer(World(seed=seed), port=port, host=host) as server:
            print(
                f"replica {server.url} (seed {seed}, now {server.world.now().isoformat()})",
                file=out,
            )
            for name in server.platforms:
                print(f"  {name:<12} {server.base_url(name)}", file=out)
            print("Ctrl-C to stop", file=out, flush=True)
            try:
                while not stop.wait(0.2):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replica", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--seed", type=int, default=2025, help="world seed (default 2025)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    args = parser.parse_args(argv)
    serve_forever(args.port, args.seed, host=args.host)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared machinery: the in-process replica, child crawls sampled for memory, figures, medians."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.probe import ENV as PROBE_ENV
from benchmarks.probe import EXTENSIONS_SETTING
from replica import server as replica_server
from replica.server import ReplicaServer
from replica.world import World

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SAMPLE_SECONDS = 0.2
# PSS (shared pages split between the processes that map them) costs ~1 ms per process to
# read, so it is sampled every PSS_EVERY-th tick only; RSS every tick.
PSS_EVERY = 5
SEED = 2025
CHILD_TIMEOUT_S = 300.0

# The replica's stock server (socketserver defaults) distorts crawl timings on loopback:
# responses are written as two sends (headers, body), so without TCP_NODELAY every keep-alive
# response waits ~40 ms for Nagle + delayed ACK; and its listen backlog of 5 overflows when a
# crawl opens its connections at once, which costs 1 s SYN retransmits.
REPLICA_BACKLOG = 128
REPLICA_NOTE = (
    "the replica runs in the benchmark process (ThreadingHTTPServer threads) and shares the "
    "cores with the crawl under test; for the benchmarks its handler sets TCP_NODELAY and its "
    f"listen backlog is {REPLICA_BACKLOG} instead of 5 (else 40 ms Nagle/delayed-ACK stalls per "
    "keep-alive response and 1 s SYN retransmits swamp the figures)"
)


@dataclass
class ChildRun:
    """One crawl subprocess: crawl-phase timing (probe), memory, and CPU.

    `cpu_s` is the CPU time of the crawl process and its descendants over their whole life;
    `replica_cpu_s` that of the benchmark process meanwhile (replica threads + the sampler).
    """

    label: str
    returncode: int
    wall_s: float
    crawl_s: float | None
    peak_rss_tree: int
    peak_rss_main: int
    peak_pss_tree: int
    peak_processes: int
    cpu_s: float
    replica_cpu_s: float
    probe: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""


@dataclass
class Figure:
    """One row of the results table; `ratio` compares `value` with its same-run baseline."""

    name: str
    value: float
    unit: str
    ratio: float | None = None
    ratio_of: str = ""
    target: str = ""
    meets_target: bool | None = None
    samples: list[float] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain data for latest.json."""
        return asdict(self)


def prime_truth(server: Any, platform: str, tags: Sequence[str]) -> None:
    """Compute the replica's ground truth for these tags once, before anything is timed."""
    world = server.world
    for tag in tags:
        world.topic(platform, tag)
        world.posts_for(platform, tag)
        for related in world.related(platform, tag):
            world.topic(platform, related)


def bench_tags(prefix: str, n: int, width: int) -> list[str]:
    """N distinct tag names for one benchmark (prefix + zero-padded index): every name exists
    on the replica, which makes up a topic for any tag it is asked about."""
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of the per-repetition ratios (each pair ran back to back, so drift cancels)."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=True) if b]
    return median(ratios)


def interleave(section: str, reps: int, subject: Callable[[], ChildRun],
               baseline: Callable[[], ChildRun],
               log: Callable[[str], Any]) -> tuple[list[ChildRun], list[ChildRun]]:
    """Run subject and baseline `reps` times each, swapping which goes first every time."""
    ours: list[ChildRun] = []
    bare: list[ChildRun] = []
    for rep in range(reps):
        order = ((subject, ours), (baseline, bare))
        for crawl, runs in order if rep % 2 == 0 else order[::-1]:
            runs.append(crawl())
            log(f"  {section} rep {rep + 1}/{reps} {describe(runs[-1])}")
    return ours, bare


@contextlib.contextmanager
def running_replica(seed: int = SEED) -> Iterator[ReplicaServer]:
    """A replica on a free 127.0.0.1 port, served by threads of this process (see REPLICA_NOTE)."""
    handler, httpd = replica_server._Handler, replica_server._HTTPServer
    saved = handler.disable_nagle_algorithm, httpd.request_queue_size
    handler.disable_nagle_algorithm, httpd.request_queue_size = True, REPLICA_BACKLOG
    try:
        with ReplicaServer(world=World(seed=seed)) as server:
            yield server
    finally:
        handler.disable_nagle_algorithm, httpd.request_queue_size = saved


def listen_overflows() -> int | None:
    """The host's TcpExt ListenOverflows counter (SYNs dropped by full accept queues)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            value = table.get("ListenOverflows")
            return int(value) if value is not None else None
    return None


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    """proc and all its descendants (empty once it is gone)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _tree_rss(procs: list[psutil.Process], main_pid: int) -> tuple[int, int]:
    """(RSS summed over procs, RSS of main_pid alone)."""
    total = main = 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        if p.pid == main_pid:
            main = rss
    return total, main


def _tree_pss(procs: list[psutil.Process]) -> int:
    """PSS summed over procs."""
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except (psutil.Error, AttributeError):
            continue
    return total


class _Sampler(threading.Thread):
    """Samples the RSS of a process tree every SAMPLE_SECONDS until stopped; keeps peaks."""

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"rss-{pid}", daemon=True)
        self.proc = psutil.Process(pid)
        self.stop_event = threading.Event()
        self.peak_tree = self.peak_main = self.peak_pss = self.peak_procs = 0

    def run(self) -> None:
        tick = 0
        while True:
            procs = _tree(self.proc)
            tree, main = _tree_rss(procs, self.proc.pid)
            self.peak_tree = max(self.peak_tree, tree)
            self.peak_main = max(self.peak_main, main)
            self.peak_procs = max(self.peak_procs, len(procs))
            if tick % PSS_EVERY == 0:
                self.peak_pss = max(self.peak_pss, _tree_pss(procs))
            tick += 1
            if self.stop_event.wait(SAMPLE_SECONDS):
                return


def _kill_tree(pid: int) -> None:
    """Kill a crawl that overran, and the driver and browser processes it started."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()


def run_child(label: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
              timeout: float = CHILD_TIMEOUT_S) -> ChildRun:
    """Run one crawl process from the repository root; time it and sample its memory."""
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
        probe_path = Path(tmp) / "probe.json"
        child_env = {**os.environ, **(env or {}), PROBE_ENV: str(probe_path),
                     "PYTHONUNBUFFERED": "1"}
        overflows_before = listen_overflows()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        own_before = time.process_time()
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=ROOT, env=child_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        sampler = _Sampler(proc.pid)
        sampler.start()
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            stdout, stderr = proc.communicate()
        wall = time.perf_counter() - started
        own_cpu = time.process_time() - own_before
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        overflows_after = listen_overflows()
        sampler.stop_event.set()
        sampler.join()
        probe: dict[str, Any] = {}
        if probe_path.exists():
            probe = json.loads(probe_path.read_text(encoding="utf-8"))
    return ChildRun(
        label=label, returncode=proc.returncode, wall_s=wall, crawl_s=probe.get("crawl_s"),
        peak_rss_tree=sampler.peak_tree, peak_rss_main=sampler.peak_main,
        peak_pss_tree=sampler.peak_pss, peak_processes=sampler.peak_procs,
        cpu_s=(children_after.ru_utime + children_after.ru_stime
               - children_before.ru_utime - children_before.ru_stime),
        replica_cpu_s=own_cpu, probe=probe,
        extra={"stdout_tail": stdout[-500:], "host_listen_overflows": (
            overflows_after - overflows_before
            if overflows_before is not None and overflows_after is not None else None)},
        stderr_tail=stderr[-2000:],
    )


def describe(run: ChildRun) -> str:
    """One log line's worth of a child run."""
    text = (f"{run.label:<10} crawl {run.crawl_s or float('nan'):6.2f} s  peak tree RSS "
            f"{mib(run.peak_rss_tree):6.0f} MiB  ({run.peak_processes} procs)  CPU "
            f"{run.cpu_s:5.1f} s, replica {run.replica_cpu_s:4.1f} s")
    overflows = run.extra.get("host_listen_overflows")
    if overflows:
        text += f"  [host dropped {overflows} SYNs on full listen queues meanwhile]"
    return text


def check(run: ChildRun, ok: Callable[[ChildRun], str | None] | None = None) -> None:
    """Raise with the child's stderr when it failed or `ok` names a problem."""
    problem = f"exit code {run.returncode}" if run.returncode else None
    if problem is None and run.crawl_s is None:
        problem = "the probe wrote no timing (extension not loaded?)"
    if problem is None and ok is not None:
        problem = ok(run)
    if problem:
        raise RuntimeError(f"{run.label}: {problem}\n--- stderr tail ---\n{run.stderr_tail}")


def replica_load(runs: Sequence[ChildRun]) -> float:
    """Replica CPU per second of crawl phase (it idles outside it), as a share of one core."""
    return median([r.replica_cpu_s / r.crawl_s for r in runs if r.crawl_s])


def mib(n: float) -> float:
    """Bytes to MiB."""
    return n / (1024 * 1024)


def memory_figures(section: str, baseline: str, ours: Sequence[ChildRun],
                   bare: Sequence[ChildRun], note: str = "") -> list[Figure]:
    """Peak RSS of each process tree, and peak PSS, with ratios tagarchive / baseline."""
    ours_rss = [mib(r.peak_rss_tree) for r in ours]
    bare_rss = [mib(r.peak_rss_tree) for r in bare]
    ours_pss = [mib(r.peak_pss_tree) for r in ours]
    bare_pss = [mib(r.peak_pss_tree) for r in bare]
    main_rss = median([mib(r.peak_rss_main) for r in ours])
    procs = max((r.peak_processes for r in ours), default=0)
    ratio_of = f"tagarchive / {baseline}"
    return [
        Figure(f"{section}: peak RSS of process tree, tagarchive", median(ours_rss), "MiB",
               ratio=paired_ratio(ours_rss, bare_rss), ratio_of=ratio_of, samples=ours_rss,
               note=f"{note}RSS summed over up to {procs} processes, sampled every "
                    f"{SAMPLE_SECONDS} s (shared pages counted in each); the crawler "
                    f"process alone peaked at {main_rss:.0f} MiB"),
        Figure(f"{section}: peak RSS of process tree, {baseline}", median(bare_rss), "MiB",
               ratio=1.0, ratio_of="reference", samples=bare_rss),
        Figure(f"{section}: peak PSS of process tree, tagarchive", median(ours_pss), "MiB",
               ratio=paired_ratio(ours_pss, bare_pss), ratio_of=ratio_of, samples=ours_pss,
               note=f"PSS sampled every {SAMPLE_SECONDS * PSS_EVERY:.0f} s (shared pages split "
                    f"between processes); {baseline}: {median(bare_pss):.0f} MiB"),
    ]


def tagarchive_crawl_argv(platform: str, tags: Sequence[str], out: str, replica_url: str,
                          concurrency: int) -> list[str]:
    """The real CLI crawl, plus the passive timing probe."""
    return [PYTHON, "-m", "crawler.cli", "crawl", platform, *tags, "--out", out,
            "--replica", replica_url, "--delay", "0", "--concurrency", str(concurrency),
            "--quiet", "-s", f"EXTENSIONS={EXTENSIONS_SETTING}"]


def read_run_record(out: str) -> dict[str, Any]:
    """The single `runs` row a crawl into a fresh output root wrote."""
    import pyarrow.dataset as ds

    rows = ds.dataset(Path(out) / "runs", format="parquet",
                      partitioning="hive").to_table().to_pylist()
    if len(rows) != 1:
        raise RuntimeError(f"expected one runs row under {out}, found {len(rows)}")
    return rows[0]


RECORD_FIELDS = ("duration_s", "requests", "snapshots", "posts", "rendered_requests", "verdict")


def run_tagarchive(platform: str, tags: Sequence[str], replica_url: str, concurrency: int,
                   prefix: str, ok: Callable[[ChildRun], str | None], *,
                   env: dict[str, str] | None = None,
                   timeout: float = CHILD_TIMEOUT_S) -> ChildRun:
    """One real CLI crawl into a throw-away root, its run record's counts in `extra`."""
    import shutil

    out = tempfile.mkdtemp(prefix=prefix)
    try:
        run = run_child("tagarchive",
                        tagarchive_crawl_argv(platform, tags, out, replica_url, concurrency),
                        env=env, timeout=timeout)
        check(run)
        record = read_run_record(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    run.extra.update({k: record[k] for k in RECORD_FIELDS})
    check(run, ok)
    return run


"""`python -m benchmarks [--quick]`: run every benchmark, print the table, write latest.json."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks import (
    backfill,
    browser_use,
    compaction,
    distributed,
    growth,
    http_path,
    memory,
    parquet_writer,
    rendered,
    signing,
)
from benchmarks.harness import REPLICA_NOTE, Figure

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = {"http": http_path, "browser-use": browser_use, "growth": growth,
              "rendered": rendered, "memory": memory,
              "parquet": parquet_writer, "compaction": compaction,
              "backfill": backfill, "distributed": distributed, "signing": signing}


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def print_table(figures: Sequence[Figure], out: Any = sys.stdout) -> None:
    """Figure, measured value, ratio, target: one line each, then the notes."""
    rows = [("figure", "value", "unit", "ratio", "ratio of", "target")]
    for f in figures:
        target = f.target
        if f.meets_target is not None:
            target = f"{target}  {'PASS' if f.meets_target else 'FAIL'}"
        rows.append((f.name, _fmt(f.value), f.unit, _fmt(f.ratio), f.ratio_of, target))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        cells = [c.rjust(w) if j in (1, 3) else c.ljust(w)
                 for j, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip(), file=out)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=out)
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    if notes:
        print("\n".join(["notes:", *notes]), file=out)


def _code() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=RESULTS.parents[1], capture_output=True,
                                  text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines()
               if not line[3:].startswith("benchmarks/")]
    return {"commit": git("rev-parse", "--short", "HEAD"), "changed_paths": len(changed)}


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "scrapy": version("scrapy"),
        "scrapy-playwright": version("scrapy-playwright"),
        "playwright": version("playwright"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks in order and report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smaller inputs throughout (docs/performance.md lists both sizes)")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append",
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--reps", type=int,
                        help="interleaved repetitions per crawl (default: 5 for http, 3 for "
                             "the others)")
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json",
                        help="where to write every figure and raw sample (default %(default)s)")
    args = parser.parse_args(argv)
    selected = args.only or list(BENCHMARKS)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "code": _code(),
        "machine_before": _machine(),
        "notes": [REPLICA_NOTE],
        "benchmarks": {},
    }
    code = report["code"]
    dirty = f" + {code['changed_paths']} changed paths" if code["changed_paths"] else ""
    print(f"tagarchive benchmarks{' (quick)' if args.quick else ''} at {code['commit']}{dirty}; "
          f"{REPLICA_NOTE}", flush=True)
    figures: list[Figure] = []
    for name in selected:
        print(f"{name}:", flush=True)
        kwargs: dict[str, Any] = {"quick": args.quick, "log": lambda m: print(m, flush=True)}
        if args.reps:
            kwargs["reps"] = args.reps
        result = BENCHMARKS[name].run(**kwargs)
        figures.extend(result["figures"])
        report["benchmarks"][name] = {**result,
                                      "figures": [f.to_json() for f in result["figures"]]}
    report["machine_after"] = _machine()
    report["total_s"] = time.perf_counter() - started
    report["figures"] = [f.to_json() for f in figures]
    print()
    print_table(figures)
    path = args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    load = report["machine_after"]["loadavg"]
    print(f"\n{report['total_s']:.0f} s in all; load average after {load[0]:.2f}; "
          f"written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

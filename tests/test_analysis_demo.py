"""docs/analysis.md, run: every recipe against one demo output, and the eight questions checked.

The demo runs once per session (demo_workdir). The answers to the eight questions are computed
here again from the Parquet with plain pyarrow and Python, not with DuckDB, so a wrong query
cannot agree with itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from crawler.cli.main import main
from crawler.services.demo import DEMO_TICKS
from storage import open_dataset
from tests.analysis_helpers import DEMO_COMMAND, demo_workdir
from tests.crawl_helpers import ROOT

DOC = ROOT / "docs" / "analysis.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
_QUESTION = re.compile(r"<!-- question: (\w+) -->")
def blocks(text: str | None = None) -> list[tuple[str, str, int]]:
    """(language, code, offset) of every fenced block of the doc."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    return [(m.group(1), m.group(2), m.start()) for m in _FENCE.finditer(text)]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_workdir(tmp_path_factory)


@pytest.fixture(scope="session")
def spark_job(workdir: Path) -> Iterator[subprocess.Popen[str]]:
    """The Spark recipe, started early: a JVM takes a while, the other tests run meanwhile."""
    [code] = [code for lang, code, _ in blocks() if lang == "python" and "pyspark" in code]
    job = subprocess.Popen([sys.executable, "-c", code], cwd=workdir, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield job
    if job.poll() is None:
        job.kill()
        job.communicate()


def table(workdir: Path, dataset: str) -> list[dict[str, Any]]:
    return open_dataset(workdir / "data", dataset).to_table().to_pylist()


def test_the_documented_demo_is_the_one_tested(workdir: Path,
                                               spark_job: subprocess.Popen[str]) -> None:
    commands = [line for lang, code, _ in blocks() if lang == "sh"
                for line in code.splitlines() if line.startswith("tagarchive demo")]
    assert commands == [DEMO_COMMAND]
    assert spark_job.poll() in (None, 0)
    assert {r["platform"] for r in table(workdir, "snapshots")} >= {"tiktok", "xiaohongshu"}


def test_every_block_is_run_by_this_module() -> None:
    kinds = defaultdict(int)
    for lang, _code, _ in blocks():
        kinds[lang] += 1
    assert set(kinds) <= {"sh", "sql", "python", "text"}, kinds
    text = DOC.read_text(encoding="utf-8")
    sql_offsets = [offset for lang, _c, offset in blocks(text) if lang == "sql"]
    questions = [m.end() for m in _QUESTION.finditer(text)]
    assert len(questions) == 8 == len(sql_offsets)  # each SQL block answers one question
    assert all(q < s for q, s in zip(questions, sql_offsets, strict=True))


def test_python_recipes_run_and_print_what_the_doc_says(
        workdir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(workdir)
    found = blocks()
    ran = 0
    for index, (lang, code, offset) in enumerate(found):
        if lang != "python" or "pyspark" in code:
            continue
        exec(compile(code, f"{DOC.name} block at {offset}", "exec"), {"__name__": "__doc__"})
        printed = capsys.readouterr().out
        assert printed.strip(), f"the recipe at {offset} printed nothing"
        following = found[index + 1] if index + 1 < len(found) else None
        if following and following[0] == "text":
            assert printed == following[1], f"the recipe at {offset} prints something else"
        ran += 1
    assert ran == 5


def test_shell_recipes_run(workdir: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for lang, code, _ in blocks():
        if lang != "sh":
            continue
        for line in code.splitlines():
            if not line.strip() or line.startswith("tagarchive demo"):
                continue
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=workdir, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, (line, proc.stderr[-2000:])
            outputs.append(proc.stdout)
    snapshots = table(workdir, "snapshots")
    best = {p: max(r["views"] for r in snapshots if r["platform"] == p
                   and r["tag"] == "tiktokrefugee" and r["views"] is not None)
            for p in ("tiktok", "xiaohongshu")}
    assert all(f"{views:,}" in outputs[0] for views in best.values())
    assert outputs[1].split() == ["snapshots", str(len(snapshots)), "posts",
                                  str(len(table(workdir, "posts")))]
    assert pq.read_table(workdir / "snapshots.parquet").num_rows == len(snapshots)
    page = (workdir / "report.html").read_text(encoding="utf-8")
    charts = re.findall(r'data-chart="([^"]+)" data-tag="([^"]+)"', page)
    pngs = sorted(p.name for p in (workdir / "charts").glob("*.png"))
    assert len(pngs) == len(charts) >= 9
    assert {tag for _chart, tag in charts} == {"tiktok难民"}
    assert {name.split("-", 1)[0] for name in pngs} == {"01"}


def answer(workdir: Path, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str], question: str) -> list[dict[str, Any]]:
    """Run the doc's SQL for a question through `tagarchive query --format json`."""
    text = DOC.read_text(encoding="utf-8")
    start = next(m.end() for m in _QUESTION.finditer(text) if m.group(1) == question)
    sql = next(code for lang, code, offset in blocks(text) if lang == "sql" and offset > start)
    monkeypatch.chdir(workdir)
    assert main(["query", sql, "--root", "data", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:
        for key, value in row.items():
            if key in ("observed_at", "first_seen", "last_seen", "started_at"):
                row[key] = datetime.fromisoformat(value)
    return rows


def ordered(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: tuple(r[k] for k in keys))


def test_question_tags(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    got = answer(workdir, monkeypatch, capsys, "tags")
    by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table(workdir, "snapshots"):
        by_tag[row["tag"]].append(row)
    want = [{"tag": tag, "platforms": sorted({r["platform"] for r in rows}),
             "snapshots": len(rows), "first_seen": min(r["observed_at"] for r in rows),
             "last_seen": max(r["observed_at"] for r in rows)}
            for tag, rows in sorted(by_tag.items())]
    assert got == want
    assert {"tiktokrefugee", "tiktok难民", "rednote"} <= set(by_tag)


def test_question_latest(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    got = answer(workdir, monkeypatch, capsys, "latest")
    latest: dict[str, dict[str, Any]] = {}
    for row in ordered([r for r in table(workdir, "snapshots") if r["tag"] == "tiktok难民"],
                       "observed_at"):
        latest[row["platform"]] = row
    columns = ("platform", "observed_at", "views", "views_semantics", "views_text", "discussions",
               "discussions_semantics")
    assert got == [{c: latest[p][c] for c in columns} for p in sorted(latest)]
    assert latest["xiaohongshu"]["views"] > 100_000_000


def crossings(workdir: Path, threshold: int) -> list[tuple[str, str, int, int, int]]:
    runs = [r["run_id"] for r in ordered(table(workdir, "runs"), "started_at")]
    series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in ordered(table(workdir, "snapshots"), "observed_at"):
        series[(row["platform"], row["tag"])].append(row)
    found = []
    for (platform, tag), rows in series.items():
        for before, row in zip(rows, rows[1:], strict=False):
            if None in (before["views"], row["views"]):
                continue  # SQL compares nothing with a null, and neither does this
            if before["views"] < threshold <= row["views"]:
                found.append((row["observed_at"], platform, tag, runs.index(row["run_id"]) + 1,
                              before["views"], row["views"]))
    return [f[1:] for f in sorted(found)]


def test_question_crossings_and_the_story(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    got = answer(workdir, monkeypatch, capsys, "crossings")
    want = crossings(workdir, 100_000_000)
    assert [(r["platform"], r["tag"], r["tick"], r["views_before"], r["views"]) for r in got] \
        == want
    # the story the doc tells: Xiaohongshu's TikTok难民 in tick 11, with these two counts
    assert ("xiaohongshu", "tiktok难民", 11, 95_913_927, 122_480_000) in want
    text = DOC.read_text(encoding="utf-8")
    assert "in tick 11, from 95,913,927 to\n122,480,000 views" in text


def test_question_growth(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    got = answer(workdir, monkeypatch, capsys, "growth")
    want = []
    rows = [r for r in table(workdir, "snapshots") if r["tag"] == "tiktokrefugee"]
    for platform in sorted({r["platform"] for r in rows}):
        previous = None
        for row in ordered([r for r in rows if r["platform"] == platform], "observed_at"):
            added = None if previous is None else row["views"] - previous
            percent = None if previous is None else 100.0 * (row["views"] / previous - 1)
            want.append((platform, row["observed_at"], row["views"], added, percent))
            previous = row["views"]
    assert len(got) == len(want)
    for row, (platform, observed_at, views, added, percent) in zip(got, want, strict=True):
        assert (row["platform"], row["observed_at"], row["views"], row["views_added"]) == (
            platform, observed_at, views, added)
        assert (row["percent"] is None) == (percent is None)
        if percent is not None:
            assert row["percent"] == pytest.approx(percent, abs=0.005)
    assert any(r["views_added"] for r in got)  # the demo grows between crawls


def test_question_health(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    got = answer(workdir, monkeypatch, capsys, "health")
    want = [{"run_id": r["run_id"], "started_at": r["started_at"], "verdict": r["verdict"],
             "exit_code": r["exit_code"], "snapshots": r["snapshots"], "rejects": r["rejects"],
             "errors": r["errors"],
             "not_stored": [f"{o['platform']} {o['tag']}: {o['status']}"
                            for o in r["outcomes"] if o["status"] != "stored"]}
            for r in ordered(table(workdir, "runs"), "started_at")]
    assert got == want
    assert len(got) == DEMO_TICKS  # one run per tick of the replay


def _first_seen(workdir: Path, tag: str) -> list[dict[str, Any]]:
    """Each post of a tag once, as first observed."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for row in ordered([r for r in table(workdir, "posts") if r["tag"] == tag], "observed_at"):
        first.setdefault((row["platform"], row["post_id"]), row)
    return list(first.values())


def test_question_languages(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    got = answer(workdir, monkeypatch, capsys, "languages")
    counts: dict[tuple[str, Any, str], int] = defaultdict(int)
    for row in _first_seen(workdir, "tiktok难民"):
        day = row["observed_at"].replace(hour=0, minute=0, second=0, microsecond=0)
        counts[(row["platform"], day, row["lang"] or "unknown")] += 1
    per_day: dict[tuple[str, Any], int] = defaultdict(int)
    for (platform, day, _lang), n in counts.items():
        per_day[(platform, day)] += n
    want = sorted(((p, d, lang, n, round(100.0 * n / per_day[(p, d)], 1))
                   for (p, d, lang), n in counts.items()),
                  key=lambda r: (r[0], r[1], -r[3], r[2]))
    assert [(r["platform"], datetime.fromisoformat(r["day"]), r["lang"], r["posts"])
            for r in got] == [w[:4] for w in want]
    # DuckDB's round() takes halves away from zero, Python's float rounding may not: one digit
    assert [r["percent"] for r in got] == pytest.approx([w[4] for w in want], abs=0.1 + 1e-9)
    assert want, "the demo stores posts under tiktok难民"


def test_question_cotags(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    got = answer(workdir, monkeypatch, capsys, "cotags")
    posts: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in table(workdir, "posts"):
        if row["tag"] == "tiktok难民":
            for co_tag in row["hashtags"] or ():
                if co_tag != "tiktok难民":
                    posts[(row["platform"], co_tag)].add(row["post_id"])
    want = []
    for platform in sorted({p for p, _t in posts}):
        ranked = sorted(((t, len(ids)) for (p, t), ids in posts.items() if p == platform),
                        key=lambda r: (-r[1], r[0]))[:10]
        want += [{"platform": platform, "co_tag": t, "posts": n} for t, n in ranked]
    assert got == want


def test_question_seen(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    got = answer(workdir, monkeypatch, capsys, "seen")
    latest: dict[str, dict[str, Any]] = {}
    for row in ordered([r for r in table(workdir, "snapshots") if r["tag"] == "tiktok难民"],
                       "observed_at"):
        latest[row["platform"]] = row
    columns = ("platform", "observed_at", "posts_seen", "posts", "posts_semantics",
               "visibility_cap")
    assert got == [{c: latest[p][c] for c in columns} for p in sorted(latest)]
    assert all(r["posts_seen"] is not None for r in got)


def test_spark_recipe(workdir: Path, spark_job: subprocess.Popen[str]) -> None:
    out, err = spark_job.communicate(timeout=600)
    assert spark_job.returncode == 0, err[-3000:]
    best: dict[tuple[str, str], int | None] = {}
    for row in table(workdir, "snapshots"):
        key, views = (row["platform"], row["tag"]), row["views"]
        best[key] = max(best.get(key) or 0, views) if views is not None else best.get(key)
    shown = [tuple(cell.strip() for cell in line.strip("|").split("|"))
             for line in out.splitlines() if line.startswith("|")]
    assert shown[0] == ("platform", "tag", "views")
    assert {(p, t, None if v.upper() == "NULL" else int(v)) for p, t, v in shown[1:]} == {
        (p, t, v) for (p, t), v in best.items()}


def test_the_demo_report_spans_the_replayed_days_and_english_rises(workdir: Path) -> None:
    """The story of 10-20 January 2025: the report the demo wrote covers the replayed days,
    and English posts rise on Xiaohongshu (shares computed here from the Parquet)."""
    page = (workdir / "data" / "report.html").read_text(encoding="utf-8")
    days = sorted(set(re.findall(r'data-x="(2025-01-\d\d)', page)))
    assert days[0] <= "2025-01-10"
    assert days[-1] >= "2025-01-19"
    runs = table(workdir, "runs")
    assert {r["trigger"] for r in runs} == {"demo"}
    first = _first_seen(workdir, "tiktok难民")
    xhs = [r for r in first if r["platform"] == "xiaohongshu"]

    def english(rows: list[dict[str, Any]]) -> float:
        return sum(1 for r in rows if r["lang"] == "en") / max(1, len(rows))

    early = [r for r in xhs if r["created_at"] and r["created_at"].day <= 12]
    late = [r for r in xhs if r["created_at"] and r["created_at"].day >= 15]
    assert early
    assert late
    assert english(late) > english(early) + 0.1

"""`tagarchive query`: output formats read back exactly, statements from stdin, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from crawler.cli.analysis import repl
from crawler.cli.main import main
from storage import open_archive
from tests.analysis_helpers import write_archive
from tests.crawl_helpers import ROOT

SQL = ("select platform, tag, observed_at, views, views_semantics, views_text, discussions, date "
       "from snapshots order by platform, tag, observed_at")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("query") / "data")


@pytest.fixture(scope="module")
def expected(root: Path) -> list[dict[str, Any]]:
    with open_archive(root) as archive:
        return archive.arrow(archive.sql(SQL)).to_pylist()


def query(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["query", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_reads_back_to_the_same_values(root: Path, expected: list[dict[str, Any]],
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    out = tmp_path / "result.csv"
    assert query(capsys, SQL, "--root", str(root), "--format", "csv", "--output", str(out))[0] == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0]) == list(expected[0])
    for got, want in zip(rows, expected, strict=True):
        assert datetime.fromisoformat(got["observed_at"]) == want["observed_at"]
        assert int(got["views"]) == want["views"]
        assert got["views_semantics"] == want["views_semantics"]
        assert got["tag"] == want["tag"]  # the XSS tag's quotes and commas survive quoting
        assert (got["views_text"] or None) == want["views_text"]
        assert (int(got["discussions"]) if got["discussions"] else None) == want["discussions"]
        assert got["date"] == want["date"].isoformat()
    # stdout gets the same bytes as the file
    code, printed, _ = query(capsys, SQL, "--root", str(root), "--format", "csv")
    assert code == 0
    assert printed == out.read_text(encoding="utf-8")


def test_json_reads_back_to_the_same_values(root: Path, expected: list[dict[str, Any]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = query(capsys, SQL, "--root", str(root), "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert datetime.fromisoformat(got.pop("observed_at")) == want.pop("observed_at")
        assert got.pop("date") == want.pop("date").isoformat()
        assert got == want  # ints exact (no float rounding of 130,000,002), nulls, bools, text


def test_parquet_keeps_every_type(root: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "result.parquet"
    assert query(capsys, SQL, "--root", str(root), "--format", "parquet", "--output",
                 str(out))[0] == 0
    with open_archive(root) as archive:
        direct = archive.arrow(archive.sql(SQL))
    assert pq.read_table(out).equals(direct)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_table_is_for_reading(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = query(capsys, "select 1 as one; " + SQL, "--root", str(root))
    assert code == 0
    assert "150,000,000" in out
    assert "NULL" in out
    assert "1.2亿" in out
    assert "one" not in out.split("\n")[1]  # only the last statement's result is shown
    assert out.rstrip().endswith("9 rows")
    assert max(len(line) for line in out.splitlines()) > 120  # piped output is not wrapped


def test_statements_from_a_pipe_stop_at_the_first_error(root: Path) -> None:
    script = "select count(*) as n\nfrom snapshots;\nselect 2 as two;\nselec 3;\nselect 4;\n"
    result = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "query", "--root", str(root), "--format", "csv"],
        input=script, capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert result.returncode == 2
    assert result.stdout.split() == ["n", "9", "two", "2"]
    assert result.stderr.strip().splitlines() == [
        'tagarchive: error: Parser Error: syntax error at or near "selec"']


def test_errors_are_one_line_with_their_exit_code(root: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = query(capsys, "select nope from snapshots", "--root", str(root))
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "nope" in err
    code, _, err = query(capsys, "select 1", "--root", str(tmp_path / "nowhere"))
    assert code == 3
    missing = tmp_path / "nowhere"
    assert err.strip() == f"tagarchive: error: no archive at {missing}: not a directory"
    code, _, err = query(capsys, "  ", "--root", str(root))
    assert code == 2
    assert err.strip() == "tagarchive: error: empty SQL"


def test_unwritable_output_is_an_environment_error(root: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "out.csv"
    code, _, err = query(capsys, "select 1", "--root", str(root), "--format", "csv", "--output",
                         str(target))
    assert code == 3
    assert err.startswith(f"tagarchive: error: cannot write {target}")


def test_interactive_session_survives_errors(root: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    typed = iter(["select count(*)\n", "  from snapshots;\n", "selec 1;\n", ".tables\n",
                  ".schema runs\n", ".bogus\n", "select 'after' as x;\n", ".quit\n",
                  "select 'never';\n"])
    prompts: list[str] = []

    def read_line(prompt: str) -> str | None:
        prompts.append(prompt)
        return next(typed, None)

    shown: list[list[dict[str, Any]]] = []
    with open_archive(root) as archive:
        code = repl(archive, read_line, lambda table: shown.append(table.to_pylist()),
                    interactive=True)
    out, err = capsys.readouterr()
    assert code == 0
    assert prompts[:3] == ["tagarchive> ", "       ...> ", "tagarchive> "]
    assert shown[0] == [{"count_star()": 9}]
    assert {r["view"]: r["rows"] for r in shown[1]}["activity"] == 3
    assert "outcomes" in [r["column_name"] for r in shown[2]]
    assert shown[3] == [{"x": "after"}]
    assert len(shown) == 4
    assert "error: Parser Error" in err
    assert "unknown command '.bogus'" in err


def test_output_needs_sql_on_the_command_line(root: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = query(capsys, "--root", str(root), "--output", "x.csv")
    assert code == 2
    assert "--output needs the SQL" in err


def test_csv_of_nested_values(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = query(capsys, "select run_id, tags, outcomes[1].status as status from runs "
                         "order by started_at", "--root", str(root), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0
    assert [r["status"] for r in rows] == ["stored", "not_found"]
    assert rows[0]["tags"] == "[wall]"

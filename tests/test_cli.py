"""The command line: usage errors exit 2, environment errors 3, one line and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.cli.errors import UsageError
from crawler.cli.main import main, resolve_base_urls
from replica.server import ReplicaServer
from tests.crawl_helpers import ROOT, run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crawl", "myspace", "tag"], "unknown platform 'myspace'"),
        (["crawl", "tiktok", "x" * 300], "tag"),
        (["crawl", "tiktok", "id:../etc"], "id"),
        (["crawl", "tiktok", "tag", "--base-url", "ftp://example.com"], "not an http(s) URL"),
        (["crawl", "tiktok,xiaohongshu", "tag", "--base-url", "http://127.0.0.1:9"],
         "PLATFORM=URL"),
        (["crawl", "tiktok", "tag", "-s", "lowercase=1"], "NAME=VALUE"),
        (["crawl", "tiktok"], "required"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*args, "--out", str(tmp_path)] if len(args) > 2 else args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written for a refused invocation


def test_unwritable_output_root_exits_3(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("crawl", "tiktok", "tag", "--out", str(blocker / "data"), "--no-browser")
    assert result.code == 3
    assert result.stderr.startswith("tagarchive: error: cannot create output root")
    assert "Traceback" not in result.stderr
    assert blocker.read_text() == "not a directory"


def test_missing_browser_exits_3_with_install_hint(tmp_path: Path) -> None:
    result = run_cli("crawl", "xiaohongshu", "tag", "--out", str(tmp_path),
                     env={"TAGARCHIVE_CHROMIUM": str(tmp_path / "no-such-chrome")})
    assert result.code == 3
    assert "TAGARCHIVE_CHROMIUM" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_base_url_precedence() -> None:
    env = {"TAGARCHIVE_BASE_URL_TIKTOK": "http://env.test"}
    assert resolve_base_urls(["tiktok"], [], None, env) == {"tiktok": "http://env.test"}
    assert resolve_base_urls(["tiktok", "xiaohongshu"], [], "http://r.test/", env) == {
        "tiktok": "http://r.test/tiktok", "xiaohongshu": "http://r.test/xiaohongshu"}
    assert resolve_base_urls(["tiktok"], ["http://flag.test/"], "http://r.test", env) == {
        "tiktok": "http://flag.test"}
    assert resolve_base_urls(["tiktok", "xiaohongshu"], ["xhs=http://x.test"], None, {}) == {
        "xiaohongshu": "http://x.test"}
    with pytest.raises(UsageError):
        resolve_base_urls(["tiktok"], ["nosuch=http://x.test"], None, {})


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "exit codes" in capsys.readouterr().out


def test_platforms_lists_every_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platforms"]) == 0
    out = capsys.readouterr().out
    assert "tiktok" in out
    assert "xiaohongshu" in out


def test_scrapy_crawl_works_for_scrapy_users(replica: ReplicaServer, tmp_path: Path) -> None:
    """`scrapy crawl snapshot` (scrapy.cfg -> crawler.settings) stores the same datasets."""
    replica.world.set_variant("tiktok", "scrapyuser", "ssr")
    bases = json.dumps({"tiktok": replica.base_url("tiktok")})
    proc = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "snapshot", "-a", "platforms=tiktok",
         "-a", "tags=scrapyuser", "-s", f"TAGARCHIVE_OUT={tmp_path}",
         "-s", f"TAGARCHIVE_BASE_URLS={bases}", "-s", "DOWNLOAD_DELAY=0",
         "-s", "LOG_LEVEL=WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Deprecat" not in proc.stderr
    assert len(list(tmp_path.glob("snapshots/platform=tiktok/date=*/part-*.parquet"))) == 1
    assert len(list(tmp_path.glob("runs/date=*/part-*.parquet"))) == 1


def test_crawl_logs_one_json_line_per_run(replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "jsonlog", "ssr")
    result = run_cli("crawl", "tiktok", "jsonlog", "--out", str(tmp_path), "--replica",
                     replica.url, "--delay", "0", "--log-format", "json", "--log-level", "INFO")
    assert result.code == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines
    assert len(lines) == len(result.stderr.strip().splitlines())
    [run_line] = [e for e in lines if "run_id" in e]
    assert run_line["verdict"] == "ok"
    assert run_line["snapshots"] == 1
    assert run_line["level"] == "INFO"

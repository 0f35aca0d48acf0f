"""Credentials in URLs: a base URL carrying user:password@ is refused in one line (exit 2),
and no URL's userinfo is recorded or logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crawler.extensions.logs import install_url_redaction
from crawler.extensions.runrecord import RunState, TagJob, redact_urls
from crawler.logredact import redact_url_credentials
from crawler.text.tags import parse_tag_arg
from replica.server import ReplicaServer
from storage import open_dataset
from tests.crawl_helpers import run_cli

SECRET = "hunter2-s3cret"
AT = f"http://user:{SECRET}@127.0.0.1:9"


def files_holding(root: Path, needle: str) -> list[Path]:
    """Every file under root whose bytes hold `needle` (Parquet, WARC, state and logs alike)."""
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def assert_refused(result: object, what: str, root: Path) -> None:
    assert result.code == 2, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        f"tagarchive: error: {what} must not carry credentials (user:password@)"]
    assert SECRET not in result.stdout + result.stderr
    if root.exists():  # refused before the root was made, or made and holding no secret
        assert files_holding(root, SECRET) == []


@pytest.mark.parametrize(("args", "env", "what"), [
    (["--base-url", f"tiktok={AT}"], {}, "--base-url for tiktok"),
    (["--base-url", AT], {}, "--base-url for tiktok"),
    (["--replica", AT], {}, "--replica"),
    ([], {"TAGARCHIVE_BASE_URL_TIKTOK": AT}, "TAGARCHIVE_BASE_URL_TIKTOK"),
    ([], {"TAGARCHIVE_REPLICA": AT}, "TAGARCHIVE_REPLICA"),
])
def test_a_base_url_with_credentials_is_refused_in_one_line(
        args: list[str], env: dict[str, str], what: str, tmp_path: Path) -> None:
    root = tmp_path / "out"
    result = run_cli("crawl", "tiktok", "tag", "--out", str(root), "--no-browser", *args,
                     env=env)
    assert_refused(result, what, root)


def test_the_config_base_urls_with_credentials_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "tagarchive.toml"
    config.write_text(f'out = "data"\n[base_urls]\ntiktok = "{AT}"\n'
                      '[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "1h"\n')
    checked = run_cli("config", "check", "--config", str(config))
    assert checked.code == 2, checked.stderr
    assert "base_urls.tiktok" in checked.stderr
    assert "credentials" in checked.stderr
    assert len(checked.stderr.splitlines()) == 1
    assert SECRET not in checked.stderr
    fired = run_cli("schedule", "run-now", "w", "--config", str(config))
    assert fired.code == 2
    assert SECRET not in fired.stdout + fired.stderr
    assert files_holding(tmp_path, SECRET) == [config]  # no run record, no state file


def test_a_malformed_url_holding_an_at_sign_is_not_echoed(tmp_path: Path) -> None:
    # an unencoded "/" in the password ends the host early: the "@" lands in the path
    result = run_cli("crawl", "tiktok", "tag", "--out", str(tmp_path), "--no-browser",
                     "--base-url", f"tiktok=http://user:a/{SECRET}@127.0.0.1:9")
    assert result.code == 2
    assert result.stderr.splitlines() == [
        "tagarchive: error: --base-url for tiktok is not an http(s) URL"]


def test_url_credentials_are_redacted_wherever_recorded() -> None:
    assert redact_url_credentials(f"<GET {AT}/tag/x> and https://a:b@h.test/@me") == (
        "<GET http://[redacted]@127.0.0.1:9/tag/x> and https://[redacted]@h.test/@me")
    # an "@" in a path, query or e-mail address is not userinfo
    for text in ("https://mastodon.social/@user", "http://h.test/?by=a@b.test",
                 "write to a@b.test", ""):
        assert redact_url_credentials(text) == text
    assert redact_urls(["crawl", "-s", f"NOTE={AT}/x", "--redis",
                        "redis://:pw1234@h:6380/2?password=pw1234"]) == [
        "crawl", "-s", "NOTE=http://[redacted]@127.0.0.1:9/x", "--redis", "redis://h:6380/2"]

    run = RunState(out="unused", jobs=[TagJob("tiktok", parse_tag_arg("a"))],
                   argv=["crawl", "--base-url", f"tiktok={AT}"])
    run.set_outcome("tiktok", "a", "error", f"DNS lookup failed for {AT}/tag/a")
    record = run.record({}, run.started_at, "finished")
    assert SECRET not in repr(record)
    assert record["argv"] == ["crawl", "--base-url", "tiktok=http://[redacted]@127.0.0.1:9"]


def test_log_lines_and_tracebacks_lose_url_credentials() -> None:
    install_url_redaction()
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(logging.Formatter().format(record))

    log = logging.getLogger("tagarchive.test.credentials")
    handler = Keep()
    log.addHandler(handler)
    try:
        try:
            raise ValueError(f"cannot fetch {AT}/x")
        except ValueError:
            log.error("retrying <GET %s/x>", AT, exc_info=True)
    finally:
        log.removeHandler(handler)
    (line,) = seen
    assert SECRET not in line
    assert "retrying <GET http://[redacted]@127.0.0.1:9/x>" in line
    assert "ValueError: cannot fetch http://[redacted]@127.0.0.1:9/x" in line


def test_a_crawl_records_no_url_credentials(replica: ReplicaServer, tmp_path: Path) -> None:
    """Defence in depth: a URL with credentials the crawl does not refuse (here a -s value)
    reaches neither runs.argv nor any other file, Parquet and WARC included."""
    replica.world.set_variant("tiktok", "credtag", "ssr")
    result = run_cli("crawl", "tiktok", "credtag", "--out", str(tmp_path), "--replica",
                     replica.url, "--delay", "0", "-s", f"TAGARCHIVE_NOTE={AT}/note")
    assert result.code == 0, result.stderr[-2000:]
    assert SECRET not in result.stdout + result.stderr
    (record,) = open_dataset(tmp_path, "runs").to_table().to_pylist()
    assert "TAGARCHIVE_NOTE=http://[redacted]@127.0.0.1:9/note" in record["argv"]
    assert list(tmp_path.glob("archive/**/*.warc.gz"))  # the raw archive was written
    assert files_holding(tmp_path, SECRET) == []

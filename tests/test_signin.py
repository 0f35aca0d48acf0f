"""Sign-in the user supplies: parsed from cookies.txt or storage_state, sent, never written."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from crawler.downloader.signin import (
    SessionError,
    load_sessions,
    parse_cookies_txt,
    parse_storage_state,
)
from crawler.logredact import redact, register_secrets
from replica.server import ReplicaServer
from storage import duckdb_connect
from tests.crawl_helpers import crawl

SECRET_XHS = "web_session_3f8a9c1e77b2d4e6"
SECRET_TT = "msToken_Zq81Yv0pX2LmN4"


def cookies_txt() -> str:
    return (
        "# Netscape HTTP Cookie File\n"
        f"#HttpOnly_.xiaohongshu.com\tTRUE\t/\tTRUE\t0\tweb_session\t{SECRET_XHS}\n"
        ".xiaohongshu.com\tTRUE\t/\tFALSE\t1999999999\ta1\tabc123def456\n"
        f".tiktok.com\tTRUE\t/\tTRUE\t0\tmsToken\t{SECRET_TT}\n"
        ".example.org\tTRUE\t/\tFALSE\t0\tother\tnot-for-these-platforms\n"
    )


def test_cookies_txt_parsing() -> None:
    cookies = parse_cookies_txt(cookies_txt(), "c.txt")
    assert [c.name for c in cookies] == ["web_session", "a1", "msToken", "other"]
    assert cookies[0].http_only
    assert cookies[0].secure
    assert cookies[0].expires == -1
    assert cookies[1].expires == 1999999999


def test_bad_session_files_fail_without_echoing_values(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match=r"c.txt:1: not a cookies.txt line") as info:
        parse_cookies_txt("domain\tsecretvalue123\n", "c.txt")
    assert "secretvalue123" not in str(info.value)
    with pytest.raises(SessionError, match="cookies\\[0\\] needs"):
        parse_storage_state('{"cookies": [{"value": "secretvalue123"}]}', "s.json")
    with pytest.raises(SessionError, match="no such file|No such file"):
        load_sessions(["tiktok"], {"tiktok": str(tmp_path / "missing.txt")})
    with pytest.raises(SessionError, match="needs both"):
        load_sessions(["bluesky"], {}, env={"TAGARCHIVE_BLUESKY_HANDLE": "me.bsky.social"})


def test_storage_state_and_env_sessions(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"cookies": [
        {"name": "sessionid", "value": "ig-session-value-1", "domain": ".instagram.com",
         "path": "/", "httpOnly": True, "secure": True, "expires": -1}], "origins": []}))
    sessions = load_sessions(
        ["instagram", "bluesky"], {"instagram": str(state)},
        env={"TAGARCHIVE_BLUESKY_HANDLE": "me.bsky.social",
             "TAGARCHIVE_BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop"})
    assert sessions["instagram"].cookies_for(("www.instagram.com",))[0].name == "sessionid"
    assert sessions["instagram"].cookies_for(("www.tiktok.com",)) == []
    assert sessions["bluesky"].login == {"identifier": "me.bsky.social",
                                         "password": "abcd-efgh-ijkl-mnop"}
    assert "abcd-efgh-ijkl-mnop" in sessions["bluesky"].secrets()


def test_redaction_covers_log_records(caplog: pytest.LogCaptureFixture) -> None:
    register_secrets(["hunter2-longer-secret"])
    assert redact("token=hunter2-longer-secret;") == "token=[redacted];"
    with caplog.at_level(logging.INFO):
        logging.getLogger("tagarchive.test").info("sent %s", "hunter2-longer-secret")
    assert "hunter2-longer-secret" not in caplog.text
    assert "[redacted]" in caplog.text


def test_sessions_are_sent_but_never_written(replica: ReplicaServer, tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    jar.write_text(cookies_txt())
    replica.world.set_variant("tiktok", "signedin", "ssr")
    replica.cookies_seen.clear()
    out = tmp_path / "out"
    result = crawl(replica, out, "tiktok,xiaohongshu", "signedin", "nosuchtag",
                   extra=("--session", f"tiktok={jar}", "--session", f"xhs={jar}",
                          "--log-level", "DEBUG"))
    assert result.code == 1  # nosuchtag fails, by name
    # the sessions reached the platforms: over plain HTTP and inside the browser context
    assert any(SECRET_TT in c for c in replica.cookies_seen)
    assert any(SECRET_XHS in c for c in replica.cookies_seen)
    assert not any("not-for-these-platforms" in c for c in replica.cookies_seen)
    # ... and appear nowhere we write: logs, messages, Parquet (decoded: pages are compressed)
    con = duckdb_connect(out)
    cells = " ".join(str(row) for ds in ("snapshots", "posts", "rejects", "runs", "activity")
                     for row in con.execute(f"select * from {ds}").fetchall())
    assert "signedin" in cells  # the check reads real rows
    # the raw archive, decompressed: every record's headers and payload
    from warcio.archiveiterator import ArchiveIterator

    archived = []
    for warc in out.glob("archive/**/*.warc.gz"):
        with open(warc, "rb") as handle:
            for record in ArchiveIterator(handle):
                archived.append(record.rec_headers.to_str())
                if record.http_headers is not None:
                    archived.append(record.http_headers.to_str())
                archived.append(record.content_stream().read().decode("utf-8", "replace"))
    archived_text = "\n".join(archived)
    assert "signedin" in archived_text
    for secret in (SECRET_TT, SECRET_XHS, "abc123def456"):
        assert secret not in archived_text
        assert secret not in result.stdout
        assert secret not in result.stderr
        assert secret not in cells
        for path in out.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_login_variables_are_read_from_the_adapter() -> None:
    from crawler.downloader.signin import login_variables
    from crawler.platforms import REGISTRY

    assert login_variables("bluesky") == REGISTRY["bluesky"].login_variables
    assert login_variables("bluesky") == ("TAGARCHIVE_BLUESKY_HANDLE",
                                          "TAGARCHIVE_BLUESKY_APP_PASSWORD")
    assert login_variables("tiktok") is None
    assert login_variables("no-such-platform") is None
    signed = {name: login_variables(name) for name in REGISTRY if login_variables(name)}
    assert {"bluesky": login_variables("bluesky")} == signed


def test_a_number_over_the_int_digit_limit_is_a_usage_error_naming_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crawler.cli.main import main

    state = tmp_path / "state.json"
    digits = "1" * 5000  # over Python's 4,300-digit limit for int() of a string
    state.write_text('{"cookies": [{"name": "sessionid", "value": "v", '
                     f'"domain": ".tiktok.com", "expires": {digits}}}], "origins": []}}')
    with pytest.raises(SessionError, match="state.json: a number in it has too many digits"):
        parse_storage_state(state.read_text(), str(state))
    code = main(["crawl", "tiktok", "cats", "--out", str(tmp_path / "out"), "--no-browser",
                 "--session", f"tiktok={state}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [
        line for line in err.splitlines() if str(state) in line]

"""`[[alert]]` tables as the config loader checks them, and `tagarchive alerts test|check|list`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.cli.main import main
from crawler.services.alerts.model import GROWTH, LOGIN_LOST, SURGE, THRESHOLD, UNHEALTHY
from crawler.services.watchconfig import load_config
from storage import open_dataset
from tests.test_alerts import WATCH, Receiver, closed_port

GOOD = '''
[[alert]]
name = "past-100m"
when = "views >= 100_000_000"
platforms = ["xiaohongshu"]
tags = ["TikTok难民"]
targets = ["json://127.0.0.1:9/hook"]

[[alert]]
name = "fast"
when = "Posts  +50%  in 3d"
lookback = "1d"
targets = ["mailto://me:${MAIL_PASSWORD}@example.com", "${SLACK_URL}"]

[[alert]]
name = "drop"
when = "views -30% in 24h"
targets = ["json://127.0.0.1:9/hook"]

[[alert]]
name = "surging"
when = "views surge"
score = 5
history = 24
targets = ["ntfy://ntfy.sh/${TOPIC}"]

[[alert]]
name = "sick"
when = "unhealthy"
watches = ["refugees"]
targets = ["json://127.0.0.1:9/hook"]

[[alert]]
name = "signin"
when = "login lost"
platforms = ["xiaohongshu"]
enabled = false
targets = ["json://127.0.0.1:9/hook"]
'''


def test_each_kind_of_alert_is_read_with_its_numbers(tmp_path: Path) -> None:
    path = tmp_path / "tagarchive.toml"
    path.write_text(WATCH + GOOD, encoding="utf-8")
    rules = {r.name: r for r in load_config(path).alerts}
    past = rules["past-100m"]
    assert (past.kind, past.counter, past.op, past.threshold) == (
        THRESHOLD, "views", ">=", 100_000_000)
    assert (past.platforms, past.tags) == (("xiaohongshu",), ("tiktok难民",))
    fast = rules["fast"]
    assert (fast.kind, fast.counter, fast.threshold, fast.window) == (GROWTH, "posts", 0.5,
                                                                       3 * 86400)
    assert fast.lookback_days == 4  # a lookback shorter than the window is lengthened past it
    assert fast.targets == ("mailto://me:${MAIL_PASSWORD}@example.com", "${SLACK_URL}")
    assert rules["drop"].threshold == pytest.approx(-0.3)
    assert (rules["surging"].kind, rules["surging"].threshold, rules["surging"].history) == (
        SURGE, 5.0, 24)
    assert (rules["sick"].kind, rules["sick"].watches) == (UNHEALTHY, ("refugees",))
    assert (rules["signin"].kind, rules["signin"].enabled) == (LOGIN_LOST, False)
    assert not rules["signin"].follows("refugees")


BAD = [
    ('when = "views >== 5"', "alert[0].when", "'views >== 5' is not a condition"),
    ('when = "likes >= 5"', "alert[0].when", "is not a condition"),
    ('when = "views +0% in 1d"', "alert[0].when", "a growth of 0% is no change"),
    ('when = "views -150% in 1d"', "alert[0].when", "cannot fall by more than 100%"),
    ('when = "views +50% in 10s"', "alert[0].when", "must be from 1m"),
    ('when = "views >= 5"\nscore = 4', "alert[0].score", "only a surge alert"),
    ('when = "views surge"\nhistory = 2', "alert[0].history", "from 5 to 1000"),
    ('when = "views >= 5"\nwatches = ["nope"]', "alert[0].watches[0]", "no watch named 'nope'"),
    ('when = "views >= 5"\nplatforms = ["weibo"]', "alert[0].platforms[0]",
     "'weibo' is in none of the watches"),
    ('when = "views >= 5"\ntags = ["other"]', "alert[0].tags[0]", "in none of the watches"),
    ('when = "unhealthy"\nplatforms = ["tiktok"]', "alert[0].platforms", "a whole watch"),
    ('when = "views >= 5"\ntarget = ["json://h/x"]', "alert[0].target",
     "unknown key (did you mean 'targets'?)"),
]
BAD_TARGETS = [
    ('["mailto://me:hunter2222@example.com"]', "alert[0].targets[0]", "carries a password"),
    ('["ntfy://ntfy.sh/topic?token=tk_abcdef0123"]', "alert[0].targets[0]",
     "its token= looks like a secret"),
    ('["slack"]', "alert[0].targets[0]", "is not an Apprise URL"),
    ('["json://h/${BROKEN"]', "alert[0].targets[0]", "without a closing"),
    ("[]", "alert[0].targets", "expected a non-empty list of strings"),
]


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "tagarchive.toml"
    path.write_text(WATCH + text, encoding="utf-8")
    capsys.readouterr()
    code = main(["config", "check", "--config", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("body", "key", "problem"), BAD)
def test_a_bad_alert_is_one_line_naming_the_key_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, key: str,
        problem: str) -> None:
    text = f'[[alert]]\nname = "a"\ntargets = ["json://127.0.0.1:9/x"]\n{body}\n'
    code, err = _check(tmp_path, text, capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"tagarchive: error: {tmp_path / 'tagarchive.toml'}: {key}: ")
    assert problem in err


@pytest.mark.parametrize(("targets", "key", "problem"), BAD_TARGETS)
def test_a_bad_target_is_refused_without_echoing_a_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], targets: str, key: str,
        problem: str) -> None:
    text = f'[[alert]]\nname = "a"\nwhen = "unhealthy"\ntargets = {targets}\n'
    code, err = _check(tmp_path, text, capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert f": {key}: " in err
    assert problem in err
    assert "hunter2222" not in err
    assert "tk_abcdef0123" not in err


def test_names_are_unique_and_alert_is_an_array_of_tables(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = '[[alert]]\nname = "a"\nwhen = "unhealthy"\ntargets = ["json://h.example/x"]\n'
    code, err = _check(tmp_path, one + one, capsys)
    assert (code, err.count("\n")) == (2, 1)
    assert "alert[1].name: 'a' is already the name of an alert" in err
    code, err = _check(tmp_path, '[alert]\nname = "a"\n', capsys)
    assert (code, err.count("\n")) == (2, 1)
    assert "alert: expected [[alert]] tables" in err


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _config(tmp_path: Path, targets: list[str]) -> Path:
    path = tmp_path / "tagarchive.toml"
    path.write_text(WATCH + f'''
[[alert]]
name = "past"
when = "views >= 100"
targets = {json.dumps(targets)}
''', encoding="utf-8")
    return path


def test_alerts_test_sends_to_each_target_and_exits_1_when_one_fails(
        tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    dead = closed_port()
    path = _config(tmp_path, [receiver.url(), f"json://127.0.0.1:{dead}/x"])
    assert main(["alerts", "test", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert [body["type"] for _path, body in receiver.posts] == ["info"]
    assert "test message" in receiver.posts[0][1]["title"]
    assert f"sent   past  {receiver.target}" in out
    assert f"failed past  json://127.0.0.1:{dead}: " in err
    assert "Connection refused" in err
    rows = open_dataset(tmp_path / "data", "alerts").to_table().to_pylist()
    assert [(r["alert"], r["state"], [d["ok"] for d in r["deliveries"]]) for r in rows] == [
        ("past", "test", [True, False])]

    assert main(["alerts", "list", "--root", str(tmp_path / "data")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1
    assert "test" in listed[0]
    assert "1/2 took it" in listed[0]
    assert main(["alerts", "list", "--config", str(path), "--json"]) == 0
    assert [r["state"] for r in json.loads(capsys.readouterr().out)] == ["test"]


def test_alerts_test_exits_0_when_every_target_took_it(
        tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, [receiver.url("a"), receiver.url("b")])
    assert main(["alerts", "test", "--config", str(path), "--no-record"]) == 0
    assert sorted(p for p, _ in receiver.posts) == ["/a", "/b"]
    assert not (tmp_path / "data" / "alerts").exists()
    assert main(["alerts", "test", "--config", str(path), "--alert", "nope"]) == 2
    assert "no alert named 'nope'" in capsys.readouterr().err


def test_alerts_check_sends_nothing_and_names_what_is_missing(
        tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSET_HOOK", raising=False)
    path = _config(tmp_path, [receiver.url(), "${UNSET_HOOK}", "slak://token/x"])
    assert main(["alerts", "check", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert receiver.posts == []
    assert f"ok     past  {receiver.target}" in out
    assert "failed past  ${UNSET_HOOK}: ${UNSET_HOOK} is not set in the environment" in err
    assert "failed past  slak://…: Apprise does not understand this URL" in err


def test_alerts_commands_without_alerts_are_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tagarchive.toml"
    path.write_text(WATCH, encoding="utf-8")
    assert main(["alerts", "test", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no alert defined" in err

"""The scheduler's TOML config: what it accepts, and one-line errors naming file, key, problem."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crawler.cli.main import main
from crawler.services.watchconfig import find_config, load_config
from crawler.services.watchvalues import ConfigError, cron_trigger, cron_weekdays, parse_duration

EXAMPLE = Path(__file__).resolve().parent.parent / "tagarchive.example.toml"
WATCH = '[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "1h"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tagarchive.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'tagarchive.toml'}: ")
    assert "\n" not in message
    return message.split(": ", 1)[1]


def test_the_example_config_loads_with_every_section() -> None:
    config = load_config(EXAMPLE)
    assert config.out == EXAMPLE.parent / "data"
    refugees = config.watches["refugees"]
    assert refugees.platforms == ("tiktok", "xiaohongshu")
    assert refugees.tag_keys == ["tiktokrefugee", "tiktok难民"]
    assert refugees.cadence.every == 3600
    assert refugees.cadence.jitter == 120
    assert config.watches["sundays"].cadence.cron == "30 6 * * 0"
    assert config.service.misfire_grace == 600


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'out = "archive"\nstate_dir = "~/st"\n' + WATCH)
    monkeypatch.chdir("/")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(path)
    assert config.out == tmp_path / "archive"
    assert config.state_dir == tmp_path / "home" / "st"
    assert config.watches["w"].timeout == 1800  # the default time limit


@pytest.mark.parametrize(("text", "expected"), [
    ("out = \n", "not valid TOML: Invalid value (at line 1, column 7)"),
    ('outt = "x"\n' + WATCH, "outt: unknown key (did you mean 'out'?)"),
    ('[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\nevry = "1h"\n',
     "watches.w.evry: unknown key (did you mean 'every'?)"),
    ('[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "90x"\n',
     "watches.w.every: '90x' is not a duration (examples: 30s, 15m, 1h, 1h30m, 1d)"),
    ('[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\n',
     'watches.w: give exactly one of every (e.g. "1h") or cron (e.g. "0 * * * *")'),
    ('[watches.w]\nplatforms = ["myspace"]\ntags = ["a"]\nevery = "1h"\n',
     "watches.w.platforms[0]: unknown platform 'myspace'"),
    ('[watches.w]\nplatforms = ["tiktok"]\ntags = ["ok", ""]\nevery = "1h"\n',
     "watches.w.tags[1]: invalid tag ''"),
    ('[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\ncron = "0 0 * * 8"\n',
     "watches.w.cron: '8' is not a weekday (0-7, 0 and 7 = Sunday, or sun..sat)"),
    ('[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\ncron = "0 0 * *"\n',
     "watches.w.cron: '0 0 * *' needs 5 fields"),
    ('[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\ncron = "0 0 L * *"\n',
     "watches.w.cron: day-of-month field 'L' is not cron syntax"),
    ('[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "1m"\njitter = "2m"\n',
     "watches.w.jitter: must be shorter than the interval"),
    ('[watches."bad name"]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "1h"\n',
     "watches.bad name: a watch name is 1-64 of"),
    ('timezone = "Mars/Olympus"\n' + WATCH, "timezone: unknown time zone 'Mars/Olympus'"),
    ("[health]\nmax_drop = 2\n" + WATCH, "health.max_drop: 2 must be at least 0 and at most 1"),
    ("[health]\nstale_intervals = true\n" + WATCH,
     "health.stale_intervals: expected an integer, got a boolean (true)"),
    ("[politeness.settings]\nMY_API_TOKEN = 'x'\n" + WATCH,
     "politeness.settings.MY_API_TOKEN: looks like a secret"),
    ("[politeness.settings]\nCLOSESPIDER_TIMEOUT = 5\n" + WATCH,
     "politeness.settings.CLOSESPIDER_TIMEOUT: is set by the scheduler itself"),
    ('[signin.tiktok]\ncookie = "abc"\n' + WATCH, "signin.tiktok.cookie: unknown key"),
    ('[signin]\ntiktok = "missing.txt"\n' + WATCH, "signin.tiktok.session_file: "),
    ('replica = "ftp://x"\n' + WATCH, "replica: 'ftp://x' is not an http(s) URL"),
    ("[service]\ncrawl_command = []\n" + WATCH, "service.crawl_command: expected a non-empty"),
])
def test_errors_name_the_key_and_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text).startswith(expected)


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5m") == 90
    assert parse_duration(2) == 2
    for bad in ("", "1x", "h", True, -1, "1h 2", [1]):
        with pytest.raises(ValueError):
            parse_duration(bad)


MONDAY = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("expr", "expected"), [
    ("0 0 * * 0", datetime(2026, 11, 29, tzinfo=UTC)),  # 0 is Sunday in cron
    ("0 0 * * 7", datetime(2026, 11, 29, tzinfo=UTC)),  # and so is 7
    ("0 0 * * 1", datetime(2026, 11, 30, tzinfo=UTC)),  # 1 is Monday (next week: 12:00 passed)
    ("0 0 * * 6", datetime(2026, 11, 28, tzinfo=UTC)),
    ("0 0 * * 5-7", datetime(2026, 11, 27, tzinfo=UTC)),  # Friday to Sunday
    ("0 0 * * sun", datetime(2026, 11, 29, tzinfo=UTC)),
    ("@weekly", datetime(2026, 11, 29, tzinfo=UTC)),
    ("0 0 25 * 0", datetime(2026, 11, 25, tzinfo=UTC)),  # both restricted: day 25 OR Sunday
    ("30 6 1 * *", datetime(2026, 12, 1, 6, 30, tzinfo=UTC)),
])
def test_cron_weekdays_mean_what_they_mean_in_cron(expr: str, expected: datetime) -> None:
    trigger = cron_trigger(expr, ZoneInfo("UTC"))
    assert trigger.get_next_fire_time(None, MONDAY) == expected


def test_apscheduler_from_crontab_gets_sunday_wrong_which_is_why_it_is_not_used() -> None:
    from apscheduler.triggers.cron import CronTrigger

    wrong = CronTrigger.from_crontab("0 0 * * 0", timezone=ZoneInfo("UTC"))
    assert wrong.get_next_fire_time(None, MONDAY).weekday() == 0  # a Monday


def test_weekday_field_translation() -> None:
    assert cron_weekdays("*") == "*"
    assert cron_weekdays("0,7") == "sun"
    assert cron_weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert cron_weekdays("*/2") == "sun,tue,thu,sat"
    assert cron_weekdays("SAT,sun") == "sun,sat"
    for bad in ("6-1", "x", "1/0"):
        with pytest.raises(ValueError):
            cron_weekdays(bad)


def test_cron_in_a_time_zone(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\n'
                                         'cron = "0 9 * * *"\ntimezone = "Asia/Shanghai"\n'))
    trigger = config.watches["w"].cadence.trigger()
    assert trigger.get_next_fire_time(None, MONDAY) == datetime(2026, 11, 24, 1, tzinfo=UTC)
    assert config.watches["w"].cadence.interval(MONDAY) == 86400


def test_signin_references_reach_the_crawl_environment_only(tmp_path: Path) -> None:
    session = tmp_path / "xhs-state.json"
    session.write_text("{}")
    config = load_config(write(tmp_path, f'''
[signin]
xhs = "{session.name}"
[watches.w]
platforms = ["tiktok", "xhs"]
tags = ["a"]
every = "1h"
'''))
    watch = config.watches["w"]
    env = config.signin.environment(watch.platforms, {})
    assert env == {"TAGARCHIVE_SESSION_XIAOHONGSHU": str(session)}
    assert str(session) not in " ".join(config.crawl_args(watch))


def test_politeness_and_health_overrides_reach_the_crawl_arguments(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '''
[politeness]
delay = 2.5
concurrency = 1
[politeness.settings]
AUTOTHROTTLE_MAX_DELAY = 30
[health]
max_drop = 0.3
[watches.w]
platforms = ["tiktok"]
tags = ["-dash", "b"]
every = "1h"
timeout = "10m"
politeness = { browser = false }
health = { stale_intervals = 5 }
'''))
    args = config.crawl_args(config.watches["w"], {"TAGARCHIVE_TRIGGER": "schedule"})
    joined = " ".join(args)
    assert "--delay 2.5 --concurrency 1 --no-browser -s AUTOTHROTTLE_MAX_DELAY=30" in joined
    assert "-s TAGARCHIVE_HEALTH_MAX_DROP=0.3" in joined
    assert "-s TAGARCHIVE_HEALTH_STALE_INTERVALS=5" in joined
    assert "-s CLOSESPIDER_TIMEOUT=540" in joined  # the crawl stops itself a minute early
    assert args[-4:] == ["--", "tiktok", "-dash", "b"]  # a tag may start with '-'


def test_config_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    good = write(tmp_path, WATCH)
    assert main(["config", "check", "--config", str(good)]) == 0
    assert "ok: 1 watch(es) (w), 1 (platform, tag) pair(s)" in capsys.readouterr().out
    monkeypatch.setenv("TAGARCHIVE_CONFIG", str(good))
    assert main(["config", "check"]) == 0
    capsys.readouterr()
    good.write_text(WATCH.replace("every", "evry"))
    assert main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert err == f"tagarchive: error: {good}: watches.w.evry: unknown key " \
                  "(did you mean 'every'?)\n"


def test_no_config_anywhere_is_a_usage_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAGARCHIVE_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="pass --config FILE or set TAGARCHIVE_CONFIG"):
        find_config(None)
    assert main(["config", "check"]) == 2


def test_privacy_mode_reaches_every_crawl_and_a_typo_is_named(tmp_path: Path) -> None:
    from crawler.services.watchconfig import ConfigError, load_config

    base = 'out = "data"\n[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "1h"\n'
    path = tmp_path / "tagarchive.toml"
    path.write_text('privacy = "redact"\n' + base)
    config = load_config(path)
    args = config.crawl_args(config.watch("w"))
    assert args[args.index("--privacy") + 1] == "redact"
    path.write_text(base)
    default = load_config(path)
    args = default.crawl_args(default.watch("w"))
    assert args[args.index("--privacy") + 1] == "pseudonymize"
    path.write_text('privacy = "pseudonymise"\n' + base)
    with pytest.raises(ConfigError, match="privacy: expected one of pseudonymize, redact, keep"):
        load_config(path)

"""Durations have an upper bound, checked when the config loads (issue 17, item 8).

`every = "4000000d"` used to pass `config check`, then `status` and the scheduler overflowed
(`now + every` is past year 9999). Now every duration key stops at a year (`MAX_DURATION`),
`politeness.delay` at a day and `health.lookback_days` at a century, each refused in one line
naming the key, exit 2, before `status` or the scheduler see it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler.cli.main import main
from crawler.services.watchconfig import MAX_DURATION, MAX_LOOKBACK_DAYS, load_config
from crawler.services.watchvalues import ConfigError, format_duration, parse_duration
from tests.crawl_helpers import run_cli

TAGS = 'platforms = ["tiktok"]\ntags = ["a"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tagarchive.toml"
    path.write_text('out = "data"\nstate_dir = "state"\n' + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "key"), [
    pytest.param(f'[watches.w]\n{TAGS}every = "4000000d"\n', "watches.w.every", id="every"),
    pytest.param(f'[watches.w]\n{TAGS}every = "367d"\n', "watches.w.every", id="every-367d"),
    pytest.param(f'[watches.w]\n{TAGS}every = 40000000\n', "watches.w.every",
                 id="every-seconds"),
    pytest.param(f'[watches.w]\n{TAGS}every = {10**400}\n', "watches.w.every",
                 id="every-past-float"),
    pytest.param(f'[watches.w]\n{TAGS}every = "1h"\ntimeout = "400d"\n', "watches.w.timeout",
                 id="timeout"),
    pytest.param(f'[watches.w]\n{TAGS}cron = "0 * * * *"\njitter = "53w"\n',
                 "watches.w.jitter", id="cron-jitter"),
    pytest.param(f'[service]\nmisfire_grace = "1000d"\n[watches.w]\n{TAGS}every = "1h"\n',
                 "service.misfire_grace", id="misfire_grace"),
    pytest.param(f'[service]\nstop_grace = "4000000d"\n[watches.w]\n{TAGS}every = "1h"\n',
                 "service.stop_grace", id="stop_grace"),
    pytest.param(f'[service]\nkill_grace = 1e12\n[watches.w]\n{TAGS}every = "1h"\n',
                 "service.kill_grace", id="kill_grace"),
    pytest.param(f'[politeness]\ndelay = 1e12\n[watches.w]\n{TAGS}every = "1h"\n',
                 "politeness.delay", id="delay"),
    pytest.param(f'[watches.w]\n{TAGS}every = "1h"\n[watches.w.health]\nlookback_days = 4000000\n',
                 "watches.w.health.lookback_days", id="watch-lookback_days"),
    pytest.param(f'[health]\nlookback_days = 4000000\n[watches.w]\n{TAGS}every = "1h"\n',
                 "health.lookback_days", id="lookback_days"),
])
def test_a_duration_past_its_bound_is_one_line_naming_the_key(tmp_path: Path, text: str,
                                                              key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: ")


def test_the_bounds_themselves_are_accepted_and_status_copes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    year = format_duration(MAX_DURATION)
    assert year == "366d"
    assert parse_duration(year) == MAX_DURATION
    # the longest interval, and a cron whose gaps are years (29 February) with the most stale
    # intervals: the lookback the stale check would ask for is capped, not overflowed
    path = write(tmp_path, f'[health]\nstale_intervals = 1000\n'
                           f'[service]\nmisfire_grace = "{year}"\nstop_grace = "{year}"\n'
                           f'kill_grace = "{year}"\n'
                           f'[watches.yearly]\n{TAGS}every = "{year}"\njitter = "365d"\n'
                           f'timeout = "{year}"\n'
                           f'[watches.leap]\n{TAGS}cron = "0 0 29 2 *"\njitter = "{year}"\n')
    config = load_config(path)
    assert config.watches["yearly"].cadence.every == MAX_DURATION
    assert config.watches["leap"].health.lookback_days == MAX_LOOKBACK_DAYS
    assert main(["status", "--json", "--config", str(path)]) == 0
    view = json.loads(capsys.readouterr().out)
    assert [w["name"] for w in view["watches"]] == ["yearly", "leap"]


def test_config_check_status_and_the_scheduler_refuse_it_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, f'[watches.w]\n{TAGS}every = "4000000d"\n')
    expected = (f"tagarchive: error: {path}: watches.w.every: '4000000d' is longer than "
                "366d, the longest allowed")
    for command in (["config", "check"], ["status"], ["status", "--json"], ["schedule", "list"]):
        assert main([*command, "--config", str(path)]) == 2, command
        captured = capsys.readouterr()
        assert captured.err.strip() == expected, command
        assert captured.out == ""
    # the service itself, as a process (in-process it would block if it started)
    result = run_cli("schedule", "run", "--config", str(path), timeout=60)
    assert result.code == 2
    assert result.stderr.strip() == expected
    assert not (tmp_path / "state").exists()  # no job store: the scheduler never saw it

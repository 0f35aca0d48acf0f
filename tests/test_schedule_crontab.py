"""`tagarchive crontab`: lines cron runs exactly as the service would, or a clear note why not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from crawler.cli.main import main
from crawler.services.crontab import crontab_lines, every_as_cron
from crawler.services.watchconfig import load_config


@pytest.mark.parametrize(("every", "cron"), [
    (60, "* * * * *"), (900, "*/15 * * * *"), (3600, "0 * * * *"), (6 * 3600, "0 */6 * * *"),
    (86400, "0 0 * * *"), (7 * 86400, "0 0 * * 0"), (45 * 60, None), (90, None),
    (5 * 3600, None), (2, None),
])
def test_intervals_cron_can_say(every: float, cron: str | None) -> None:
    assert every_as_cron(every) == cron


def test_crontab_lines_run_the_same_crawl(tmp_path: Path) -> None:
    session = tmp_path / "xhs state.json"
    session.write_text("{}")
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'''
out = "data"
[signin]
xhs = "{session.name}"
[service]
crawl_command = ["printf", "%s\\n"]
kill_grace = "5s"
[watches.hourly]
platforms = ["tiktok", "xhs"]
tags = ["100%real", "it's"]
every = "1h"
jitter = "30s"
timeout = "15m"
[watches.paris]
platforms = ["tiktok"]
tags = ["b"]
cron = "0 9 * * 1-5"
timezone = "Europe/Paris"
[watches.odd]
platforms = ["tiktok"]
tags = ["c"]
every = "45m"
[watches.off]
platforms = ["tiktok"]
tags = ["d"]
every = "1d"
enabled = false
''')
    config = load_config(path)
    lines, warnings = crontab_lines(config)
    assert warnings == ["watch odd: every 45m has no crontab equivalent (cron fires on clock "
                        "minutes); give it a cron expression"]
    hourly = next(line for line in lines if "TAGARCHIVE_WATCH=hourly" in line)
    assert hourly.startswith("0 * * * * sleep $(( $(od -An -N2 -tu2 /dev/urandom) \\% 31 )) && ")
    assert "100%" not in hourly  # an unescaped % would end the command in a crontab
    assert next(line for line in lines if line.startswith("# (disabled) 0 0 * * * "))
    assert lines.index("CRON_TZ=Europe/Paris") < lines.index(
        next(line for line in lines if line.startswith("0 9 * * 1-5 ")))
    assert lines.index("CRON_TZ=Europe/Paris") > lines.index(hourly)  # local ones come first

    # what cron would run: \% unescaped, then sh; printf stands in for the crawl
    command = hourly.split(" && ", 1)[1].replace("\\%", "%")
    assert command.startswith("TAGARCHIVE_SESSION_XIAOHONGSHU=")
    assert " timeout -k 5s 900s printf " in command
    probe = command.replace("timeout -k 5s 900s ", "env | grep TAGARCHIVE_SESSION; ", 1)
    shown = subprocess.run(["sh", "-c", probe], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert shown[0] == f"TAGARCHIVE_SESSION_XIAOHONGSHU={session}"
    expected = config.crawl_args(config.watches["hourly"], {"TAGARCHIVE_TRIGGER": "cron"})
    assert shown[1:] == expected  # every argument arrives intact


def test_crontab_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tagarchive.toml"
    path.write_text('[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "2s"\n')
    assert main(["crontab", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "# watch w: every 2s has no crontab equivalent" in captured.out
    assert captured.err.startswith("tagarchive: warning: watch w: every 2s")

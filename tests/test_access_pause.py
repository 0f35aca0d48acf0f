"""A lost login under the real scheduler: the platform is paused (a state file, the runs rows,
`status`), only it; its watches go on with their other platforms; a renewed session file, or
`schedule resume`, ends the pause."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from crawler.cli.main import main
from crawler.services.pauses import active, begin, pause_path
from crawler.services.watchconfig import load_config
from replica.server import ReplicaServer
from tests.access_helpers import (
    bilibili_session,
    mixed_watch_config,
    runs,
    schedule_until_tiktok_alone,
)

LOST, RENEWED = "bili-session-the-platform-forgot-1", "bili-session-signed-in-again-2"


def test_a_lost_login_pauses_only_that_platform_until_the_session_is_renewed(
        replica: ReplicaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replica.world.set_variant("tiktok", "pausetag", "ssr")  # served without the browser
    session = tmp_path / "bilibili.json"
    bilibili_session(session, LOST)
    path = mixed_watch_config(tmp_path, replica.url, ["pausetag"], concurrency=4)
    config = load_config(path)
    out = Path(config.out)
    replica.accounts.revoke("bilibili", LOST)  # the platform signed this session out
    replica.reset_hits()
    code, err = schedule_until_tiktok_alone(path, out)
    assert code == 0, err[-3000:]
    rows = [r for r in runs(out) if r["verdict"] != "skipped"]
    first = rows[0]
    assert first["platforms"] == ["bilibili", "tiktok"]
    got = {(o["platform"], o["status"]) for o in first["outcomes"]}
    assert got == {("bilibili", "login_wall"), ("tiktok", "stored")}
    later = rows[1:]
    assert later
    assert all(r["platforms"] == ["tiktok"] for r in later)  # only bilibili is left out
    assert all("bilibili paused since" in (r["reason"] or "") for r in later)
    # paused: the state file, owner-only; one probe, and nothing at all sent to it since
    pause = active(config)["bilibili"]
    assert pause.run_id == first["run_id"]
    assert stat.S_IMODE(pause_path(config, "bilibili").stat().st_mode) == 0o600
    assert {k for (p, k) in replica.hits_snapshot() if p == "bilibili"} == {"whoami"}
    assert replica.hits_snapshot()[("bilibili", "whoami")] == 1
    assert '"paused": "bilibili"' in err  # the service said so in its log

    assert main(["status", "--json", "--config", str(path)]) == 0
    [watch] = json.loads(capsys.readouterr().out)["watches"]
    assert [p["platform"] for p in watch["paused"]] == ["bilibili"]
    assert watch["paused"][0]["kind"] == "login_lost"
    assert main(["status", "--config", str(path)]) == 0
    assert "bilibili paused since" in capsys.readouterr().out.replace("\n", " ")

    # renewed: a session file newer than the pause; the next fire crawls bilibili again
    bilibili_session(session, RENEWED)
    assert main(["schedule", "run-now", "mixed", "--config", str(path)]) == 0
    assert "bilibili" not in active(config)
    last = runs(out)[-1]
    assert last["platforms"] == ["bilibili", "tiktok"]
    assert {o["status"] for o in last["outcomes"]} == {"stored"}
    assert replica.hits_snapshot()[("bilibili", "whoami")] == 2
    replica.accounts.clear()


def test_resume_ends_a_pause_by_hand(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tagarchive.toml"
    path.write_text('[watches.w]\nplatforms = ["weibo"]\ntags = ["x"]\nevery = "1h"\n')
    config = load_config(path)
    begin(config, "weibo", "1 of 1 tag(s) met a login wall in run r1", "r1", "w")
    assert main(["schedule", "resume", "WEIBO", "--config", str(path)]) == 0  # any case
    assert "weibo: resumed" in capsys.readouterr().out
    assert not os.path.exists(pause_path(config, "weibo"))
    assert main(["schedule", "resume", "weibo", "--config", str(path)]) == 0
    assert "weibo: not paused" in capsys.readouterr().out
    assert main(["schedule", "resume", "nosuch", "--config", str(path)]) == 2

"""The config as data, built without a file: cadences and sign-in references on their own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crawler.services.watchmodel import Cadence, SignIn
from crawler.services.watchvalues import ConfigError


def test_a_cadence_describes_itself_and_its_interval() -> None:
    every = Cadence(every=5400, jitter=30)
    assert every.describe() == "every 1h30m (+ up to 30s)"
    assert every.interval() == 5400
    weekdays = Cadence(cron="0 9 * * 1-5", timezone="UTC")
    assert weekdays.describe() == "cron 0 9 * * 1-5 UTC"
    # the longest gap among the next fires: Friday 09:00 to Monday 09:00
    assert weekdays.interval(datetime(2026, 1, 5, tzinfo=UTC)) == 3 * 86400
    assert every.fingerprint != Cadence(every=5400).fingerprint


def test_sign_in_copies_named_variables_and_refuses_unset_ones() -> None:
    signin = SignIn(session_files=(("xhs", "/s/xhs.json"),),
                    variables=(("tiktok", "TIKTOK_COOKIE", "MY_TIKTOK"),))
    assert signin.environment(("xhs",), {}) == {"TAGARCHIVE_SESSION_XHS": "/s/xhs.json"}
    assert signin.environment(("tiktok",), {"MY_TIKTOK": "c"}) == {"TIKTOK_COOKIE": "c"}
    with pytest.raises(ConfigError, match=r"\$MY_TIKTOK, which is not set"):
        signin.environment(("tiktok",), {})

"""Post timestamps in every platform's own form, read exactly (crawler/text/timestamps.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crawler.text.timestamps import (
    TimestampError,
    from_epoch_millis,
    from_epoch_seconds,
    from_iso,
    from_weibo_absolute,
    from_weibo_display,
)

# a page rendered at 2025-01-13 10:05:30 China time
SERVER = datetime(2025, 1, 13, 2, 5, 30, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_seconds_and_milliseconds_are_told_apart_by_the_caller_not_guessed() -> None:
    assert from_epoch_seconds(1714809305) == utc(2024, 5, 4, 7, 55, 5)
    assert from_epoch_seconds("1714809305") == utc(2024, 5, 4, 7, 55, 5)
    # the XHS sample's create_time: milliseconds, kept to the millisecond without float error
    assert from_epoch_millis(1714809305999) == utc(2024, 5, 4, 7, 55, 5, 999_000)
    with pytest.raises(TimestampError, match="looks like milliseconds"):
        from_epoch_seconds(1714809305000)
    with pytest.raises(TimestampError, match="looks like seconds"):
        from_epoch_millis(1714809305)
    with pytest.raises(TimestampError, match="boolean"):
        from_epoch_seconds(True)
    with pytest.raises(TimestampError, match="not a plausible"):
        from_epoch_seconds(0)


def test_iso_needs_a_zone_and_never_rounds_into_the_next_day() -> None:
    assert from_iso("2025-01-05T12:00:00.123Z") == utc(2025, 1, 5, 12, 0, 0, 123_000)
    assert from_iso("2025-01-05T07:30:00+08:00") == utc(2025, 1, 4, 23, 30)
    assert from_iso("2025-01-05T23:59:59.999999999Z").date().day == 5
    with pytest.raises(TimestampError, match="no zone"):
        from_iso("2025-01-05T12:00:00")
    with pytest.raises(TimestampError, match="does not parse"):
        from_iso("yesterday")


def test_weibo_absolute_form() -> None:
    assert from_weibo_absolute("Tue Feb 23 12:28:47 +0800 2021") == utc(2021, 2, 23, 4, 28, 47)
    with pytest.raises(TimestampError):
        from_weibo_absolute("02-23")


@pytest.mark.parametrize(("text", "expected"), [
    ("刚刚", SERVER),
    ("45秒前", SERVER - timedelta(seconds=45)),
    ("2分钟前", SERVER - timedelta(minutes=2)),
    ("3小时前", SERVER - timedelta(hours=3)),
    ("今天 09:15", utc(2025, 1, 13, 1, 15)),
    ("今天09:15", utc(2025, 1, 13, 1, 15)),
    ("昨天 12:30", utc(2025, 1, 12, 4, 30)),
    ("01月05日 07:59", utc(2025, 1, 4, 23, 59)),  # China's early morning is the UTC day before
    ("12月31日 23:00", utc(2024, 12, 31, 15, 0)),  # a "future" date this year is last year's
    ("2024年12月20日 08:00", utc(2024, 12, 20, 0, 0)),
])
def test_weibo_display_forms_read_against_the_server_time(text: str, expected: datetime) -> None:
    assert from_weibo_display(text, SERVER) == expected


def test_weibo_display_refuses_date_only_and_naive_references() -> None:
    with pytest.raises(TimestampError, match="time of day"):
        from_weibo_display("02-23", SERVER)
    with pytest.raises(TimestampError, match="not a real date"):
        from_weibo_display("02月30日 10:00", SERVER)
    with pytest.raises(ValueError, match="naive"):
        from_weibo_display("刚刚", datetime(2025, 1, 13))

"""Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime

from crawler.downloader.middlewares import retry_after_seconds

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_delta_seconds() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(b" 3 ") == 3.0


def test_http_date() -> None:
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", NOW) == 30.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", NOW) == 0.0  # in the past


def test_garbage_and_missing() -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") is None


def test_rate_limit_reset_iso_against_server_date() -> None:
    from crawler.downloader.middlewares import rate_limit_reset_seconds

    # Mastodon: ISO reset time; measured against the response's Date, not the local clock
    assert rate_limit_reset_seconds("2026-01-01T12:05:00.000Z",
                                    "Thu, 01 Jan 2026 12:00:00 GMT") == 300.0
    assert rate_limit_reset_seconds("1767269100", None, NOW) == 300.0  # unix seconds
    assert rate_limit_reset_seconds("2026-01-01T11:00:00Z", None, NOW) == 0.0
    assert rate_limit_reset_seconds("soon", None, NOW) is None
    assert rate_limit_reset_seconds(None, None, NOW) is None


def test_hostile_header_values_mean_no_wait_rather_than_a_crash() -> None:
    from crawler.downloader.middlewares import rate_limit_reset_seconds

    # b"\xb2" is "²" in latin-1: str.isdigit() passes it, float() and int() refuse it
    assert retry_after_seconds(b"\xb2") is None
    assert retry_after_seconds("1" * 5000) is None  # past int()'s 4,300-digit limit
    assert rate_limit_reset_seconds(b"\xb2", None, NOW) is None
    assert rate_limit_reset_seconds("9" * 20, None, NOW) is None  # no datetime that far out

"""One log-record hook serves every redactor: sign-in secrets and URL credentials alike."""

from __future__ import annotations

import logging

import pytest

from crawler.extensions.logs import install_url_redaction
from crawler.logredact import _redactors, register_secrets


def test_secrets_and_url_credentials_leave_one_record_through_one_hook(
        caplog: pytest.LogCaptureFixture) -> None:
    install_url_redaction()
    register_secrets(["sessiontoken-4f9a2c"])
    factory = logging.getLogRecordFactory()
    install_url_redaction()  # asked again: the hook is not chained a second time
    register_secrets(["sessiontoken-4f9a2c"])
    assert logging.getLogRecordFactory() is factory
    assert len(_redactors) == len(set(_redactors))
    with caplog.at_level(logging.WARNING, logger="tagarchive.test"):
        logging.getLogger("tagarchive.test").warning(
            "fetch http://user:pw9@host.test/x with %s", "sessiontoken-4f9a2c")
    [message] = [r.getMessage() for r in caplog.records]
    assert "pw9" not in message
    assert "sessiontoken-4f9a2c" not in message
    assert "host.test/x" in message

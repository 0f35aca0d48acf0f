"""A refused signature read from a rendered Xiaohongshu page is no block (docs/access.md).

The answer is the replica's own refusal (replica/xiaohongshu.py: HTTP 406, `X-Kong-Sign: 1`,
`{"code": -1, "success": false}`, as third parties logged it). Read from a page the crawler
rendered, the signature was the page's own: the tag ends `error`, and the platform breaker,
which cools a platform on `blocked`, `captcha` and `rate_limited`, is not tripped by it.
"""

from __future__ import annotations

import json

import pytest

from crawler.platforms.base import Captured, Outcome, PlatformError
from crawler.platforms.xiaohongshu import topic_infos
from replica.xiaohongshu import SIGNATURE_REFUSED_BODY

URL = "https://edith.xiaohongshu.com/web_api/sns/v1/search/topic"


def _outcome(status: int, headers: dict[str, str]) -> Outcome:
    cap = Captured(url=URL, status=status, headers=headers,
                   body=json.dumps(SIGNATURE_REFUSED_BODY))
    with pytest.raises(PlatformError) as raised:
        topic_infos(cap)
    return raised.value.outcome


def test_a_refused_signature_in_a_rendered_page_is_an_error_not_a_block() -> None:
    assert _outcome(406, {"x-kong-sign": "1"}) is Outcome.ERROR


def test_the_same_body_without_the_refusal_header_stays_a_block() -> None:
    assert _outcome(406, {}) is Outcome.BLOCKED
    assert _outcome(200, {}) is Outcome.BLOCKED

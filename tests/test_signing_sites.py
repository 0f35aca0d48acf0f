"""The parts of a site signer computed in Python: Xiaohongshu's x-S-Common and the Cookie header.

Expected values come from the published description (MediaCrawler media_platform/xhs/
xhs_sign.py: a table-driven CRC-32 over the first 57 characters, `o ^ -1 ^ 3988292384`; a
base64 with the site's own alphabet), worked out here the long way, not from the code under
test.
"""

from __future__ import annotations

import base64
import json

from crawler.downloader.signing_sites import (
    XSC_ALPHABET,
    XiaohongshuSigner,
    cookie_header,
    xhs_common,
    xhs_mrc,
)
from replica.base import Query

STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else c >> 1
        table.append(c)
    return table


def _mrc_long_way(text: str) -> int:
    """As described: o = -1; o = T[(o & 255) ^ c] ^ (o >>> 8) per character (57 at most);
    then o ^ -1 ^ 3988292384, as a signed 32-bit integer."""
    table = _table()
    o = 0xFFFFFFFF
    for ch in text[:57]:
        o = table[(o & 255) ^ ord(ch)] ^ (o >> 8)
    value = (o ^ 0xFFFFFFFF) ^ 3988292384
    return value - (1 << 32) if value >= 1 << 31 else value


def test_x9_is_the_described_checksum() -> None:
    x_t = "1733112000000"
    x_s = "XYW_" + "eyJzaWduU3ZuIjoiNTYiLCJzaWduVHlwZSI6IngyIn0" * 3
    b1 = "I38rHdgsjopgIvesdVwgIC+oIELmBZ5e3VwXLgFTIxS3bqwErFeexd0ekncAzMFYnqthIhJeDfMDKutRI3KsYorW"
    for text in ("", "a", x_t + x_s + b1, "0" * 200):
        assert xhs_mrc(text) == _mrc_long_way(text), text[:20]
    # only the first 57 characters count
    assert xhs_mrc("x" * 57 + "tail") == xhs_mrc("x" * 57 + "other")
    assert -(1 << 31) <= xhs_mrc(x_t + x_s + b1) < 1 << 31


def test_x_s_common_carries_the_signature_in_the_sites_alphabet() -> None:
    header = xhs_common("a1value", "b1value", "XYW_sig", "1733112000000")
    assert set(header) <= set(XSC_ALPHABET + "=")
    decoded = json.loads(base64.b64decode(header.translate(str.maketrans(XSC_ALPHABET, STD))))
    assert decoded["x5"] == "a1value"
    assert decoded["x6"] == "1733112000000"
    assert decoded["x7"] == "XYW_sig"
    assert decoded["x8"] == "b1value"
    assert decoded["x9"] == _mrc_long_way("1733112000000" + "XYW_sig" + "b1value")
    assert decoded["x3"] == "xhs-pc-web"


def test_the_pages_cookies_join_the_request_and_win_for_a_name_both_have() -> None:
    page = [{"name": "a1", "value": "fromthepage"}, {"name": "webId", "value": "w1"}]
    merged = cookie_header(b"web_session=s1; a1=stale", page)
    assert merged.split("; ") == ["web_session=s1", "a1=fromthepage", "webId=w1"]
    assert cookie_header(None, page) == "a1=fromthepage; webId=w1"
    assert cookie_header(b"k=v", []) == "k=v"


def test_xiaohongshu_tells_a_captcha_from_a_refused_signature() -> None:
    """The replica's own answers (replica/xiaohongshu.py), as Scrapy receives them: the
    gateway's 406 is signed again, the captcha (461 with Verifytype) is not."""
    from scrapy.http import TextResponse

    from replica.world import World
    from replica.xiaohongshu import XiaohongshuApp

    app = XiaohongshuApp(World(seed=2025))
    uri = "/web_api/sns/v1/search/topic"

    def answer(body: bytes) -> TextResponse:
        status, headers, payload = app.handle("POST", uri, Query(""), {}, body)
        return TextResponse(url="http://x" + uri, status=status, headers=headers, body=payload)

    signer = XiaohongshuSigner()
    unsigned = answer(b'{"keyword": "cats"}')
    assert (unsigned.status, signer.refused(unsigned), signer.captcha(unsigned)) == (
        406, True, False)
    status, headers, payload = app._captcha(uri, b"")  # its risk control's answer
    captcha = TextResponse(url="http://x" + uri, status=status, headers=headers, body=payload)
    assert (signer.refused(captcha), signer.captcha(captcha)) == (False, True)
    bare = TextResponse(url="http://x" + uri, status=461, body=b"{}")
    assert (signer.refused(bare), signer.captcha(bare)) == (True, False)  # [INF]
    fine = TextResponse(url="http://x" + uri, status=200, body=b'{"success": true}')
    assert (signer.refused(fine), signer.captcha(fine)) == (False, False)

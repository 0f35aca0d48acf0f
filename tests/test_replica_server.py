"""HTTP tests for the replica server, including one real-Chromium run of the client-side JS."""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.error import HTTPError
from urllib.parse import quote, urlencode, urlsplit
from urllib.robotparser import RobotFileParser

import pytest

from replica import ReplicaClock, ReplicaServer, World, display_count
from replica.__main__ import serve_forever
from replica.base import script_json

UNIVERSAL_RE = re.compile(
    r'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">(.*?)</script>', re.S
)
ANCHOR_AT = datetime(2025, 1, 15, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Python ports of the in-page signers, written from static/webapp.js and static/xhs.js


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def tiktok_key() -> str:
    head = "".join(piece[::-1] for piece in ("detyb", "rc_a", "relwa"))
    return f"{head}:{base36(0x1F2E * 3)}:{chr(0x76)}{chr(0x31)}"


def x_bogus(pairs: list[tuple[str, str]]) -> str:
    canonical = "&".join(f"{k}={v}" for k, v in pairs if k != "X-Bogus")
    return "DFSz" + f"{fnv1a32((tiktok_key() + '|' + canonical).encode()):08x}"


def signed_tiktok(base: str, api: str, params: list[tuple[str, str]]) -> str:
    pairs = [*params, ("msToken", "m" * 107)]
    return f"{base}{api}?{urlencode(pairs, quote_via=quote)}&X-Bogus={x_bogus(pairs)}"


def xhs_key() -> str:
    site = "".join(chr(c) for c in (120, 104, 115))
    return f"{site}_{'-'.join(p[::-1] for p in ('bew', 'cp'))}_{20250113:x}"


def b64json(payload: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


XSC_ALPHABET = "ZmserbBoHQtNP+wOcza/LpngG8yJq42KWYj0DSfdikx3VT16IlUAFM97hECvuRX5"


def xhs_headers(uri: str, body: bytes, x_t: str | None = None) -> dict[str, str]:
    # X-t is the signer's clock: the replica refuses one older than a few minutes
    x_t = x_t or str(int(time.time() * 1000))
    digest = fnv1a32(xhs_key().encode() + uri.encode() + body + x_t.encode())
    x_s = "XYW_" + b64json({"signSvn": "56", "signType": "x2", "payload": f"{digest:08x}"})
    # x-S-Common as MediaCrawler builds it: x9 = CRC-32 of X-t + X-s + b1 (first 57 characters)
    # XOR 0xEDB88320 as a signed int; the JSON in base64 with the site's own alphabet
    b1 = "b1"
    x9 = zlib.crc32((x_t + x_s + b1)[:57].encode()) ^ 0xEDB88320
    common = {"s0": 3, "x5": "a1", "x6": x_t, "x7": x_s, "x8": b1,
              "x9": x9 - (1 << 32) if x9 >= 1 << 31 else x9}
    std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    encoded = b64json(common).translate(str.maketrans(std, XSC_ALPHABET))
    return {"X-S": x_s, "X-T": x_t, "x-S-Common": encoded}


# ---------------------------------------------------------------------------------------------
# helpers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except HTTPError as err:
        with err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def universal(html: bytes) -> dict[str, Any]:
    match = UNIVERSAL_RE.search(html.decode())
    assert match, "no __UNIVERSAL_DATA_FOR_REHYDRATION__ script"
    return json.loads(match.group(1))["__DEFAULT_SCOPE__"]


def xhs_search(server: ReplicaServer, keyword: str, signed: bool = True) -> tuple[int, dict, Any]:
    uri = "/web_api/sns/v1/search/topic"
    payload = {
        "keyword": keyword,
        "suggest_topic_request": {"title": "", "desc": f"#{keyword}"},
        "page": {"page_size": 20, "page": 1},
    }
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if signed:
        headers.update(xhs_headers(uri, body))
    status, hdrs, raw = fetch(server.base_url("xiaohongshu") + uri, "POST", body, headers)
    return status, hdrs, json.loads(raw) if raw else None


def xhs_notes(server: ReplicaServer, page_id: str, cursor: str = "") -> Any:
    uri = f"/web_api/sns/v1/page/{page_id}/notes?page_size=20&sort=hot_desc&cursor={cursor}"
    status, _, raw = fetch(server.base_url("xiaohongshu") + uri, headers=xhs_headers(uri, b""))
    assert status == 200
    return json.loads(raw)


@pytest.fixture
def server() -> Iterator[ReplicaServer]:
    with ReplicaServer(World(seed=2025, clock=ReplicaClock())) as srv:
        yield srv


# ---------------------------------------------------------------------------------------------
# TikTok


def test_tiktok_ssr_page_matches_world(server: ReplicaServer) -> None:
    server.world.set_variant("tiktok", "tiktokrefugee", "ssr")
    status, headers, html = fetch(server.base_url("tiktok") + "/tag/tiktokrefugee")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    truth = server.world.topic("tiktok", "tiktokrefugee")
    scope = universal(html)
    assert "webapp.app-context" in scope
    detail = scope["webapp.challenge-detail"]
    assert detail["statusCode"] == 0
    assert detail["statusMsg"] == ""
    info = detail["challengeInfo"]
    assert info["challenge"] == {
        "id": truth.topic_id,
        "title": "tiktokrefugee",
        "desc": truth.desc,
        "isCommerce": False,
        "splitTitle": "",
    }
    assert info["stats"] == {"videoCount": truth.posts, "viewCount": truth.views}
    assert info["statsV2"] == {"videoCount": str(truth.posts), "viewCount": str(truth.views)}
    items = detail["itemList"]
    assert len(items) == 30
    for item in items:
        assert "#tiktokrefugee" in item["desc"]
        assert isinstance(item["createTime"], int)
        assert item["createTime"] <= truth.at.timestamp()
        assert set(item["author"]) == {"id", "uniqueId", "nickname"}
        assert item["statsV2"] == {k: str(v) for k, v in item["stats"].items()}
    text = html.decode()
    assert f'content="snssdk1233://challenge/detail/{truth.topic_id}"' in text
    assert '<h1 data-e2e="challenge-title">#tiktokrefugee</h1>' in text
    assert (
        f'<h2 data-e2e="challenge-vvcount" title="posts">{display_count(truth.posts, "en")} posts'
        in text
    )
    assert text.count('data-e2e="challenge-item"') == 30


def test_tiktok_not_found(server: ReplicaServer) -> None:
    server.world.set_variant("tiktok", "nosuchthing", "ssr")
    status, _, html = fetch(server.base_url("tiktok") + "/tag/nosuchthing")
    assert status == 200
    detail = universal(html)["webapp.challenge-detail"]
    assert detail["statusCode"] == 10205
    assert detail["statusMsg"] == "Couldn't find this hashtag"
    assert detail["challengeInfo"] == {}
    assert b"<p>Couldn't find this hashtag</p>" in html


def test_tiktok_csr_share_and_forced(server: ReplicaServer) -> None:
    base = server.base_url("tiktok")
    csr = 0
    for i in range(60):
        scope = universal(fetch(f"{base}/tag/tag{i}")[2])
        csr += "webapp.challenge-detail" not in scope
    assert 8 <= csr <= 30  # about 30%
    server.world.set_variant("tiktok", "Cats", "csr")
    html = fetch(f"{base}/tag/cats")[2]
    assert "webapp.challenge-detail" not in universal(html)
    assert b"challenge-vvcount" not in html
    assert b'data-e2e="challenge-item"' not in html
    assert b"/tiktok/static/webapp.js" in html
    status, headers, js = fetch(f"{base}/static/webapp.js")
    assert status == 200
    assert "javascript" in headers["content-type"]
    assert b"frontierSign" in js


def test_tiktok_unicode_tag_and_override(server: ReplicaServer) -> None:
    server.world.set_variant("tiktok", "小红书", "ssr")
    server.world.set_variant("tiktok", "小红书", "override", views=9_876_543_210, posts=1_100_000)
    html = fetch(server.base_url("tiktok") + "/tag/" + quote("小红书"))[2]
    info = universal(html)["webapp.challenge-detail"]["challengeInfo"]
    assert info["challenge"]["title"] == "小红书"
    assert info["stats"]["viewCount"] == 9_876_543_210
    assert info["statsV2"]["viewCount"] == "9876543210"
    assert 'title="posts">1.1M posts</h2>' in html.decode()


def test_tiktok_script_json_is_escaped(server: ReplicaServer) -> None:
    tag = "x<!--y"
    server.world.set_variant("tiktok", tag, "ssr")
    html = fetch(server.base_url("tiktok") + "/tag/" + quote(tag))[2]
    scope = universal(html)
    assert scope["webapp.challenge-detail"]["challengeInfo"]["challenge"]["title"] == tag
    text = script_json({"a": "</script><!--"})
    assert "</" not in text
    assert "<!--" not in text
    assert json.loads(text) == {"a": "</script><!--"}


def test_tiktok_rate_limited_then_ok(server: ReplicaServer) -> None:
    server.world.set_variant("tiktok", "TikTokRefugee", "rate_limited", times=2, retry_after=7)
    url = server.base_url("tiktok") + "/tag/tiktokrefugee"
    for _ in range(2):
        status, headers, _ = fetch(url)
        assert status == 429
        assert headers["retry-after"] == "7"
    assert fetch(url)[0] == 200


def test_tiktok_server_error_then_ok(server: ReplicaServer) -> None:
    server.world.set_variant("tiktok", "fyp", "server_error", times=2, status=502)
    url = signed_tiktok(
        server.base_url("tiktok"), "/api/challenge/detail/", [("challengeName", "fyp")]
    )
    assert [fetch(url)[0] for _ in range(3)] == [502, 502, 200]


def test_tiktok_api_requires_signature(server: ReplicaServer) -> None:
    base = server.base_url("tiktok")
    unsigned = f"{base}/api/challenge/detail/?challengeName=tiktokrefugee&msToken={'m' * 107}"
    status, _, body = fetch(unsigned)
    assert (status, body) == (200, b"")
    forged = signed_tiktok(base, "/api/challenge/detail/", [("challengeName", "fyp")])
    forged = forged.replace("challengeName=fyp", "challengeName=tiktokrefugee")
    assert fetch(forged)[2] == b""

    status, _, body = fetch(
        signed_tiktok(base, "/api/challenge/detail/", [("challengeName", "TikTokRefugee")])
    )
    assert status == 200
    detail = json.loads(body)
    truth = server.world.topic("tiktok", "tiktokrefugee")
    assert detail["statusCode"] == 0
    assert detail["status_code"] == 0
    assert detail["challengeInfo"]["stats"] == {"videoCount": truth.posts, "viewCount": truth.views}
    assert set(detail["shareMeta"]) == {"title", "desc"}

    params = [("challengeID", truth.topic_id), ("count", "30"), ("cursor", "0")]
    page1 = json.loads(fetch(signed_tiktok(base, "/api/challenge/item_list/", params))[2])
    assert page1["statusCode"] == 0
    assert page1["hasMore"] is True
    assert page1["cursor"] == "30"
    params[2] = ("cursor", page1["cursor"])
    page2 = json.loads(fetch(signed_tiktok(base, "/api/challenge/item_list/", params))[2])
    ids1 = {i["id"] for i in page1["itemList"]}
    ids2 = {i["id"] for i in page2["itemList"]}
    assert len(ids1) == len(ids2) == 30
    assert not ids1 & ids2

    missing = signed_tiktok(base, "/api/challenge/detail/", [("challengeName", "nosuchtag")])
    gone = json.loads(fetch(missing)[2])
    assert gone["statusCode"] == 10205
    assert gone["challengeInfo"] == {}
    assert server.hits[("tiktok", "api_detail")] == 4
    assert server.hits[("tiktok", "api_item_list")] == 2


def test_tiktok_blocking_variants(server: ReplicaServer) -> None:
    base = server.base_url("tiktok")
    world = server.world
    world.set_variant("tiktok", "walled", "login_wall")
    status, headers, _ = fetch(f"{base}/tag/walled?lang=en")
    assert status == 302
    assert headers["location"].startswith("/tiktok/login?redirect_url=")
    status, _, page = fetch(server.url + headers["location"])
    assert status == 200
    assert b"Log in to TikTok" in page

    world.set_variant("tiktok", "robotcheck", "captcha")
    html = fetch(f"{base}/tag/robotcheck")[2]
    assert b'<div id="captcha-verify-container"' in html
    assert b"Verify to continue" in html
    assert b"__UNIVERSAL_DATA_FOR_REHYDRATION__" not in html
    api = signed_tiktok(base, "/api/challenge/detail/", [("challengeName", "robotcheck")])
    assert fetch(api)[2] == b""

    world.set_variant("tiktok", "redesign", "layout_changed")
    html = fetch(f"{base}/tag/redesign")[2]
    assert b"__UNIVERSAL_DATA_FOR_REHYDRATION__" not in html
    assert b"__NEXT_DATA__" in html
    assert b"challenge-vvcount" not in html
    api = signed_tiktok(base, "/api/challenge/detail/", [("challengeName", "redesign")])
    assert "challengeInfo" not in json.loads(fetch(api)[2])


# ---------------------------------------------------------------------------------------------
# Xiaohongshu


def test_xhs_unsigned_is_refused_by_the_gateway_not_captcha(server: ReplicaServer) -> None:
    # a refused signature as logged in jackwener/xiaohongshu-cli #18 (docs/access.md)
    status, headers, body = xhs_search(server, "健身", signed=False)
    assert status == 406
    assert headers["x-kong-sign"] == "1"
    assert "verifytype" not in headers
    assert body == {"code": -1, "success": False}


def test_xhs_captcha_is_461_with_verifytype(server: ReplicaServer) -> None:
    server.world.set_variant("xiaohongshu", "健身", "captcha")
    status, headers, body = xhs_search(server, "健身")
    assert status == 461
    assert headers["verifytype"] == "102"
    assert uuid.UUID(headers["verifyuuid"]).version == 4
    assert body == {"code": 461, "success": False, "msg": ""}
    assert xhs_search(server, "健身")[1]["verifyuuid"] == headers["verifyuuid"]
    # a bad signature is the gateway's answer first, captcha or not
    assert xhs_search(server, "健身", signed=False)[0] == 406


def test_xhs_signed_search_and_notes(server: ReplicaServer) -> None:
    server.world.clock.set(ANCHOR_AT)
    status, _, body = xhs_search(server, "tiktok难民")
    assert status == 200
    assert body["success"] is True
    assert body["code"] == 0
    dtos = body["data"]["topic_info_dtos"]
    truth = server.world.topic("xiaohongshu", "TikTok难民")
    first = dtos[0]
    assert first == {
        "smart": False,
        "id": truth.topic_id,
        "name": "TikTok难民",
        "link": f"https://www.xiaohongshu.com/page/topics/{truth.page_id}?naviHidden=yes",
        "view_num": truth.views,
        "type": "official",
    }
    assert 2 <= len(dtos) <= 4
    assert all(d["name"].startswith("TikTok难民") for d in dtos)
    assert display_count(first["view_num"]) == "1.2亿"

    feed = xhs_notes(server, truth.page_id)
    data = feed["data"]
    assert feed["success"] is True
    assert feed["result"] == 0
    assert data["total_note_count"] == truth.discussions
    assert display_count(data["total_note_count"]) == "281.2万"
    assert data["total_user_count"] == truth.participants
    assert len(data["notes"]) == 20
    assert data["has_more"] is True
    assert data["cursor"]
    note = data["notes"][0]
    assert set(note) >= {"id", "type", "likes", "title", "desc", "user", "create_time", "cursor"}
    assert note["create_time"] <= ANCHOR_AT.timestamp() * 1000
    second = xhs_notes(server, truth.page_id, data["cursor"])["data"]["notes"]
    assert not {n["id"] for n in second} & {n["id"] for n in data["notes"]}

    assert xhs_search(server, "nosuchtopic")[2]["data"]["topic_info_dtos"] == []
    assert xhs_notes(server, "0" * 24) == {"code": -510000, "success": False, "msg": "话题不存在"}


def test_xhs_variants(server: ReplicaServer) -> None:
    world = server.world
    world.set_variant("xiaohongshu", "Robot", "captcha")
    assert xhs_search(server, "robot")[0] == 461
    world.set_variant("xiaohongshu", "walled", "login_wall")
    assert xhs_search(server, "walled")[2]["code"] == -101
    world.set_variant("xiaohongshu", "blocked", "ip_block")
    assert xhs_search(server, "blocked")[2]["code"] == 300012
    world.set_variant("xiaohongshu", "redesign", "layout_changed")
    data = xhs_search(server, "redesign")[2]["data"]
    assert "topic_info_dtos" not in data
    assert data["topic_list"][0]["name"] == "redesign"
    world.set_variant("xiaohongshu", "gone", "not_found")
    assert xhs_search(server, "gone")[2]["data"]["topic_info_dtos"] == []
    world.set_variant("xiaohongshu", "busy", "rate_limited")
    status, headers, _ = xhs_search(server, "busy")
    assert status == 429
    assert headers["retry-after"] == "1"
    assert xhs_search(server, "busy")[0] == 200


def test_xhs_topic_page_shell(server: ReplicaServer) -> None:
    page_id = server.world.topic("xiaohongshu", "TikTok难民").page_id
    status, _, html = fetch(
        f"{server.base_url('xiaohongshu')}/page/topics/{page_id}?naviHidden=yes"
    )
    text = html.decode()
    assert status == 200
    state = re.search(r"window\.__INITIAL_STATE__=(.*?)</script>", text)
    assert state
    assert '"x":undefined' in state.group(1)
    with pytest.raises(ValueError):
        json.loads(state.group(1))
    fixed = json.loads(state.group(1).replace("undefined", "null"))
    assert fixed["topic"] == {"pageId": page_id, "name": "TikTok难民"}
    assert "/xiaohongshu/static/xhs.js" in text


# ---------------------------------------------------------------------------------------------
# server plumbing


def test_determinism_and_tick_growth(server: ReplicaServer) -> None:
    url = signed_tiktok(
        server.base_url("tiktok"), "/api/challenge/detail/", [("challengeName", "fyp")]
    )
    first = json.loads(fetch(url)[2])
    assert json.loads(fetch(url)[2]) == first
    with ReplicaServer(World(seed=2025)) as twin:
        twin_url = url.replace(server.url, twin.url)
        assert json.loads(fetch(twin_url)[2]) == first
    server.world.clock.tick(24)
    later = json.loads(fetch(url)[2])
    assert (
        later["challengeInfo"]["stats"]["viewCount"] > first["challengeInfo"]["stats"]["viewCount"]
    )


def test_admin_endpoints(server: ReplicaServer) -> None:
    admin = server.url + "/__replica__"
    state = json.loads(fetch(admin + "/state")[2])
    assert state["now"] == "2025-01-13T00:00:00Z"
    assert state["seed"] == 2025
    tick = json.loads(fetch(admin + "/tick?n=2", "POST", b"")[2])
    assert tick["now"] == "2025-01-13T02:00:00Z"
    assert server.world.now() == datetime(2025, 1, 13, 2, tzinfo=UTC)
    body = json.dumps(
        {"platform": "tiktok", "tag": "Cats", "name": "rate_limited", "params": {"times": 1}}
    ).encode()
    status, _, _ = fetch(admin + "/variant", "POST", body, {"Content-Type": "application/json"})
    assert status == 200
    assert fetch(server.base_url("tiktok") + "/tag/cats")[0] == 429
    bad = json.dumps({"platform": "tiktok", "tag": "x", "name": "nope"}).encode()
    assert fetch(admin + "/variant", "POST", bad)[0] == 400
    server.world.set_variant("tiktok", "cats", "rate_limited", times=5)
    assert fetch(admin + "/clear", "POST", b"")[0] == 200
    assert fetch(server.base_url("tiktok") + "/tag/cats")[0] == 200
    assert fetch(admin + "/state", "POST", b"")[0] == 405


def test_robots_head_keepalive_and_quiet(
    server: ReplicaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, robots = fetch(server.url + "/robots.txt")
    assert status == 200
    parser = RobotFileParser()
    parser.parse(robots.decode().splitlines())
    assert parser.can_fetch("*", server.base_url("tiktok") + "/tag/cats")
    assert parser.can_fetch("*", server.base_url("xiaohongshu") + "/page/topics/abc")
    assert not parser.can_fetch("*", server.base_url("tiktok") + "/private/x")
    assert fetch(server.base_url("tiktok") + "/private/x")[0] == 200

    host = urlsplit(server.url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
    try:
        path = "/tiktok/tag/cats"
        server.world.set_variant("tiktok", "cats", "ssr")
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) == len(body)
        conn.request("HEAD", path)  # same socket: keep-alive works
        resp = conn.getresponse()
        assert resp.read() == b""
        assert int(resp.headers["Content-Length"]) == len(body)
        conn.request("POST", "/xiaohongshu/web_api/sns/v1/search/topic", body=b"{}")
        assert conn.getresponse().status == 406  # unsigned
    finally:
        conn.close()
    assert server.hits[("tiktok", "tag_page")] == 2
    assert capsys.readouterr().err == ""


def test_serve_forever_and_cli() -> None:
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(target=serve_forever, args=(0, 11), kwargs={"out": out, "stop": stop})
    thread.start()
    try:
        for _ in range(200):
            if "Ctrl-C" in out.getvalue():
                break
            stop.wait(0.01)
        url = re.search(r"http://127\.0\.0\.1:\d+", out.getvalue())
        assert url
        assert "/xiaohongshu" in out.getvalue()
        assert json.loads(fetch(url.group(0) + "/__replica__/state")[2])["seed"] == 11
    finally:
        stop.set()
        thread.join(5)

    cmd = [sys.executable, "-m", "replica", "--port", "0", "--seed", "3"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("replica http://127.0.0.1:")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


# ---------------------------------------------------------------------------------------------
# real browser


def test_chromium_renders_csr_pages(server: ReplicaServer) -> None:
    from playwright import sync_api

    from crawler.downloader.chromium import find_chromium, launch_options

    world = server.world
    world.clock.set(ANCHOR_AT)
    world.set_variant("tiktok", "tiktokrefugee", "csr")
    page_id = world.topic("xiaohongshu", "TikTok难民").page_id
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(**{**launch_options(find_chromium()), "args": args})
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            with page.expect_response(lambda r: "/api/challenge/item_list/" in r.url) as info:
                page.goto(server.base_url("tiktok") + "/tag/tiktokrefugee")
            xhr = info.value
            assert xhr.status == 200
            assert xhr.json()["statusCode"] == 0
            page.wait_for_selector("html[data-replica-state=ready]", timeout=10_000)
            truth = world.topic("tiktok", "tiktokrefugee")
            h2 = page.inner_text('h2[data-e2e="challenge-vvcount"]')
            assert h2 == f"{display_count(truth.posts, 'en')} posts"
            assert page.locator('[data-e2e="challenge-item"]').count() == 30
            # The in-page signer and the Python port agree.
            probe = server.base_url("tiktok") + "/api/challenge/detail/?challengeName=é ü&msToken=x"
            signed = page.evaluate("u => window.byted_acrawler.frontierSign(u)['X-Bogus']", probe)
            assert signed == x_bogus([("challengeName", "é ü"), ("msToken", "x")])

            with page.expect_response(lambda r: "/notes?" in r.url) as info:
                page.goto(f"{server.base_url('xiaohongshu')}/page/topics/{page_id}?naviHidden=yes")
            notes = info.value
            assert notes.status == 200
            assert notes.json()["success"] is True
            page.wait_for_selector("html[data-replica-state=ready]", timeout=10_000)
            meta = page.inner_text(".summary .meta")
            assert meta == "1.2亿浏览 · 281.2万讨论"
            assert page.inner_text(".summary .meta span >> nth=0") == "1.2"
            assert page.locator(".note-item").count() == 20

            page.goto(
                f"{server.base_url('xiaohongshu')}/search_result?keyword=tiktok难民&type=topic"
            )
            page.wait_for_selector("html[data-replica-state=ready]", timeout=10_000)
            first = page.locator("ul.topic-list li").first
            assert first.locator("a").inner_text() == "TikTok难民"
            assert first.locator("span.views").inner_text() == "1.2亿浏览"

            world.set_variant("xiaohongshu", "TikTok难民", "captcha")
            page.goto(f"{server.base_url('xiaohongshu')}/page/topics/{page_id}")
            page.wait_for_selector("html[data-replica-state=captcha]", timeout=10_000)
            assert page.locator("div.captcha").count() == 1

            world.set_variant("tiktok", "nosuchtag", "csr")
            page.goto(server.base_url("tiktok") + "/tag/nosuchtag")
            page.wait_for_selector("html[data-replica-state=not_found]", timeout=10_000)
            assert "Couldn't find this hashtag" in page.inner_text("main")
            assert errors == []
        finally:
            browser.close()

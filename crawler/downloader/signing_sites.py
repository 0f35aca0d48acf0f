"""How each platform's live page makes a request acceptable: its signer, and what refusal is.

A site signer is given a live page on the platform's origin (a `SigningSession`, see
crawler/downloader/signing.py) and a request whose adapter asked for it by name
(`SignSpec.signer`). It either

- signs the request with the site's own function called in the page, changing only the
  request's headers or URL, so that Scrapy's HTTP downloader sends it (`signed_http`); or
- runs the request as a `fetch()` inside the page, where the site's script signs what its page
  fetches and the signature cannot be taken apart from the call, and answers with the response
  (`in_page_fetch`).

It raises `SignerMissing` when the page has no signer (the site changed its script, or the
page is not what it was), and lets Playwright's errors through when the page itself is gone.
Facts, with their sources, are in docs/access.md; what is inferred is marked [INF].
"""

from __future__ import annotations

import base64
import json
import secrets
import zlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

from scrapy import Request
from scrapy.http import Response
from scrapy.http.headers import Headers
from scrapy.responsetypes import responsetypes

SIGNED_HTTP = "signed_http"
IN_PAGE_FETCH = "in_page_fetch"


class SignerMissing(RuntimeError):
    """The live page has no signer where the site kept one."""


class Session(Protocol):
    """What a site signer uses of a signing session."""

    @property
    def page(self) -> Any: ...

    async def cookies(self, url: str) -> list[dict[str, Any]]: ...


class SiteSigner(Protocol):
    """One platform's way of making its requests acceptable."""

    name: ClassVar[str]
    fetched_by: ClassVar[str]  # SIGNED_HTTP or IN_PAGE_FETCH
    ready: ClassVar[str]  # a JS expression, true once the page can sign

    async def sign(self, session: Session, request: Request,
                   spec: Mapping[str, Any]) -> Response | None:
        """Sign `request` in place (None), or fetch it in the page (the response)."""
        ...

    def refused(self, response: Response) -> bool:
        """Whether the platform refused the signature (to be signed again), not answered."""
        ...

    def captcha(self, response: Response) -> bool:
        """Whether the platform answered a captcha: not a signature problem, so not signed
        again; the adapter names it `captcha` and the platform's breaker cools it."""
        ...


def cookie_header(existing: bytes | None, cookies: list[dict[str, Any]]) -> str:
    """The request's Cookie header with the page's cookies: the page's value wins for a name
    both have (the signature was made with it, e.g. Xiaohongshu's a1)."""
    mine = {c["name"]: c["value"] for c in cookies}
    parts = []
    if existing:
        for part in existing.decode("latin-1").split(";"):
            name = part.strip().partition("=")[0]
            if name and name not in mine:
                parts.append(part.strip())
    parts.extend(f"{name}={value}" for name, value in mine.items())
    return "; ".join(parts)


# --- Xiaohongshu -------------------------------------------------------------------------------

# The site's signer: `window._webmsxyw(uri, data)` → {"X-s", "X-t"} (MediaCrawler called it so
# until 2025 [V-src MediaCrawler media_platform/xhs/client.py _pre_headers]; its later code calls
# `window.mnsv2` instead [V-src playwright_sign.py], and a third-party note says `_webmsxyw` is
# no longer exposed [3P]: then the page has no signer and tags are rendered). b1 is read from
# localStorage in the same call.
_XHS_SIGN = """([uri, data]) => {
  const sign = window._webmsxyw;
  if (typeof sign !== "function") return null;
  const s = sign(uri, data);
  return {xs: String(s["X-s"]), xt: String(s["X-t"]),
          b1: window.localStorage.getItem("b1") || ""};
}"""
# x-S-Common: base64 in the site's own alphabet of the UTF-8 JSON below [V-src MediaCrawler
# media_platform/xhs/xhs_sign.py b64_encode, playwright_sign.py _build_xs_common]; x1, x2, x4
# are the site's and the browser's versions, copied from there [INF: the server's use of them]
XSC_ALPHABET = "ZmserbBoHQtNP+wOcza/LpngG8yJq42KWYj0DSfdikx3VT16IlUAFM97hECvuRX5"
_TO_XSC = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                        XSC_ALPHABET)


def xhs_mrc(text: str) -> int:
    """x9 of x-S-Common: CRC-32 (the standard table) of the first 57 characters, XORed with
    0xEDB88320, as a signed 32-bit integer [V-src MediaCrawler xhs_sign.py mrc]."""
    value = zlib.crc32(text[:57].encode("latin-1", "replace")) ^ 0xEDB88320
    return value - (1 << 32) if value >= 1 << 31 else value


def xhs_common(a1: str, b1: str, x_s: str, x_t: str) -> str:
    """The x-S-Common header for one signature."""
    payload = {"s0": 3, "s1": "", "x0": "1", "x1": "4.2.2", "x2": "Mac OS", "x3": "xhs-pc-web",
               "x4": "4.74.0", "x5": a1, "x6": x_t, "x7": x_s, "x8": b1,
               "x9": xhs_mrc(x_t + x_s + b1), "x10": 154, "x11": "normal"}
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(raw).decode("ascii").translate(_TO_XSC)


class XiaohongshuSigner:
    """X-S/X-T from the page's `_webmsxyw`, x-S-Common from the a1 cookie and b1."""

    name: ClassVar[str] = "xiaohongshu"
    fetched_by: ClassVar[str] = SIGNED_HTTP
    ready: ClassVar[str] = "typeof window._webmsxyw === 'function'"
    # HTTP 406 with `X-Kong-Sign: 1` and {"code": -1, "success": false}: the API gateway
    # refused the signature (a wrong or missing one) [3P: logs in jackwener/xiaohongshu-cli
    # #18 and NanmiCoder/MediaCrawler #755; Cloxl/xhshow #104]. That an expired X-t is
    # answered so too is [INF].
    REFUSED: ClassVar[int] = 406
    # HTTP 461/471 with `Verifytype` (and `Verifyuuid`): the captcha [V-src MediaCrawler
    # media_platform/xhs/client.py `request`; ReaJason/xhs #93]. A 461/471 without it is read
    # as a refused signature [INF: no source shows one].
    CAPTCHA: ClassVar[frozenset[int]] = frozenset({461, 471})

    async def sign(self, session: Session, request: Request,
                   spec: Mapping[str, Any]) -> Response | None:
        data = json.loads(request.body) if request.body else None
        signed = await session.page.evaluate(_XHS_SIGN, [spec["uri"], data])
        if not isinstance(signed, dict):
            raise SignerMissing("window._webmsxyw is not a function in the page")
        cookies = await session.cookies(request.url)
        a1 = next((c["value"] for c in cookies if c["name"] == "a1"), "")
        request.headers["X-S"] = signed["xs"]
        request.headers["X-T"] = signed["xt"]
        request.headers["x-S-Common"] = xhs_common(a1, signed["b1"], signed["xs"], signed["xt"])
        # 16 hex digits [V-src MediaCrawler get_trace_id]
        request.headers["X-B3-Traceid"] = secrets.token_hex(8)
        request.headers["Cookie"] = cookie_header(request.headers.get("Cookie"), cookies)
        return None

    def refused(self, response: Response) -> bool:
        if response.status in self.CAPTCHA:
            return not self.captcha(response)
        return response.status == self.REFUSED

    def captcha(self, response: Response) -> bool:
        return response.status in self.CAPTCHA and b"Verifytype" in response.headers


# --- TikTok ------------------------------------------------------------------------------------

# `window.byted_acrawler.frontierSign(url)` → {"X-Bogus"}, on a page of the site, with the
# msToken cookie in the query [V-src TikTok-Api TikTokApi/tiktok.py]
_TIKTOK_SIGN = """(url) => {
  const a = window.byted_acrawler;
  if (!a || typeof a.frontierSign !== "function") return null;
  return String(a.frontierSign(url)["X-Bogus"]);
}"""


class TikTokSigner:
    """X-Bogus from the page's `byted_acrawler.frontierSign`, msToken from its cookie."""

    name: ClassVar[str] = "tiktok"
    fetched_by: ClassVar[str] = SIGNED_HTTP
    ready: ClassVar[str] = ("!!window.byted_acrawler && "
                            "typeof window.byted_acrawler.frontierSign === 'function'")

    async def sign(self, session: Session, request: Request,
                   spec: Mapping[str, Any]) -> Response | None:
        url = request.url
        if "msToken=" not in url:
            cookies = await session.cookies(url)
            token = next((c["value"] for c in cookies if c["name"] == "msToken"), "")
            url += ("&" if "?" in url else "?") + "msToken=" + quote(token, safe="")
        bogus = await session.page.evaluate(_TIKTOK_SIGN, url)
        if not isinstance(bogus, str):
            raise SignerMissing("window.byted_acrawler.frontierSign is not a function")
        request._set_url(f"{url}&X-Bogus={quote(bogus, safe='')}")
        return None

    def refused(self, response: Response) -> bool:
        # "an empty response means bot detection" [V-src TikTok-Api]
        return response.status == 200 and not response.body.strip()

    def captcha(self, response: Response) -> bool:
        return False  # "Verify to continue" comes as a page, read by the adapter


# --- Douyin ------------------------------------------------------------------------------------

# The page's own fetch, which Douyin's SDK signs with a_bogus [INF: that it signs every fetch
# its page makes, by wrapping window.fetch]; webid and msToken (localStorage "xmst" [V-src
# MediaCrawler media_platform/douyin/client.py]) are added as the page's own calls carry them.
_FETCH_HOOKED = "!/\\[native code\\]/.test(Function.prototype.toString.call(window.fetch))"
_DOUYIN_FETCH = """async (url) => {
  if (!(""" + _FETCH_HOOKED + """)) return null;
  const u = new URL(url, location.href);
  const webid = localStorage.getItem("webid"), token = localStorage.getItem("xmst");
  if (webid && !u.searchParams.has("webid")) u.searchParams.append("webid", webid);
  if (token && !u.searchParams.has("msToken")) u.searchParams.append("msToken", token);
  const resp = await fetch(u.toString(), {credentials: "include"});
  const headers = {};
  resp.headers.forEach((v, k) => { headers[k] = v; });
  return {url: resp.url, status: resp.status, headers, body: await resp.text()};
}"""


class DouyinSigner:
    """The request as a fetch in the page; the SDK signs it on its way out."""

    name: ClassVar[str] = "douyin"
    fetched_by: ClassVar[str] = IN_PAGE_FETCH
    ready: ClassVar[str] = _FETCH_HOOKED

    async def sign(self, session: Session, request: Request,
                   spec: Mapping[str, Any]) -> Response | None:
        answer = await session.page.evaluate(_DOUYIN_FETCH, request.url)
        if not isinstance(answer, dict):
            raise SignerMissing("Douyin's SDK is not loaded in the page")
        headers = Headers(answer["headers"])
        body = answer["body"].encode("utf-8")
        headers.pop("Content-Encoding", None)  # fetch() gives the body decoded
        cls = responsetypes.from_args(headers=headers, url=answer["url"], body=body)
        return cls(url=answer["url"], status=answer["status"], headers=headers, body=body,
                   request=request)

    def refused(self, response: Response) -> bool:
        # an empty body or "blocked": how Douyin refuses a call (MediaCrawler)
        return response.status == 200 and response.body.strip() in (b"", b"blocked")

    def captcha(self, response: Response) -> bool:
        return False  # its 验证码中间页 comes as a page, read by the adapter


SITES: dict[str, SiteSigner] = {
    signer.name: signer for signer in (XiaohongshuSigner(), TikTokSigner(), DouyinSigner())}

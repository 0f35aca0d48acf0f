"""How a spider sends an adapter's `Fetch`: signed in a live page, or rendered instead.

One choice for every spider (the snapshot spider's tags, the backfill spider's timelines): a
fetch that carries a `SignSpec` is sent with the spec and its rendered fallback in its meta, and
the signing middleware (crawler/downloader/signing.py) signs it or sends the fallback when
signing is unavailable at run time; when signing is switched off, or the browser is
(`--no-browser`), the spider sends the fallback itself, or nothing (the browser it needs is off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crawler.downloader.signing import SIGN_META
from crawler.platforms.base import Fetch, SignSpec

__all__ = ["SIGN_META", "choose_fetch", "sign_meta"]


def choose_fetch(fetch: Fetch, *, signing: bool, browser: bool) -> Fetch | None:
    """The fetch to send for `fetch`: itself, its rendered fallback when signing is off or has
    no browser, or None when what is left needs the browser, which is disabled."""
    if fetch.sign is not None and fetch.sign.fallback is not None and not (signing and browser):
        fetch = fetch.sign.fallback  # signing is off, or has no browser: render instead
    if (fetch.render is not None or fetch.sign is not None) and not browser:
        return None
    return fetch


def sign_meta(sign: SignSpec, meta_of: Callable[[Fetch], dict[str, Any]]) -> dict[str, Any]:
    """`meta[SIGN_META]` of a signed fetch: the spec, and its rendered fallback as the request the
    spider would send (`meta_of` builds the spider's own meta for a fetch), which the signing
    middleware sends instead when signing is unavailable."""
    fallback = sign.fallback
    return {**sign.to_meta(), "fallback": None if fallback is None else {
        "url": fallback.url, "method": fallback.method, "body": fallback.body,
        "headers": dict(fallback.headers), "meta": meta_of(fallback)}}

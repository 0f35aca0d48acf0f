"""Scrapy responses as the adapters see them: plain `Page` data, no Scrapy types past here."""

from __future__ import annotations

from scrapy.http import Request, Response
from twisted.python.failure import Failure

from crawler import clock
from crawler.platforms.base import Captured, Page


def page_from_response(response: Response) -> Page:
    """The adapter's view of a Scrapy response (plain data, no Scrapy types); observed when the
    archive kept it (crawler/extensions/archive.py), or now when nothing was archived."""
    headers = {k.decode("latin-1").lower(): v[0].decode("latin-1") if v else ""
               for k, v in response.headers.items()}
    try:
        text = response.text
    except AttributeError:  # not a TextResponse (an empty or binary body)
        text = response.body.decode("utf-8", errors="replace")
    captured = tuple(Captured(**c) for c in response.meta.get("tagarchive_captured") or ())
    return Page(url=response.url, status=response.status, headers=headers, text=text,
                observed_at=response.meta.get("tagarchive_observed_at") or clock.now(),
                rendered=bool(response.meta.get("tagarchive_rendered")), captured=captured)


def failed_request(failure: Failure) -> Request:
    """The request a download errback's Failure is about (Scrapy sets it on the Failure)."""
    request: Request = failure.request  # type: ignore[attr-defined]  # Twisted doesn't declare it
    return request

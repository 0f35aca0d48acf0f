"""The project's own Scrapy signals, sent through `crawler.signals` like Scrapy's own."""

from __future__ import annotations

# A new run begins in this process (a worker's next batch): state kept per run starts over.
# Sent with no arguments; the dedupe pipeline forgets the keys it has seen.
run_started = object()

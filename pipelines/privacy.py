"""Privacy: the people behind the posts kept no more than the research needs (docs/privacy.md).

Second pipeline, after normalize (which reads each post's language from its raw text): applies
the mode in force (TAGARCHIVE_PRIVACY: pseudonymize, the default; redact; keep) with the
project's key (storage/pseudonymkey.py), and announces both (`privacy_in_force`) so the run's
record says which mode and key made its rows.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from scrapy.crawler import Crawler

from crawler.items import PageItems
from crawler.rules.privacy import DEFAULT_MODE, Privacy, privacy_for
from crawler.signals import privacy_in_force
from pipelines import RunPipeline
from storage import StorageError

logger = logging.getLogger(__name__)


class PrivacyPipeline(RunPipeline):
    """Pseudonymizes, redacts or keeps each post's author fields, mentions and author URL."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.mode = crawler.settings.get("TAGARCHIVE_PRIVACY") or DEFAULT_MODE
        self.key_file = crawler.settings.get("TAGARCHIVE_PSEUDONYM_KEY_FILE") or None
        self.rule = Privacy("keep")

    def start_run(self, run: Any) -> None:
        super().start_run(run)
        mode = self.mode
        try:
            self.rule, key_id = privacy_for(run.out, mode, self.key_file)
        except (ValueError, StorageError) as exc:
            # fail closed: the command line checked the key before the crawl, so this is a key
            # that vanished since; nothing about a person is stored rather than the raw names
            # (a throwaway key: ids that embed an author stay unique, linkable to nothing)
            logger.error("privacy: %s; this run's posts are stored redacted", exc)
            mode, key_id = "redact", None
            self.rule = Privacy(mode, secrets.token_bytes(32))
        self.crawler.signals.send_catch_log(privacy_in_force, mode=mode, key_id=key_id)

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            return self.each(item, self.rule.apply)  # the rule itself: no call between
        return self.rule.apply(item)

"""Privacy at ingest: what is kept about the people behind the posts (docs/privacy.md).

Modes:
- `pseudonymize` (the default): every author identifier and name becomes a keyed hash,
  HMAC-SHA256 under the project's key, truncated to 16 hex digits and prefixed `u_` — stable
  within a project, so posts still group by author, and unlinkable across projects. @mentions
  in the text and the author's name or id inside the post URL are replaced by the same hash.
- `redact`: author fields are dropped, mentions become `@[redacted]`, and a post URL that names
  its author is dropped (the post id stays, so the post can be collected again).
In both, a post id that embeds its author (Bluesky's `at://did:plc:…/app.bsky.feed.post/…`)
has the author replaced by the keyed hash: the id stays unique and stable within the project,
but no longer fetches the post (the WARC archive keeps the original).
- `keep`: everything as the platform showed it; an explicit opt-in, recorded in `runs`.
Nothing else about a person is stored in any mode: the items have no avatar, profile URL, bio,
IP location or gender fields, and the schemas refuse unknown columns.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from crawler.items import PostItem

MODES = ("pseudonymize", "redact", "keep")
DEFAULT_MODE = "pseudonymize"
PREFIX = "u_"
DIGITS = 16
REDACTED = "[redacted]"

# @handle as the platforms write it: letters, digits, _ . - (Mastodon/Bluesky add @host or dots);
# a trailing dot or dash is punctuation. Not inside an e-mail address or a word.
_MENTION = re.compile(r"(?<![\w@.])[@＠]([\w][\w.\-]*[\w]|[\w])(@[\w.\-]*\w)?")


class PrivacyModeError(ValueError):
    """A mode that is not one of MODES (a config or flag typo)."""


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise PrivacyModeError(f"privacy mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


@dataclass
class Privacy:
    """The rule in force for one run: its mode and, to pseudonymize, the project's key."""

    mode: str = DEFAULT_MODE
    key: bytes = b""
    _memo: dict[tuple[str | None, str], str] = field(default_factory=dict, repr=False)
    # HMAC-SHA256 with the key already absorbed: each token copies it (half the cost of
    # hmac.new per identifier, a profile cost of the crawl's thread with one author per post)
    _keyed: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.mode != "keep" and not self.key:
            raise PrivacyModeError(f"{self.mode} needs the project's key")
        self._keyed = hmac.new(self.key, digestmod=hashlib.sha256)

    def token(self, platform: str | None, value: str) -> str:
        """The pseudonym of one identifier on one platform."""
        memo_key = (platform, value)
        known = self._memo.get(memo_key)
        if known is None:
            # the same handle on two platforms is two people as far as the data can tell
            mac = self._keyed.copy()
            mac.update(f"{platform}\0{value}".encode())
            known = PREFIX + mac.hexdigest()[:DIGITS]
            if len(self._memo) < 65_536:
                self._memo[memo_key] = known
        return known

    def apply(self, item: Any) -> Any:
        """Bring one item to the mode in place (only posts carry people's data)."""
        if self.mode == "keep" or not isinstance(item, PostItem):
            return item
        # the longest first, so no name is replaced inside a longer one (sorted once a post)
        names = sorted(_identities(item), key=len, reverse=True)
        platform = item.platform
        item.post_id = self._embedded(platform, item.post_id, names)
        item.text = self._mentions(platform, item.text)
        item.url = self._url(platform, item.url, names)
        if self.mode == "redact":
            item.author_id = item.author_name = None
        else:
            item.author_id = self._hashed(platform, item.author_id)
            item.author_name = self._hashed(platform, item.author_name)
        item.author_aliases = None
        return item

    def _hashed(self, platform: str | None, value: str | None) -> str | None:
        return None if value is None else self.token(platform, value)

    def _mentions(self, platform: str | None, text: str | None) -> str | None:
        if not text or ("@" not in text and "＠" not in text):
            return text
        if self.mode == "redact":
            return _MENTION.sub("@" + REDACTED, text)
        return _MENTION.sub(lambda m: "@" + self.token(platform, m.group(1)), text)

    def _url(self, platform: str | None, url: str | None, names: list[str]) -> str | None:
        if self.mode == "redact" and url and any(n in url for n in names):
            return None
        return self._embedded(platform, url, names)

    def _embedded(self, platform: str | None, value: str | None,
                  names: list[str]) -> str | None:
        """`value` with every name of the author in it replaced by the author's hash; `names`
        come longest first (apply), so no name is replaced inside a longer one."""
        if not value:
            return value
        for name in names:
            if name in value:
                value = value.replace(name, self.token(platform, name))
        return value


def privacy_for(out: str, mode: str, key_file: str | None = None) -> tuple[Privacy, str | None]:
    """The rule for a run writing under `out`, and the id of the key it uses (None under
    `keep`). Raises PrivacyModeError or PseudonymKeyError, each one line."""
    check_mode(mode)
    if mode == "keep":
        return Privacy(mode), None
    from storage.backends import backend_for
    from storage.pseudonymkey import project_key

    key = project_key(backend_for(out).state_root(out), key_file=key_file)
    return Privacy(mode, key.secret), key.key_id


def _identities(item: PostItem) -> list[str]:
    """Every string that names the author: id, name, and the aliases the adapter saw (handle,
    DID); too-short ones are left out of URL matching (a 2-character name is in every URL)."""
    return list({v: None for v in (item.author_id, item.author_name,
                                   *(item.author_aliases or ()))
                 if isinstance(v, str) and len(v) >= 3})

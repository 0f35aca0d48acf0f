"""Privacy at ingest (crawler/rules/privacy.py) and the project's key (storage/pseudonymkey.py)."""

from __future__ import annotations

import hashlib
import hmac
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler.items import PostItem
from crawler.rules.privacy import Privacy, PrivacyModeError
from storage.pseudonymkey import KEY_ENV, PseudonymKeyError, project_key

KEY = b"k" * 32


def post(**more: object) -> PostItem:
    base: dict[str, object] = {
        "platform": "mastodon", "post_id": "1", "tag": "t", "source": "api",
        "observed_at": datetime.now(UTC), "author_id": "109876", "author_name": "alice",
        "url": "https://mastodon.example/@alice/1",
        "text": "hi @bob and @carol@other.example, mail me at x@y.example"}
    base.update(more)
    return PostItem(**base)  # type: ignore[arg-type]


def expected_token(key: bytes, platform: str, value: str) -> str:
    """HMAC-SHA256 of platform NUL value, 16 hex digits, as docs/privacy.md states."""
    digest = hmac.new(key, f"{platform}\0{value}".encode(), hashlib.sha256).hexdigest()
    return "u_" + digest[:16]


def test_pseudonymize_hashes_authors_mentions_and_the_url() -> None:
    item = Privacy("pseudonymize", KEY).apply(post())
    alice = expected_token(KEY, "mastodon", "alice")
    assert item.author_id == expected_token(KEY, "mastodon", "109876")
    assert item.author_name == alice
    assert item.url == f"https://mastodon.example/@{alice}/1"
    assert item.text == (f"hi @{expected_token(KEY, 'mastodon', 'bob')} and "
                         f"@{expected_token(KEY, 'mastodon', 'carol')}, mail me at x@y.example")
    for raw in ("alice", "109876", "bob", "carol"):
        assert raw not in f"{item.author_id}{item.author_name}{item.url}{item.text}"


def test_the_same_author_is_stable_within_a_key_and_differs_across_keys() -> None:
    one, two = Privacy("pseudonymize", KEY), Privacy("pseudonymize", b"z" * 32)
    assert one.apply(post()).author_id == one.apply(post(post_id="2")).author_id
    assert one.apply(post()).author_id != two.apply(post()).author_id
    # and across platforms: the same handle is not linked
    assert one.apply(post()).author_name != one.apply(post(platform="bluesky")).author_name


def test_aliases_the_adapter_saw_are_hashed_in_the_url_too() -> None:
    item = Privacy("pseudonymize", KEY).apply(post(
        platform="bluesky", author_id="did:plc:abc123", author_name="Alice A.",
        author_aliases=["alice.bsky.social"],
        url="https://bsky.app/profile/alice.bsky.social/post/3k"))
    assert item.url == ("https://bsky.app/profile/"
                        f"{expected_token(KEY, 'bluesky', 'alice.bsky.social')}/post/3k")
    assert item.author_aliases is None


def test_redact_drops_authors_and_a_url_that_names_them() -> None:
    item = Privacy("redact", KEY).apply(post())
    assert (item.author_id, item.author_name, item.url) == (None, None, None)
    assert item.text == "hi @[redacted] and @[redacted], mail me at x@y.example"
    kept = Privacy("redact", KEY).apply(post(url="https://mastodon.example/statuses/1"))
    assert kept.url == "https://mastodon.example/statuses/1"


def test_keep_keeps_everything() -> None:
    raw = post()
    item = Privacy("keep").apply(post())
    assert (item.author_id, item.author_name, item.url, item.text) == (
        raw.author_id, raw.author_name, raw.url, raw.text)


@pytest.mark.parametrize(("mode", "key"), [("pseudonymise", KEY), ("pseudonymize", b"")])
def test_a_bad_mode_or_a_missing_key_is_refused(mode: str, key: bytes) -> None:
    with pytest.raises(PrivacyModeError):
        Privacy(mode, key)


def test_the_project_key_is_made_once_owner_only_and_shared(tmp_path: Path) -> None:
    keys: list[bytes] = []
    barrier = threading.Barrier(4)

    def make() -> None:
        barrier.wait()
        keys.append(project_key(tmp_path, environ={}).secret)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    path = tmp_path / ".tagarchive" / "pseudonym.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().strip() == keys[0]
    assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]  # no temp file left


def test_the_environment_and_a_key_file_win(tmp_path: Path) -> None:
    given = project_key(tmp_path, environ={KEY_ENV: "e" * 40})
    assert (given.secret, given.origin) == (b"e" * 40, f"${KEY_ENV}")
    assert "e" * 40 not in repr(given)
    keyfile = tmp_path / "my.key"
    keyfile.write_bytes(b"f" * 32 + b"\n")
    assert project_key(tmp_path, key_file=keyfile, environ={}).secret == b"f" * 32
    assert not (tmp_path / ".tagarchive").exists()
    with pytest.raises(PseudonymKeyError, match="at least 16"):
        project_key(tmp_path, environ={KEY_ENV: "short"})
    with pytest.raises(PseudonymKeyError, match="cannot read key file"):
        project_key(tmp_path, key_file=tmp_path / "missing.key", environ={})


def test_an_id_that_embeds_its_author_keeps_no_raw_author() -> None:
    did = "did:plc:abc123xyz"
    raw = f"at://{did}/app.bsky.feed.post/3kabc"
    token = expected_token(KEY, "bluesky", did)
    for mode in ("pseudonymize", "redact"):
        item = Privacy(mode, KEY).apply(post(platform="bluesky", post_id=raw, author_id=did,
                                             url=None))
        assert item.post_id == f"at://{token}/app.bsky.feed.post/3kabc", mode
    kept = Privacy("keep").apply(post(platform="bluesky", post_id=raw, author_id=did))
    assert kept.post_id == raw

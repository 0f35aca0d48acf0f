"""What the ground truth needs to know about one platform, and the generic answers.

Each replica platform module declares a `PlatformTruth` subclass (its App's `truth` attribute):
the anchored records, the tags registered up front, the curve ratios, and the formats of its
ids, authors and posts. `replica.world` asks the registry (`replica.platforms.TRUTHS`) and never
branches on a platform name; a platform with no module of its own gets `GENERIC`.
Every draw here hashes the same parts as before the split, so the answers are unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from types import MappingProxyType
from typing import Never

__all__ = [
    "ANCHOR_AT",
    "B32",
    "B32_SORT",
    "B64URL",
    "GENERIC",
    "Anchor",
    "ChineseTruth",
    "PlatformTruth",
    "digest",
    "encode",
    "int_of",
    "object_id",
    "pick",
    "registry",
    "snowflake",
    "truth_of",
    "unit",
]

# ---------------------------------------------------------------------------------------------
# hashing: everything random is derived from sha256 so runs are identical across processes


def digest(*parts: object) -> bytes:
    """sha256 of the parts joined by a separator no tag contains."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).digest()


def unit(*parts: object) -> float:
    """Uniform float in [0, 1) derived from parts."""
    return int.from_bytes(digest(*parts)[:8], "big") / 2.0**64


def int_of(*parts: object) -> int:
    """A 256-bit integer derived from parts."""
    return int.from_bytes(digest(*parts), "big")


def pick(seq: Sequence[str], *parts: object) -> str:
    """One element of seq chosen by the parts."""
    return seq[int_of(*parts) % len(seq)]


# ---------------------------------------------------------------------------------------------
# id formats shared by several platforms


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
B32_SORT = "234567abcdefghijklmnopqrstuvwxyz"  # atproto TIDs: base32, sortable alphabet
B32 = "abcdefghijklmnopqrstuvwxyz234567"  # did:plc identifiers


def snowflake(ts: float, *parts: object) -> str:
    """Creation second in the top 32 bits, 32 random bits below."""
    # TikTok ids carry the creation second in their top 32 bits, which is why 2025 ids start
    # with "74…" and have 19 digits.
    return str((int(ts) << 32) | (int_of(*parts) & 0xFFFFFFFF))


def object_id(ts: float, *parts: object) -> str:
    """A MongoDB ObjectId: 4 bytes of creation time then 8 bytes of entropy (XHS ids)."""
    return f"{int(ts) & 0xFFFFFFFF:08x}" + digest(*parts).hex()[:16]


def encode(n: int, alphabet: str, length: int) -> str:
    """`n` in `alphabet`, most significant digit first, padded to `length`."""
    base = len(alphabet)
    out = []
    for _ in range(length):
        n, r = divmod(n, base)
        out.append(alphabet[r])
    return "".join(reversed(out))


# ---------------------------------------------------------------------------------------------
# names and texts


EN_ADJ = ("sunny", "lazy", "cosmic", "quiet", "wild", "tiny", "golden", "urban", "mellow", "retro")
EN_NOUN = ("panda", "fox", "otter", "comet", "noodle", "pixel", "koala", "river", "maple", "robot")
ZH_FOOD = ("火锅", "奶茶", "草莓", "芒果", "饺子", "可颂", "抹茶", "烤鸭")
ZH_ANIMAL = ("猫咪", "小熊", "兔子", "柴犬", "企鹅", "海豚", "松鼠", "考拉")
EN_PHRASES = (
    "day in my life",
    "trying this for the first time",
    "no way this worked",
    "pov: you finally found it",
    "storytime",
    "honest review",
    "part 2 as promised",
    "tutorial you asked for",
)
EN_EXTRA = ("fyp", "foryou", "viral", "trending", "learnontiktok")
ZH_TITLES = (
    "新人报到，请多关照",
    "今天的小确幸",
    "第一次发笔记",
    "真心推荐给大家",
    "周末打卡",
    "踩坑记录分享",
    "保姆级教程来了",
    "一周穿搭合集",
)


def byte_pick(seq: Sequence[str], d: bytes, i: int) -> str:
    """One element of seq chosen by byte i of an author digest."""
    return seq[d[i] % len(seq)]


def born(d: bytes) -> float:
    """Where in the platform's history an author joined, in [0, 1), from its digest."""
    return int.from_bytes(d[:4], "big") / 2.0**32


def en_names(d: bytes) -> tuple[str, str]:
    """(adjective, noun) an English-speaking author's handle is made of."""
    return byte_pick(EN_ADJ, d, 5), byte_pick(EN_NOUN, d, 6)


# ---------------------------------------------------------------------------------------------
# records


# Reference instant of the anchored records below (PlatformTruth.anchors).
ANCHOR_AT = datetime(2025, 1, 15, tzinfo=UTC)


@dataclass(frozen=True)
class Anchor:
    """A record with a known public value: the curve is fitted to pass through it at `at`."""

    name: str
    at: datetime
    views: int
    posts: int
    participants: int
    t0: datetime
    width_hours: float
    tail: float


# Empty, so its value type is whatever a field needs: Never fits every Mapping[str, V].
_EMPTY: Mapping[str, Never] = MappingProxyType({})


class PlatformTruth:
    """A platform's part of the ground truth; the defaults are the generic platform's."""

    # normalized tag -> anchored record
    anchors: Mapping[str, Anchor] = _EMPTY
    # Tags whose ids are registered up front so URLs built from their ids resolve even before
    # anyone searched for them (e.g. after a replica restart with the same seed).
    catalog: tuple[str, ...] = ()
    # range of views per post [INF]; platforms that show no views still get a views curve
    views_per_post: tuple[float, float] = (50.0, 800.0)
    # range of 讨论 per post where discussions count more than posts, else None
    discussions_per_post: tuple[float, float] | None = None
    # normalized tag -> counters served frozen (a finished topic whose real values are known)
    frozen: Mapping[str, Mapping[str, int]] = _EMPTY
    # normalized tag -> topic id known from a real sample
    fixed_ids: Mapping[str, str] = _EMPTY

    def topic_ids(self, seed: int, platform: str, key: str, birth: float) -> tuple[str, str | None]:
        """(topic_id, page_id) of a tag not in `fixed_ids`; page_id is None but on XHS."""
        # Generic platforms get ObjectId-style ids until their module needs something else.
        return object_id(birth, seed, platform, key, "topic_id"), None

    def desc(self, seed: int, platform: str, key: str) -> str:
        """The topic's description line (only TikTok has one)."""
        return ""

    def author(self, d: bytes, author_key: int) -> tuple[str, str, str]:
        """(id, unique id, nickname) of the author with digest `d`."""
        adj, noun = en_names(d)
        author_id = str((int(1_500_000_000 + born(d) * 2e8) << 32)
                        | int.from_bytes(d[16:20], "big"))
        return author_id, f"{adj}_{noun}{author_key % 1000}", f"{adj.title()} {noun.title()}"

    def post_id(self, created: int, entropy: int) -> str:
        """A post id in the platform's own format, from its creation second and 64 random bits."""
        return str((created << 32) | (entropy & 0xFFFFFFFF))

    def post(self, created: int, entropy: int, name: str,
             u: Sequence[float]) -> tuple[str, str, str]:
        """(post id, title, text) of a post under tag `name`; `u` are its uniform draws."""
        title = EN_PHRASES[int(u[1] * len(EN_PHRASES))]
        extra = EN_EXTRA[int(u[2] * len(EN_EXTRA))]
        return self.post_id(created, entropy), title, f"{title} #{name} #{extra}"


class ChineseTruth(PlatformTruth):
    """The mainland platforms' shared style: numeric user ids, Chinese nicknames and titles."""

    uid_digits = 10  # Weibo uids and Bilibili mids [INF]

    def author(self, d: bytes, author_key: int) -> tuple[str, str, str]:
        digits = self.uid_digits
        uid = str(10 ** (digits - 1) + int.from_bytes(d[8:16], "big") % (9 * 10 ** (digits - 1)))
        food, animal = byte_pick(ZH_FOOD, d, 5), byte_pick(ZH_ANIMAL, d, 6)
        nickname = f"用户{uid[-7:]}" if d[4] < 96 else f"爱吃{food}的{animal}"
        return uid, uid, nickname

    def text(self, name: str, title: str) -> str:
        """A post's text: its title and the tag."""
        return f"{title} #{name}"

    def post(self, created: int, entropy: int, name: str,
             u: Sequence[float]) -> tuple[str, str, str]:
        title = ZH_TITLES[int(u[1] * len(ZH_TITLES))]
        return self.post_id(created, entropy), title, self.text(name, title)


GENERIC = PlatformTruth()


@cache
def registry() -> Mapping[str, PlatformTruth]:
    # The platform modules serve this world, so they import it: the registry is imported on
    # first use rather than at load time, which would be circular.
    from replica.platforms import TRUTHS

    return TRUTHS


def truth_of(platform: str) -> PlatformTruth:
    """The platform's part of the ground truth (replica/<platform>.py), GENERIC for others."""
    return registry().get(platform, GENERIC)

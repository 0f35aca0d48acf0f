"""What the ground truth needs to know about one platform, and the generic answers.

Each replica platform module declares a `PlatformTruth` subclass (its App's `truth` attribute):
the anchored records, the tags registered up front, the curve ratios, and the formats of its
ids, authors and posts. `replica.world` asks the registry (`replica.platforms.TRUTHS`) and never
branches on a platform name; a platform with no module of its own gets `GENERIC`.
Every draw here hashes the same parts as before the split, so the answers are unchanged.
"""

from __future__ import annotations

import hashlib
import math
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

# The January 2025 story: US users arriving on Xiaohongshu ("TikTok refugees") and posting in
# English, some through a translator, while the Chinese platforms' own users welcome them.
EN_ARRIVALS = (
    "Hi from Ohio, TikTok refugee here",
    "First post on RedNote, please be nice",
    "Teaching English in exchange for cat pictures",
    "Trying to learn Chinese, send help",
    "Americans on RedNote, day one",
    "My cat says hello to Xiaohongshu",
    "What should a new user post first?",
    "Cooking dinner for my new friends here",
)
# an English post run through a translator, both texts shown, as many arrivals posted [INF]
MT_ARRIVALS = (
    "Hello everyone, I am from America 大家好，我来自美国",
    "Nice to meet you, my Chinese friends 很高兴认识你们，我的中国朋友",
    "Thank you for the warm welcome 谢谢你们的热情欢迎",
)
ZH_WELCOME = ("欢迎美国朋友来小红书", "大家好，我来自中国", "第一次和外国网友聊天",
              "中美网友互相抄作业")
CO_TAGS_EN = ("rednote", "tiktokrefugee", "tiktokban", "xiaohongshu", "newhere")
CO_TAGS_ZH = ("小红书", "美国网友", "中美对账", "tiktok难民", "新人报到")
# English share of new posts on the Chinese platforms: a few before the arrival, then a rise
# centred on 14 Jan 2025 [INF: the shape; the rise itself is the reported story]
_ARRIVAL_MID = 1_736_812_800  # 2025-01-14T00:00:00Z
_ARRIVAL_WIDTH_S = 12 * 3600


def english_share(created: int, before: float = 0.03, after: float = 0.45) -> float:
    """The share of posts created at `created` (epoch seconds) that are written in English."""
    x = max(-60.0, min(60.0, (created - _ARRIVAL_MID) / _ARRIVAL_WIDTH_S))
    return before + (after - before) / (1.0 + math.exp(-x))


def story_title(created: int, u: Sequence[float], chinese_platform: bool) -> tuple[str, str]:
    """(title, co-tag) of a post: on a Chinese platform English (some machine-translated) in the
    share english_share() gives, else its own Chinese titles; elsewhere English, with a few
    Chinese welcomes after the arrival. `u` are the post's uniform draws (u[6] and u[7] are
    used nowhere else)."""
    if chinese_platform:
        english = u[7] < english_share(created)
    else:
        english = u[7] >= english_share(created, before=0.0, after=0.1)
    co_zh = CO_TAGS_ZH[int(u[6] * 97) % len(CO_TAGS_ZH)]
    pool: Sequence[str]
    if not english:
        pool = ZH_TITLES if chinese_platform else ZH_WELCOME
        return pool[int(u[1] * len(pool))], co_zh
    pool = MT_ARRIVALS if u[6] < 0.2 else EN_ARRIVALS
    return pool[int(u[1] * len(pool))], CO_TAGS_EN[int(u[6] * 89) % len(CO_TAGS_EN)]


def with_co_tag(text: str, name: str, co_tag: str) -> str:
    """The text with one more tag, unless it is the post's own."""
    return text if co_tag == name else f"{text} #{co_tag}"


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
        """(post id, title, text) of a post under tag `name`; `u` are its uniform draws.
        English phrases with a platform tag, and after the January 2025 arrival a few Chinese
        welcomes (story_title)."""
        title = EN_PHRASES[int(u[1] * len(EN_PHRASES))]
        extra = EN_EXTRA[int(u[2] * len(EN_EXTRA))]
        if u[7] < english_share(created, before=0.0, after=0.1):
            title, extra = story_title(created, u, chinese_platform=False)
        return self.post_id(created, entropy), title, with_co_tag(f"{title} #{name}", name, extra)


class ChineseTruth(PlatformTruth):
    """The mainland platforms' shared style: numeric user ids, Chinese nicknames and titles."""

    uid_digits = 10  # Weibo uids and Bilibili mids [INF]
    co_tags = True  # a second tag in the text (Weibo's served text is rebuilt from the title)

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
        title, co_tag = story_title(created, u, chinese_platform=True)
        text = self.text(name, title)
        if self.co_tags:
            text = with_co_tag(text, name, co_tag)
        return self.post_id(created, entropy), title, text


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

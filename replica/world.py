"""Deterministic ground truth for the replica: a pure function of seed, platform, tag and time."""

from __future__ import annotations

import hashlib
import math
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from replica.clock import ReplicaClock

__all__ = [
    "LIST_CAP",
    "VARIANTS",
    "DayTruth",
    "Failure",
    "PostTruth",
    "TagNotFound",
    "TopicTruth",
    "World",
    "display_count",
    "display_parts",
    "normalize_tag",
]

# Reference instant the generic curves are calibrated at (the default clock start).
T_REF = datetime(2025, 1, 13, tzinfo=UTC)
_HOUR = 3600.0
_DAY = 86400.0

# How many posts any listing API will page through [INF]: the real feeds are capped (XHS keyword
# search near 220), the exact TikTok/XHS topic caps are unknown.
LIST_CAP = 300
# Tags with at most this many posts are listed newest-first only; the hot/new mix needs a pool.
_SMALL_POOL = 120
_RECENT_GAP = 600.0  # seconds between the "recent" picks of the mixed feed

VARIANTS = frozenset(
    {
        "normal",
        "not_found",
        "login_wall",
        "captcha",
        "layout_changed",
        "rate_limited",
        "server_error",
        "csr",
        "ssr",
        "override",
        "ip_block",
        # YouTube: the EU consent interstitial, and which of the two hashtag header forms to serve
        "consent",
        "hashtag_header",
        "page_header",
    }
)
_OVERRIDABLE = ("views", "posts", "discussions", "participants")
_DEFAULT_PARAMS: dict[str, dict[str, int]] = {
    "rate_limited": {"times": 1, "retry_after": 1},
    "server_error": {"times": 2, "status": 503},
}


class TagNotFound(LookupError):
    """Raised by World.topic() for a tag that does not exist on the platform."""


def normalize_tag(tag: str) -> str:
    """Key used for every tag comparison: NFKC, case-folded, without '#' and outer spaces."""
    return unicodedata.normalize("NFKC", tag).strip().lstrip("#").strip().casefold()


# ---------------------------------------------------------------------------------------------
# display helpers


def display_parts(n: int, locale: str = "zh") -> tuple[str, str]:
    """Split a count into (number, unit) the way the platforms abbreviate it ("1.2", "亿")."""
    n = int(n)
    if n < 0:
        raise ValueError("counts are non-negative")
    if locale.lower().startswith("zh"):
        units = ((10**8, "亿"), (10**4, "万"))
    elif locale.lower().startswith("en"):
        units = ((10**9, "B"), (10**6, "M"), (10**3, "K"))
    else:
        raise ValueError(f"unknown locale {locale!r}")
    for size, unit in units:
        if n >= size:
            # Integer tenths: truncation (never rounding) is what keeps 120_999_999 at 1.2亿.
            tenths = n * 10 // size
            whole, frac = divmod(tenths, 10)
            return (f"{whole}.{frac}" if frac else str(whole)), unit
    return str(n), ""


def display_count(n: int, locale: str = "zh") -> str:
    """Abbreviated count: "1.2亿", "281.2万", "9999" (zh) or "1.1M", "140.2K", "5.4B" (en)."""
    number, unit = display_parts(n, locale)
    return number + unit


# ---------------------------------------------------------------------------------------------
# hashing: everything random is derived from sha256 so runs are identical across processes


def _digest(*parts: object) -> bytes:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).digest()


def _unit(*parts: object) -> float:
    """Uniform float in [0, 1) derived from parts."""
    return int.from_bytes(_digest(*parts)[:8], "big") / 2.0**64


def _int(*parts: object) -> int:
    return int.from_bytes(_digest(*parts), "big")


def _pick(seq: tuple[str, ...], *parts: object) -> str:
    return seq[_int(*parts) % len(seq)]


# ---------------------------------------------------------------------------------------------
# curves


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


@dataclass(frozen=True)
class _Shape:
    """Growth curve g(t) = sigmoid(x) + tail * softplus(x), x = (t - t0) / width, plus scales."""

    t0: float
    width: float
    tail: float
    views_k: float
    posts_k: float
    participants_k: float
    birth: float  # creation instant used for snowflake/ObjectId style ids

    def g(self, ts: float) -> float:
        x = (ts - self.t0) / self.width
        # Both terms increase with x, so every floor(k * g) counter is monotonic non-decreasing;
        # the softplus tail keeps counts growing after the logistic burst saturates.
        return _sigmoid(x) + self.tail * _softplus(x)


@dataclass(frozen=True)
class _Anchor:
    name: str
    at: datetime
    views: int
    posts: int
    participants: int
    t0: datetime
    width_hours: float
    tail: float


# Records with a known public value. The XHS one is the January 2025 "TikTok refugees" topic
# shown as "1.2亿浏览 · 281.2万讨论"; the exact integers behind the display, the curve shape and
# the TikTok figures are invented [INF] to match "hundreds of millions of views".
_ANCHOR_AT = datetime(2025, 1, 15, tzinfo=UTC)
_ANCHORS: dict[tuple[str, str], _Anchor] = {
    ("xiaohongshu", "tiktok难民"): _Anchor(
        name="TikTok难民",
        at=_ANCHOR_AT,
        views=122_480_000,
        posts=2_812_480,
        participants=1_906_300,
        t0=datetime(2025, 1, 14, 8, tzinfo=UTC),
        width_hours=20.0,
        tail=0.08,
    ),
    ("tiktok", "tiktokrefugee"): _Anchor(
        name="tiktokrefugee",
        at=_ANCHOR_AT,
        views=468_200_000,
        posts=1_143_000,
        participants=802_400,
        t0=datetime(2025, 1, 14, 2, tzinfo=UTC),
        width_hours=22.0,
        tail=0.1,
    ),
    # one instance's share of the same wave, as Mastodon's Tag history would count it [INF];
    # Mastodon shows no views, so they stay zero
    ("mastodon", "tiktokrefugee"): _Anchor(
        name="TikTokRefugee",
        at=_ANCHOR_AT,
        views=0,
        posts=3_120,
        participants=1_870,
        t0=datetime(2025, 1, 14, 6, tzinfo=UTC),
        width_hours=30.0,
        tail=0.05,
    ),
}

# Tags whose ids are registered up front so /page/topics/{page_id} and item_list?challengeID=
# resolve even before anyone searched for them (e.g. after a replica restart with the same seed).
_CATALOG: dict[str, tuple[str, ...]] = {
    "xiaohongshu": ("TikTok难民", "健身", "Python", "帅哥", "旅行", "美食", "穿搭", "读书"),
    "tiktok": ("tiktokrefugee", "fyp", "xiaohongshu", "booktok", "python", "cooking"),
    "douyin": ("TikTok难民", "美食", "旅行", "健身"),
    "bilibili": ("寒假不咕咕", "TikTok难民", "原神", "美食"),
}

# views / posts ratio ranges per platform [INF]: TikTok videos gather many views each, an XHS note
# far fewer (the anchor gives about 44).
_VIEWS_PER_POST = {"tiktok": (150.0, 2500.0), "xiaohongshu": (20.0, 150.0)}
# Platforms that show no views still get a views curve; a steep ratio keeps their post counts at
# the scale of one Mastodon instance or of Bluesky search [INF].
_VIEWS_PER_POST.update({"mastodon": (2_000.0, 20_000.0), "bluesky": (500.0, 5000.0)})
_DEFAULT_VIEWS_PER_POST = (50.0, 800.0)
# Douyin, Weibo and Bilibili [INF ratios]: a Douyin video gathers views like a TikTok one, Weibo
# "阅读" counts every read of every post, the Bilibili sample has about 12,700 views per 动态.
_VIEWS_PER_POST.update(
    {"douyin": (200.0, 3000.0), "weibo": (500.0, 6000.0), "bilibili": (2000.0, 15000.0)}
)
# Bilibili's "讨论" counts replies as well as posts (动态): 7 to 427 per post in the samples of
# PLATFORMS §5.2 and bilibili-API-collect, 16.7 for topic 8995; this range is [INF].
_DISCUSSIONS_PER_POST = {"bilibili": (5.0, 40.0)}
# Records served frozen: Bilibili topic 8995 "寒假不咕咕" is a finished 2022 topic whose real
# details/top response is the sample in PLATFORMS §5.2, so its counters never move.
_FROZEN: dict[tuple[str, str], dict[str, int]] = {
    ("bilibili", "寒假不咕咕"): {"views": 488_338_287, "posts": 38_483, "discussions": 642_172},
}
_FIXED_IDS: dict[tuple[str, str], str] = {("bilibili", "寒假不咕咕"): "8995"}
_CN_PLATFORMS = frozenset({"douyin", "weibo", "bilibili"})


def _platform_values(seed: int, platform: str, key: str, values: dict[str, int]) -> dict[str, int]:
    """The generic counters with the platform-specific ones (Bilibili 讨论, frozen records)."""
    out = dict(values)
    ratio = _DISCUSSIONS_PER_POST.get(platform)
    if ratio is not None:
        lo, hi = ratio
        per_post = lo * (hi / lo) ** _unit(seed, platform, key, "discussions")
        out["discussions"] = math.floor(out["posts"] * per_post)  # monotonic, as posts is
    out.update(_FROZEN.get((platform, key), {}))
    out["participants"] = min(out["posts"], out["participants"])
    return out


@lru_cache(maxsize=4096)
def _shape(seed: int, platform: str, key: str) -> _Shape:
    anchor = _ANCHORS.get((platform, key))
    ref = T_REF.timestamp()
    if anchor is not None:
        # Anchors pin the value at a given instant, independent of the seed.
        t0 = anchor.t0.timestamp()
        width = anchor.width_hours * _HOUR
        base = _Shape(t0, width, anchor.tail, 1.0, 1.0, 1.0, t0 - 2 * _DAY)
        at = base.g(anchor.at.timestamp())
        return _Shape(
            t0,
            width,
            anchor.tail,
            anchor.views / at,
            anchor.posts / at,
            anchor.participants / at,
            base.birth,
        )
    u = lambda name: _unit(seed, platform, key, "shape", name)  # noqa: E731
    width = (7.0 + 113.0 * u("width")) * _DAY
    # The midpoint lies at most one width after T_REF so g(T_REF) >= sigmoid(-1) and the scale
    # below cannot explode later on.
    t0 = ref - 365.0 * _DAY * u("t0") + width * u("t0_late")
    tail = 0.02 + 0.28 * u("tail")
    views_ref = 10.0 ** (4.0 + 5.7 * u("views"))  # 1e4 .. 5e9 views at T_REF
    lo, hi = _VIEWS_PER_POST.get(platform, _DEFAULT_VIEWS_PER_POST)
    views_per_post = lo * (hi / lo) ** u("ratio")
    participant_share = 0.55 + 0.37 * u("participants")
    probe = _Shape(t0, width, tail, 1.0, 1.0, 1.0, 0.0)
    views_k = views_ref / probe.g(ref)
    posts_k = views_k / views_per_post
    birth = t0 - (4.0 + 4.0 * u("birth")) * width
    return _Shape(t0, width, tail, views_k, posts_k, posts_k * participant_share, birth)


def _count(k: float, shape: _Shape, ts: float) -> int:
    return max(0, math.floor(k * shape.g(ts)))


@lru_cache(maxsize=200_000)
def _ordinal_ts(seed: int, platform: str, key: str, ordinal: int) -> int:
    """First whole second at which the tag had more than `ordinal` posts (post creation time).

    Independent of "now", so a post keeps its id and timestamp across snapshots.
    """
    shape = _shape(seed, platform, key)
    lo = math.floor(shape.t0 - 80.0 * shape.width)
    hi = math.ceil(shape.t0 + shape.width)
    while _count(shape.posts_k, shape, hi) <= ordinal:
        hi += math.ceil(hi - lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _count(shape.posts_k, shape, mid) > ordinal:
            hi = mid
        else:
            lo = mid
    return hi


# ---------------------------------------------------------------------------------------------
# ids and names


def _snowflake(ts: float, *parts: object) -> str:
    # TikTok ids carry the creation second in their top 32 bits, which is why 2025 ids start
    # with "74…" and have 19 digits.
    return str((int(ts) << 32) | (_int(*parts) & 0xFFFFFFFF))


def _object_id(ts: float, *parts: object) -> str:
    # XHS ids are MongoDB ObjectIds: 4 bytes of creation time then 8 bytes of entropy.
    return f"{int(ts) & 0xFFFFFFFF:08x}" + _digest(*parts).hex()[:16]


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B32_SORT = "234567abcdefghijklmnopqrstuvwxyz"  # atproto TIDs: base32, sortable alphabet
_B32 = "abcdefghijklmnopqrstuvwxyz234567"  # did:plc identifiers
# Instagram media pks: milliseconds since this epoch in the bits above 23 [INF, widely reported]
_IG_EPOCH_MS = 1_314_220_021_721


def _encode(n: int, alphabet: str, length: int) -> str:
    """`n` in `alphabet`, most significant digit first, padded to `length`."""
    base = len(alphabet)
    out = []
    for _ in range(length):
        n, r = divmod(n, base)
        out.append(alphabet[r])
    return "".join(reversed(out))


def instagram_code(pk: int) -> str:
    """Instagram's shortcode (the /p/<code>/ part): the media pk in URL-safe base64 digits."""
    code = ""
    while pk:
        pk, r = divmod(pk, 64)
        code = _B64URL[r] + code
    return code or "A"


_EN_ADJ = ("sunny", "lazy", "cosmic", "quiet", "wild", "tiny", "golden", "urban", "mellow", "retro")
_EN_NOUN = ("panda", "fox", "otter", "comet", "noodle", "pixel", "koala", "river", "maple", "robot")
_ZH_FOOD = ("火锅", "奶茶", "草莓", "芒果", "饺子", "可颂", "抹茶", "烤鸭")
_ZH_ANIMAL = ("猫咪", "小熊", "兔子", "柴犬", "企鹅", "海豚", "松鼠", "考拉")
_EN_PHRASES = (
    "day in my life",
    "trying this for the first time",
    "no way this worked",
    "pov: you finally found it",
    "storytime",
    "honest review",
    "part 2 as promised",
    "tutorial you asked for",
)
_EN_EXTRA = ("fyp", "foryou", "viral", "trending", "learnontiktok")
_ZH_TITLES = (
    "新人报到，请多关照",
    "今天的小确幸",
    "第一次发笔记",
    "真心推荐给大家",
    "周末打卡",
    "踩坑记录分享",
    "保姆级教程来了",
    "一周穿搭合集",
)
_TT_DESCS = (
    "",
    "Share your moments with this hashtag.",
    "Watch the latest videos about this topic.",
)
_XHS_RELATED = ("日常", "分享", "攻略", "推荐")


@lru_cache(maxsize=50_000)
def _author(seed: int, platform: str, author_key: int) -> tuple[str, str, str]:
    """(id, unique id, nickname) of one of a platform's 20k simulated authors."""
    d = _digest(seed, platform, "author", author_key)
    born = int.from_bytes(d[:4], "big") / 2.0**32
    pick = lambda seq, i: seq[d[i] % len(seq)]  # noqa: E731
    if platform in _CN_PLATFORMS:
        # numeric user ids: 10 digits for Weibo uids and Bilibili mids, 11 for Douyin [INF]
        digits = 11 if platform == "douyin" else 10
        uid = str(10 ** (digits - 1) + int.from_bytes(d[8:16], "big") % (9 * 10 ** (digits - 1)))
        food, animal = pick(_ZH_FOOD, 5), pick(_ZH_ANIMAL, 6)
        nickname = f"用户{uid[-7:]}" if d[4] < 96 else f"爱吃{food}的{animal}"
        return uid, uid, nickname
    if platform == "xiaohongshu":
        author_id = f"{int(1_600_000_000 + born * 1e8):08x}{d[8:16].hex()}"
        if d[4] < 128:
            nickname = f"小红薯{author_id[-6:].upper()}"
        else:
            nickname = f"爱吃{pick(_ZH_FOOD, 5)}的{pick(_ZH_ANIMAL, 6)}"
        return author_id, author_id, nickname
    author_id = str((int(1_500_000_000 + born * 2e8) << 32) | int.from_bytes(d[16:20], "big"))
    adj, noun = pick(_EN_ADJ, 5), pick(_EN_NOUN, 6)
    joined = int(1_500_000_000 + born * 2e8)
    if platform == "youtube":
        channel = "UC" + _encode(int.from_bytes(d[8:24], "big"), _B64URL, 22)
        return channel, f"@{adj}{noun}{author_key % 1000}", f"{adj.title()} {noun.title()}"
    if platform == "instagram":
        pk = str(int(born * 6e10) + 1_000_000)
        return pk, f"{adj}.{noun}{author_key % 1000}", f"{adj.title()} {noun.title()}"
    if platform == "mastodon":
        account_id = str((joined * 1000) << 16 | int.from_bytes(d[16:18], "big"))
        return account_id, f"{adj}_{noun}{author_key % 1000}", f"{adj.title()} {noun.title()}"
    if platform == "bluesky":
        did = "did:plc:" + _encode(int.from_bytes(d[8:24], "big"), _B32, 24)
        handle = f"{adj}-{noun}{author_key % 1000}.bsky.social"
        return did, handle, f"{adj.title()} {noun.title()}"
    return author_id, f"{adj}_{noun}{author_key % 1000}", f"{adj.title()} {noun.title()}"


def _id_key(post_id: str) -> tuple[int, int | str]:
    """Sort key of a post id: numeric ids by value, others (Bluesky TIDs) as sortable text."""
    return (0, int(post_id)) if post_id.isdigit() else (1, post_id)


def _post_id(platform: str, created: int, entropy: int) -> str:
    """A post id in the platform's own format, from its creation second and 64 random bits."""
    if platform == "youtube":
        return _encode(entropy, _B64URL, 11)  # video ids: 11 URL-safe base64 digits
    if platform == "instagram":
        return str(((created * 1000 - _IG_EPOCH_MS) << 23) | (entropy & 0x7FFFFF))
    if platform == "mastodon":
        return str(((created * 1000) << 16) | (entropy & 0xFFFF))  # Mastodon's snowflake ids
    if platform == "bluesky":
        # the record key is a TID: microseconds since the epoch, then a 10-bit clock id
        micros = created * 1_000_000 + entropy % 1_000_000
        return _encode((micros << 10) | (entropy >> 54), _B32_SORT, 13)
    return str((created << 32) | (entropy & 0xFFFFFFFF))


# ---------------------------------------------------------------------------------------------
# public data


@dataclass(frozen=True)
class TopicTruth:
    """Ground-truth counters of one tag at one simulated instant.

    `discussions` is the number of posts/notes (XHS "讨论" is its notes count, TikTok has no
    separate figure) so it equals `posts` unless overridden; `participants` is distinct
    authors [INF].
    """

    platform: str
    tag: str
    name: str
    topic_id: str
    page_id: str | None
    views: int
    posts: int
    discussions: int
    participants: int
    at: datetime
    desc: str = ""


@dataclass(frozen=True)
class PostTruth:
    """One public post under a tag as the platform currently shows it."""

    id: str
    ordinal: int
    author_id: str
    author_unique_id: str
    author_nickname: str
    title: str
    text: str
    created_at: datetime
    likes: int
    plays: int
    comments: int
    shares: int
    collects: int


@dataclass(frozen=True)
class DayTruth:
    """Posts and distinct posting accounts of one UTC day (Mastodon's `history` entries)."""

    day: datetime  # midnight UTC
    posts: int
    participants: int


@dataclass(frozen=True)
class Failure:
    """A transient failure a variant wants served instead of the real response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""


class World:
    """Deterministic ground truth plus per-tag test variants, driven by a ReplicaClock."""

    def __init__(self, seed: int = 2025, clock: ReplicaClock | None = None) -> None:
        self.seed = int(seed)
        self.clock = clock if clock is not None else ReplicaClock()
        self._lock = threading.Lock()
        self._variants: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._by_id: dict[tuple[str, str], str] = {}
        # Pages are re-requested many times per simulated hour; the lists are pure functions of
        # their arguments, so memoising them is safe.
        self._posts_cached = lru_cache(maxsize=1024)(self._posts)
        for platform, names in _CATALOG.items():
            for name in names:
                self.register(platform, name)

    # -- time ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def tick_index(self) -> int:
        """Number of whole clock steps since the Unix epoch; changes exactly when ticked."""
        return int(self.now().timestamp() // (self.clock.step / timedelta(seconds=1)))

    def unit(self, *parts: object) -> float:
        """Deterministic uniform float in [0, 1) for this seed and the given parts."""
        return _unit(self.seed, *parts)

    # -- identity -----------------------------------------------------------------------------

    def display_name(self, platform: str, tag: str) -> str:
        platform = platform.lower()
        key = normalize_tag(tag)
        anchor = _ANCHORS.get((platform, key))
        if anchor is not None:
            return anchor.name
        for name in _CATALOG.get(platform, ()):
            if normalize_tag(name) == key:
                return name
        return unicodedata.normalize("NFKC", tag).strip().lstrip("#").strip()

    def ids(self, platform: str, tag: str) -> tuple[str, str | None]:
        """(topic_id, page_id) of a tag; time-independent. page_id is None except on XHS."""
        platform = platform.lower()
        key = normalize_tag(tag)
        shape = _shape(self.seed, platform, key)
        if platform == "tiktok":
            return _snowflake(shape.birth, self.seed, platform, key, "topic_id"), None
        if platform == "xiaohongshu":
            # The topic id and the page id of its H5 page are different objects (PLATFORMS §1.1).
            topic_id = _object_id(shape.birth, self.seed, platform, key, "topic_id")
            page_id = _object_id(shape.birth + 3600, self.seed, platform, key, "page_id")
            return topic_id, page_id
        if platform == "instagram":
            # hashtag ids are 17-digit Facebook-graph ids ("17843826142012701")
            return str(17_841_000_000_000_000 + _int(self.seed, platform, key) % 10**12), None
        if platform == "mastodon":
            # one instance's own row number for the tag [INF: size of a mid-sized instance]
            return str(1 + _int(self.seed, platform, key) % 2_000_000), None
        if (platform, key) in _FIXED_IDS:
            return _FIXED_IDS[(platform, key)], None
        if platform == "douyin":
            # cids are decimal: 11 digits for old topics, 16 for those made since ~2019 [INF]
            return str(1_600_000_000_000_000 + _int(self.seed, platform, key) % 10**14), None
        if platform == "bilibili":
            # new-style topic ids were near 1.3 million in 2025 (bilibili-API-collect samples)
            return str(1_000_000 + _int(self.seed, platform, key) % 400_000), None
        # Generic platforms get ObjectId-style ids until their module needs something else.
        return _object_id(shape.birth, self.seed, platform, key, "topic_id"), None

    def register(self, platform: str, tag: str) -> None:
        """Remember a tag's ids so that URLs built from them can be resolved back to the tag."""
        platform = platform.lower()
        topic_id, page_id = self.ids(platform, tag)
        name = self.display_name(platform, tag)
        with self._lock:
            self._by_id.setdefault((platform, topic_id), name)
            if page_id is not None:
                self._by_id.setdefault((platform, page_id), name)

    def lookup(self, platform: str, some_id: str) -> str | None:
        """Tag name for a topic_id or page_id previously produced by this world, else None."""
        with self._lock:
            return self._by_id.get((platform.lower(), some_id))

    # -- variants -----------------------------------------------------------------------------

    def set_variant(self, platform: str, tag: str, name: str, **params: Any) -> None:
        """Switch a test variant on for (platform, tag); "normal" removes all of that tag's."""
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; known: {sorted(VARIANTS)}")
        clean: dict[str, Any] = dict(_DEFAULT_PARAMS.get(name, {}))
        if name == "override":
            unknown = set(params) - set(_OVERRIDABLE)
            if unknown:
                raise ValueError(f"override accepts {_OVERRIDABLE}, not {sorted(unknown)}")
        elif params and not set(params) <= set(clean):
            raise ValueError(f"variant {name!r} accepts {sorted(clean)}, got {sorted(params)}")
        for k, v in params.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"variant parameter {k}={v!r} must be a non-negative int")
            clean[k] = v
        if name == "server_error" and not 500 <= clean["status"] <= 599:
            raise ValueError("server_error status must be 5xx")
        if name in ("rate_limited", "server_error"):
            clean["remaining"] = clean["times"]
        key = (platform.lower(), normalize_tag(tag))
        with self._lock:
            if name == "normal":
                self._variants.pop(key, None)
                return
            current = self._variants.setdefault(key, {})
            # csr and ssr contradict each other; the later call wins.
            if name in ("csr", "ssr"):
                current.pop("ssr" if name == "csr" else "csr", None)
            if name in ("hashtag_header", "page_header"):
                current.pop("page_header" if name == "hashtag_header" else "hashtag_header", None)
            current[name] = clean

    def clear_variants(self) -> None:
        with self._lock:
            self._variants.clear()

    def variants(self, platform: str, tag: str) -> dict[str, dict[str, Any]]:
        """Copy of the variants active for (platform, tag), name -> params."""
        key = (platform.lower(), normalize_tag(tag))
        with self._lock:
            return {k: dict(v) for k, v in self._variants.get(key, {}).items()}

    def has_variant(self, platform: str, tag: str, name: str) -> bool:
        key = (platform.lower(), normalize_tag(tag))
        with self._lock:
            return name in self._variants.get(key, {})

    def all_variants(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"platform": p, "tag": t, "name": n, "params": dict(params)}
                for (p, t), names in sorted(self._variants.items())
                for n, params in names.items()
            ]

    def take_failure(self, platform: str, tag: str) -> Failure | None:
        """Consume one scheduled 429/5xx for a request about this tag, if any remain.

        rate_limited fires before server_error when both are set, as an edge limiter would.
        """
        key = (platform.lower(), normalize_tag(tag))
        with self._lock:
            names = self._variants.get(key, {})
            limited = names.get("rate_limited")
            if limited and limited["remaining"] > 0:
                limited["remaining"] -= 1
                headers = {"Retry-After": str(limited["retry_after"])}
                return Failure(429, headers, "rate_limited")
            broken = names.get("server_error")
            if broken and broken["remaining"] > 0:
                broken["remaining"] -= 1
                return Failure(broken["status"], {}, "server_error")
        return None

    # -- truth --------------------------------------------------------------------------------

    def exists(self, platform: str, tag: str) -> bool:
        key = normalize_tag(tag)
        if not key or key.startswith("nosuch"):
            return False
        return not self.has_variant(platform, tag, "not_found")

    def topic(self, platform: str, tag: str, at: datetime | None = None) -> TopicTruth:
        """Counters at `at` (default: the clock's now). Raises TagNotFound for missing tags."""
        platform = platform.lower()
        if not self.exists(platform, tag):
            raise TagNotFound(f"{platform}: no tag {tag!r}")
        when = self.now() if at is None else at.astimezone(UTC)
        key = normalize_tag(tag)
        shape = _shape(self.seed, platform, key)
        ts = when.timestamp()
        posts = _count(shape.posts_k, shape, ts)
        values = {
            "views": _count(shape.views_k, shape, ts),
            "posts": posts,
            "discussions": posts,
            "participants": min(posts, _count(shape.participants_k, shape, ts)),
        }
        values = _platform_values(self.seed, platform, key, values)
        values.update(self.variants(platform, tag).get("override", {}))
        topic_id, page_id = self.ids(platform, tag)
        self.register(platform, tag)
        desc = _pick(_TT_DESCS, self.seed, platform, key, "desc") if platform == "tiktok" else ""
        return TopicTruth(
            platform=platform,
            tag=tag,
            name=self.display_name(platform, tag),
            topic_id=topic_id,
            page_id=page_id,
            at=when,
            desc=desc,
            **values,
        )

    def daily(self, platform: str, tag: str, days: int = 7,
              at: datetime | None = None) -> list[DayTruth]:
        """Per-UTC-day activity for the last `days` days, newest (today, so far) first.

        Posts are the posts created that day, consistent with `posts_for`; distinct accounts
        are a per-day share of them [INF], at least one on a day with posts.
        """
        platform = platform.lower()
        if not self.exists(platform, tag):
            raise TagNotFound(f"{platform}: no tag {tag!r}")
        when = self.now() if at is None else at.astimezone(UTC)
        key = normalize_tag(tag)
        shape = _shape(self.seed, platform, key)
        share = shape.participants_k / shape.posts_k
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
        out = []
        for back in range(days):
            start = midnight - timedelta(days=back)
            # creation times are whole seconds and _count(t) counts those <= t, so the day
            # [start, start + 1 day) is count(end - 1) - count(start - 1)
            end = min(start.timestamp() + _DAY - 1, math.floor(when.timestamp()))
            posts = _count(shape.posts_k, shape, end) - _count(
                shape.posts_k, shape, start.timestamp() - 1)
            factor = 0.8 + 0.2 * _unit(self.seed, platform, key, "daily", start.date())
            accounts = min(posts, max(1, math.floor(posts * share * factor))) if posts else 0
            out.append(DayTruth(day=start, posts=posts, participants=accounts))
        return out

    def related(self, platform: str, tag: str) -> list[str]:
        """1-3 related topic names shown after the exact match in a topic search [INF]."""
        name = self.display_name(platform, tag)
        key = normalize_tag(tag)
        n = 1 + _int(self.seed, platform.lower(), key, "related") % 3
        start = _int(self.seed, platform.lower(), key, "related-start") % len(_XHS_RELATED)
        return [name + _XHS_RELATED[(start + i) % len(_XHS_RELATED)] for i in range(n)]

    def posts_for(
        self,
        platform: str,
        tag: str,
        limit: int = 30,
        order: str = "mixed",
        at: datetime | None = None,
    ) -> list[PostTruth]:
        """Posts currently shown under the tag, prefix-stable in `limit` for a given instant.

        order="mixed" interleaves the newest posts with popular older ones (the default feed);
        order="newest" lists strictly by creation time. Ground truth only: an `override`
        variant changes the counters, not the post pool.
        """
        if order not in ("mixed", "newest"):
            raise ValueError("order must be 'mixed' or 'newest'")
        platform = platform.lower()
        if not self.exists(platform, tag):
            return []
        when = self.now() if at is None else at.astimezone(UTC)
        name = self.display_name(platform, tag)
        return list(self._posts_cached(platform, normalize_tag(tag), name, limit, order, when))

    def _posts(
        self, platform: str, key: str, name: str, limit: int, order: str, when: datetime
    ) -> tuple[PostTruth, ...]:
        shape = _shape(self.seed, platform, key)
        total = _count(shape.posts_k, shape, when.timestamp())
        limit = max(0, min(limit, LIST_CAP, total))
        ordinals = self._ordinals(platform, key, total, limit, order, when.timestamp())
        return tuple(self._post(platform, key, name, o, when) for o in ordinals)

    def timeline(
        self,
        platform: str,
        tag: str,
        until: datetime,
        since: datetime | None = None,
        limit: int = 20,
        skip: int = 0,
        below_id: str | None = None,
        at: datetime | None = None,
    ) -> list[PostTruth]:
        """Posts created in [since, until), newest first, as a chronological listing pages them.

        Ordered by creation second, then id: ids grow with time on every platform here, so this
        is the platforms' own id order. `below_id` keeps only older ids (Mastodon `max_id`, an
        id offset), `skip` drops that many first (offset cursors). No LIST_CAP applies: a
        listing's cap is its platform module's business. Cost grows with skip + limit only.
        """
        platform = platform.lower()
        if limit <= 0 or not self.exists(platform, tag):
            return []
        when = self.now() if at is None else at.astimezone(UTC)
        key = normalize_tag(tag)
        name = self.display_name(platform, tag)
        shape = _shape(self.seed, platform, key)
        # creation times are whole seconds: "before until" is "at most ceil(until) - 1"
        last = min(math.ceil(until.timestamp()) - 1, math.floor(when.timestamp()))
        ordinal = _count(shape.posts_k, shape, last) - 1
        floor_ = 0 if since is None else _count(shape.posts_k, shape,
                                                 math.ceil(since.timestamp()) - 1)
        below = _id_key(below_id) if below_id is not None else None
        out: list[PostTruth] = []
        while ordinal >= floor_ and len(out) < skip + limit:
            second = _ordinal_ts(self.seed, platform, key, ordinal)
            group = []
            while ordinal >= floor_ and _ordinal_ts(self.seed, platform, key, ordinal) == second:
                group.append(self._post(platform, key, name, ordinal, when))
                ordinal -= 1
            group.sort(key=lambda p: _id_key(p.id), reverse=True)
            out.extend(p for p in group if below is None or _id_key(p.id) < below)
        return out[skip : skip + limit]

    def count_between(self, platform: str, tag: str, since: datetime, until: datetime,
                      at: datetime | None = None) -> int:
        """How many posts were created in [since, until) (cheap: no post is built)."""
        platform = platform.lower()
        if not self.exists(platform, tag):
            return 0
        when = self.now() if at is None else at.astimezone(UTC)
        shape = _shape(self.seed, platform, normalize_tag(tag))
        last = min(math.ceil(until.timestamp()) - 1, math.floor(when.timestamp()))
        first = math.ceil(since.timestamp()) - 1
        if last <= first:
            return 0
        return _count(shape.posts_k, shape, last) - _count(shape.posts_k, shape, first)

    def day_counts(self, platform: str, tag: str, first: date, last: date,
                   at: datetime | None = None) -> dict[date, DayTruth]:
        """Posts and distinct authors per UTC day, first to last inclusive, counted over the
        very posts the listings serve: what a complete backfill must reproduce exactly."""
        out = {}
        day = first
        while day <= last:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            posts = self.timeline(platform, tag, until=start + timedelta(days=1), since=start,
                                  limit=10**9, at=at)
            out[day] = DayTruth(day=start, posts=len(posts),
                                participants=len({p.author_id for p in posts}))
            day += timedelta(days=1)
        return out

    # -- internals ----------------------------------------------------------------------------

    def _ordinals(
        self, platform: str, key: str, total: int, limit: int, order: str, ts: float
    ) -> list[int]:
        if order == "newest" or total <= _SMALL_POOL:
            return [total - 1 - i for i in range(limit)]
        shape = _shape(self.seed, platform, key)
        out: list[int] = []
        seen: set[int] = set()
        recent = total  # exclusive upper bound of the next "recent" ordinal
        slot = 0
        while len(out) < limit:
            if slot % 2 == 0:
                # Recent posts about _RECENT_GAP apart rather than the last few seconds' worth,
                # which on a busy tag would all share one timestamp and have no likes yet.
                back = ts - (slot // 2) * _RECENT_GAP
                recent = max(0, min(recent - 1, _count(shape.posts_k, shape, back) - 1))
                ordinal = recent
            else:
                # Best of a few random older posts, so the odd slots really are the popular ones.
                candidates = [
                    math.floor(_unit(self.seed, platform, key, "hot", total, slot, c) * total)
                    for c in range(6)
                ]
                ordinal = max(candidates, key=lambda o: self._virality(platform, key, o))
            slot += 1
            if ordinal not in seen:
                seen.add(ordinal)
                out.append(ordinal)
        return out

    def _virality(self, platform: str, key: str, ordinal: int) -> float:
        u = _unit(self.seed, platform, key, "post", ordinal, "viral")
        # Pareto-ish tail: most posts get a few likes, a handful get hundreds of thousands.
        return min(8.0 * (1.0 / (1.0 - u)) ** 1.25, 2_000_000.0)

    def _post(self, platform: str, key: str, name: str, ordinal: int, when: datetime) -> PostTruth:
        seed = self.seed
        created = _ordinal_ts(seed, platform, key, ordinal)
        created = min(created, math.floor(when.timestamp()))
        age_hours = max(0.0, (when.timestamp() - created) / _HOUR)
        likes = math.floor(self._virality(platform, key, ordinal) * (1 - math.exp(-age_hours / 36)))
        # One digest feeds all per-post draws (4 bytes each); hashing dominates the page cost.
        d = _digest(seed, platform, key, "post", ordinal)
        u = [int.from_bytes(d[i : i + 4], "big") / 2.0**32 for i in range(0, 32, 4)]
        author_id, unique_id, nickname = _author(seed, platform, int(u[0] * 20_000))
        entropy = int.from_bytes(d[24:32], "big")
        if platform == "xiaohongshu":
            post_id = f"{created & 0xFFFFFFFF:08x}{entropy:016x}"
            title = _ZH_TITLES[int(u[1] * len(_ZH_TITLES))]
            text = f"{title} #{name}[话题]#"
        elif platform in _CN_PLATFORMS:
            title = _ZH_TITLES[int(u[1] * len(_ZH_TITLES))]
            # Weibo mids grow with time (about 4.9e15 in 2025) [INF]; Douyin aweme ids and
            # Bilibili dynamic ids carry the creation second in their top bits, like TikTok's
            post_id = (
                str(4_000_000_000_000_000 + (created - 1_262_304_000) * 2_000_000
                    + entropy % 2_000_000)
                if platform == "weibo"
                else str((created << 32) | (entropy & 0xFFFFFFFF))
            )
            text = f"#{name}# {title}" if platform == "weibo" else f"{title} #{name}"
        else:
            post_id = _post_id(platform, created, entropy)
            title = _EN_PHRASES[int(u[1] * len(_EN_PHRASES))]
            extra = _EN_EXTRA[int(u[2] * len(_EN_EXTRA))]
            text = f"{title} #{name} #{extra}"
        return PostTruth(
            id=post_id,
            ordinal=ordinal,
            author_id=author_id,
            author_unique_id=unique_id,
            author_nickname=nickname,
            title=title,
            text=text,
            created_at=datetime.fromtimestamp(created, UTC),
            likes=likes,
            plays=math.floor(likes * (5 + 25 * u[3])) + likes,
            comments=math.floor(likes * (0.005 + 0.04 * u[4])),
            shares=math.floor(likes * (0.002 + 0.03 * u[5])),
            collects=math.floor(likes * (0.01 + 0.1 * u[2])),
        )

    def state(self) -> dict[str, Any]:
        """JSON-able summary for the admin endpoint."""
        return {
            "now": self.now().isoformat().replace("+00:00", "Z"),
            "seed": self.seed,
            "step_seconds": self.clock.step / timedelta(seconds=1),
            "variants": self.all_variants(),
        }

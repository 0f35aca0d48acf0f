"""Bilibili replica: `x/topic/web/details/top` and `x/topic/pub/search` in their real JSON shapes.

Real: the details/top envelope and fields, and the whole answer for topic 8995 "寒假不咕咕",
which is served as the saved sample of PLATFORMS §5.2 (its counters are frozen in the World);
the 4401031 "话题不存在" answer; the search answer (`topic_items[]{id, name, view, discuss,
stat_desc, description, show_interact_data}`, `page_info`, `new_topic`) from bilibili-API-collect.
[INF]: that these endpoints ever answer -101 (sign-in), -352 (risk control, with `v_voucher`) or
-412 (HTTP 412); the `layout_changed` redesign of details/top; `fav`/`like`/`share`, `ctime`, the
creator and the description of generated topics; that search lists the exact name first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from replica.base import Query, Response, gate, json_response, method_not_allowed, not_found
from replica.truth import ChineseTruth, int_of
from replica.world import (
    LIST_CAP,
    PostTruth,
    TagNotFound,
    TopicTruth,
    World,
    display_count,
    normalize_tag,
)

PLATFORM = "bilibili"
DETAILS = "/x/topic/web/details/top"
SEARCH = "/x/topic/pub/search"
REAL_TOPIC_URL = "https://m.bilibili.com/topic-detail?topic_id={id}"
SEARCH_PAGE_MAX = 20
# The topic's feed of 动态 (Nemo2011/bilibili-api topic.json: sort_by 1 recommended, 2 hot,
# 3 new); the answer shape `topic_card_list{items[{topic_type, dynamic_card_item{id_str,
# modules{module_author{mid, name, pub_ts}, …}}}], has_more, offset}` is what userscripts read
# from it. [INF]: the page size limit, that `offset` is the last id shown for the new sort, and
# that the recommended sort is a capped, mixed sample.
CARDS = "/x/topic/web/details/cards"
CARDS_PAGE_MAX = 20
# Video dynamics (`DYNAMIC_TYPE_AV`) as in the real topic feed page (bilibili-API-collect
# docs/dynamic/topic.md): the video in `major.archive{title, desc, stat{play, danmaku}}`, plays
# only as display text, `module_dynamic.topic` null, and `desc` null in half of them (10 of 20
# there). Which posts are videos, and that half of those carry the title as their desc, is [INF].
VIDEO_SHARE = 0.5

# The saved real response (PLATFORMS §5.2), minus the counters, which come from the World.
SAMPLE_ID = "8995"
SAMPLE_ITEM: dict[str, Any] = {
    "back_color": "#6188FF",
    "description": "寒假不做鸽子精，这次一定！...",
    "share_pic": "http://i0.hdslb.com/bfs/vc/....png",
    "fav": 45,
    "share": 1,
    "like": 136,
    "ctime": 1641380305,
}
SAMPLE_CREATOR = {"uid": 32708726, "face": "...", "name": "傲娇的时尚喵"}

NOT_FOUND_BODY = {"code": 4401031, "message": "话题不存在", "ttl": 1, "data": None}
LOGIN_BODY = {"code": -101, "message": "账号未登录", "ttl": 1}
BLOCKED_BODY = {"code": -412, "message": "请求被拦截", "ttl": 1}
BAD_REQUEST_BODY = {"code": -400, "message": "请求错误", "ttl": 1}


_CHINA = timezone(timedelta(hours=8))


def _ok(data: Any) -> dict[str, Any]:
    return {"code": 0, "message": "0", "ttl": 1, "data": data}


@dataclass(frozen=True, slots=True)
class _Asked:
    """A topic a request names: the world's tag name (the display name in `topic.name` may
    differ) and its truth. Not a tuple, because a Response is one."""

    name: str
    topic: TopicTruth


class BilibiliTruth(ChineseTruth):
    """Bilibili's ground truth: topic 8995 frozen as sampled, 讨论 counting replies too."""

    catalog = ("寒假不咕咕", "TikTok难民", "原神", "美食")
    views_per_post = (2000.0, 15000.0)  # the sample has about 12,700 views per 动态 [INF]
    # "讨论" counts replies as well as posts (动态): 7 to 427 per post in the samples of
    # PLATFORMS §5.2 and bilibili-API-collect, 16.7 for topic 8995; this range is [INF].
    discussions_per_post = (5.0, 40.0)
    # Topic 8995 "寒假不咕咕" is a finished 2022 topic whose real details/top response is the
    # sample in PLATFORMS §5.2, so its counters never move.
    frozen = {"寒假不咕咕": {"views": 488_338_287, "posts": 38_483, "discussions": 642_172}}
    fixed_ids = {"寒假不咕咕": "8995"}

    def topic_ids(self, seed: int, platform: str, key: str, birth: float) -> tuple[str, None]:
        # new-style topic ids were near 1.3 million in 2025 (bilibili-API-collect samples)
        return str(1_000_000 + int_of(seed, platform, key) % 400_000), None


class BilibiliApp:
    """Replica of app.bilibili.com's topic JSON for one World."""

    platform = PLATFORM
    truth = BilibiliTruth()  # what replica.world knows about Bilibili

    def __init__(self, world: World, prefix: str = "/bilibili") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")

    def kind(self, method: str, path: str) -> str:
        route = path.rstrip("/")
        if route == DETAILS:
            return "details"
        if route == SEARCH:
            return "search"
        if route == CARDS:
            return "cards"
        return "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return not_found()
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if kind == "details":
            return self._details(query)
        if kind == "cards":
            return self._cards(query)
        return self._search(query)

    # -- failures -----------------------------------------------------------------------------

    def _refusal(self, name: str) -> Response | None:
        """The answer a variant wants instead of the data, if any (shared by both endpoints)."""
        failure = gate(self.world, PLATFORM, name, as_json=True)
        if failure:
            return failure
        variants = self.world.variants(PLATFORM, name)
        if "login_wall" in variants:
            return json_response(200, LOGIN_BODY)
        if "captcha" in variants:
            voucher = hashlib.sha256(f"{self.world.seed}|{normalize_tag(name)}".encode())
            body = {"code": -352, "message": "风控校验失败", "ttl": 1,
                    "data": {"v_voucher": "voucher_" + voucher.hexdigest()[:32]}}
            return json_response(200, body)
        if "ip_block" in variants:
            return json_response(412, BLOCKED_BODY)
        return None

    # -- details/top --------------------------------------------------------------------------

    def _topic(self, name: str) -> TopicTruth | None:
        try:
            return self.world.topic(PLATFORM, name)
        except TagNotFound:
            return None

    def topic_item(self, topic: TopicTruth) -> dict[str, Any]:
        """`top_details.topic_item`, keys in the order of the real sample."""
        extra = SAMPLE_ITEM if topic.topic_id == SAMPLE_ID else self._generated_extra(topic)
        url = REAL_TOPIC_URL.format(id=topic.topic_id)
        return {
            "id": int(topic.topic_id),
            "name": topic.name,
            "view": topic.views,
            "discuss": topic.discussions,
            "fav": extra["fav"],
            "dynamics": topic.posts,
            "jump_url": url,
            "back_color": extra["back_color"],
            "description": extra["description"],
            "share_pic": extra["share_pic"],
            "share": extra["share"],
            "like": extra["like"],
            "share_url": url,
            "ctime": extra["ctime"],
        }

    def _generated_extra(self, topic: TopicTruth) -> dict[str, Any]:
        # [INF] proportions: the sample has about 1 fav per 850 动态 and 1 like per 280
        key = normalize_tag(topic.name)
        return {
            "back_color": "#6188FF",
            "description": f"一起来聊聊{topic.name}吧～",
            "share_pic": "http://i0.hdslb.com/bfs/vc/topic_share.png",
            "fav": topic.posts // 850,
            "share": topic.posts // 40_000,
            "like": topic.posts // 280,
            "ctime": 1_600_000_000 + int(self.world.unit(PLATFORM, key, "ctime") * 10**8),
        }

    def _creator(self, topic: TopicTruth) -> dict[str, Any]:
        if topic.topic_id == SAMPLE_ID:
            return dict(SAMPLE_CREATOR)
        uid = 10_000_000 + int(self.world.unit(PLATFORM, normalize_tag(topic.name), "creator")
                               * 10**9)
        return {"uid": uid, "face": "https://i0.hdslb.com/bfs/face/member/noface.jpg",
                "name": f"用户{str(uid)[-7:]}"}

    def _requested_topic(self, query: Query) -> _Asked | Response:
        """The topic of the `topic_id` asked for, or the answer the site gives instead."""
        topic_id = query.get("topic_id", "")
        if not topic_id.isdigit():
            return json_response(200, BAD_REQUEST_BODY)
        name = self.world.lookup(PLATFORM, topic_id)
        if name is None:
            return json_response(200, NOT_FOUND_BODY)
        refusal = self._refusal(name)
        if refusal:
            return refusal
        topic = self._topic(name)
        return json_response(200, NOT_FOUND_BODY) if topic is None else _Asked(name, topic)

    def _details(self, query: Query) -> Response:
        found = self._requested_topic(query)
        if not isinstance(found, _Asked):
            return found
        name, topic = found.name, found.topic
        item = self.topic_item(topic)
        if self.world.has_variant(PLATFORM, name, "layout_changed"):
            # [INF] a redesign: counters moved under `stats` with new names
            stats = {"views": item.pop("view"), "replies": item.pop("discuss"),
                     "posts": item.pop("dynamics")}
            return json_response(200, _ok({"topic_info": {**item, "stats": stats}}))
        data = {
            "top_details": {
                "topic_item": item,
                "topic_creator": self._creator(topic),
                "operation_content": {},
                "has_create_jurisdiction": topic.topic_id == SAMPLE_ID,
                "word_color": 0,
                "close_pub_layer_entry": False,
            },
            "functional_card": {},
            "click_area_card": {},
        }
        return json_response(200, _ok(data))

    # -- details/cards ------------------------------------------------------------------------

    def is_video(self, post: PostTruth) -> bool:
        """Whether the feed shows this post as a video dynamic (`DYNAMIC_TYPE_AV`)."""
        return self.world.unit(PLATFORM, post.id, "video") < VIDEO_SHARE

    def video_has_desc(self, post: PostTruth) -> bool:
        """Whether a video dynamic carries `desc` (its title) rather than `desc: null`."""
        return self.world.unit(PLATFORM, post.id, "video desc") < 0.5

    def _video(self, post: PostTruth) -> dict[str, Any]:
        """`module_dynamic` of a video dynamic: the title, and the post's text as the video's
        description, so the text the adapter assembles is the post's text."""
        aid = str(int(post.id) >> 20)
        desc = ({"rich_text_nodes": [{"orig_text": post.title, "text": post.title,
                                      "type": "RICH_TEXT_NODE_TYPE_TEXT"}], "text": post.title}
                if self.video_has_desc(post) else None)
        danmaku = post.comments // 3
        return {
            "additional": None,
            "desc": desc,
            "major": {
                "archive": {
                    "aid": aid,
                    "badge": {"bg_color": "#FB7299", "color": "#FFFFFF", "icon_url": None,
                              "text": "投稿视频"},
                    "bvid": "BV1" + hashlib.sha256(post.id.encode()).hexdigest()[:9],
                    "cover": "http://i0.hdslb.com/bfs/archive/replica.jpg",
                    "desc": post.text,
                    "disable_preview": 0,
                    "duration_text": "01:00",
                    "jump_url": f"//www.bilibili.com/video/av{aid}/",
                    "stat": {"danmaku": display_count(danmaku),
                             "play": display_count(post.plays)},
                    "title": post.title,
                    "type": 1,
                },
                "type": "MAJOR_TYPE_ARCHIVE",
            },
            "topic": None,
        }

    def dynamic_card(self, post: PostTruth, topic: TopicTruth) -> dict[str, Any]:
        """A `dynamic_card_item` (a text 动态, or a video one) in the polymer dynamic shape."""
        created = int(post.created_at.timestamp())
        mid: int | str = int(post.author_id) if post.author_id.isdigit() else post.author_id
        video = self.is_video(post)
        dynamic = self._video(post) if video else {
            "desc": {"text": post.text},
            "topic": {"id": int(topic.topic_id), "name": topic.name,
                      "jump_url": REAL_TOPIC_URL.format(id=topic.topic_id)},
        }
        return {
            "id_str": post.id,
            "type": "DYNAMIC_TYPE_AV" if video else "DYNAMIC_TYPE_WORD",
            "visible": True,
            "basic": {"comment_id_str": post.id, "comment_type": 17, "rid_str": post.id},
            "modules": {
                "module_author": {
                    "mid": mid, "name": post.author_nickname, "pub_ts": created,
                    "pub_time": post.created_at.astimezone(_CHINA).strftime("%Y年%m月%d日"),
                    "face": "https://i0.hdslb.com/bfs/face/member/noface.jpg",
                    "type": "AUTHOR_TYPE_NORMAL",
                },
                "module_dynamic": dynamic,
                "module_stat": {"comment": {"count": post.comments},
                                "forward": {"count": post.shares},
                                "like": {"count": post.likes}},
            },
        }

    def _cards(self, query: Query) -> Response:
        found = self._requested_topic(query)
        if not isinstance(found, _Asked):
            return found
        name, topic = found.name, found.topic
        sort_by, offset = query.get("sort_by", "1") or "1", query.get("offset", "")
        try:
            size = max(1, min(int(query.get("page_size", "20") or 20), CARDS_PAGE_MAX))
        except ValueError:
            return json_response(200, BAD_REQUEST_BODY)
        if sort_by == "2":
            return json_response(200, LOGIN_BODY)  # "未登录无法使用热门排序字段" (bilibili-api)
        if sort_by == "3":
            if offset and not offset.isdigit():
                return json_response(200, BAD_REQUEST_BODY)
            # ids carry the creation second in their top 32 bits
            until = (datetime.fromtimestamp((int(offset) >> 32) + 1, UTC) if offset
                     else self.world.now() + timedelta(seconds=1))
            posts = self.world.timeline(PLATFORM, name, until=until, limit=size + 1,
                                        below_id=offset or None)
            shown, more = posts[:size], len(posts) > size
            next_offset = shown[-1].id if more else ""
        elif sort_by == "1":
            start = int(offset) if offset.isdigit() else 0
            posts = self.world.posts_for(PLATFORM, name, limit=start + size + 1)
            shown = posts[start : start + size]
            more = len(posts) > start + size and start + size < LIST_CAP
            next_offset = str(start + len(shown)) if more else ""
        else:
            return json_response(200, BAD_REQUEST_BODY)
        items = [{"topic_type": "DYNAMIC", "dynamic_card_item": self.dynamic_card(p, topic)}
                 for p in shown]
        data = {
            "topic_card_list": {"items": items, "has_more": more, "offset": next_offset,
                                "display_more_button": False},
            "topic_sort_by_conf": {"default_sort_by": 1, "show_sort_by": 1, "all_sort_by": [
                {"sort_by": 1, "sort_name": "推荐"}, {"sort_by": 2, "sort_name": "热门"},
                {"sort_by": 3, "sort_name": "最新"}]},
        }
        return json_response(200, _ok(data))

    # -- pub/search ---------------------------------------------------------------------------

    def search_item(self, topic: TopicTruth) -> dict[str, Any]:
        return {
            "id": int(topic.topic_id),
            "name": topic.name,
            "view": topic.views,
            "discuss": topic.discussions,
            "stat_desc": f"{display_count(topic.views)}浏览·{display_count(topic.discussions)}讨论",
            "description": self.topic_item(topic)["description"],
            "show_interact_data": False,
        }

    def _search(self, query: Query) -> Response:
        keyword = query.get("keywords", "").strip()
        try:
            size = int(query.get("page_size", str(SEARCH_PAGE_MAX)) or SEARCH_PAGE_MAX)
            offset = int(query.get("offset", "0") or 0)
        except ValueError:
            return json_response(200, BAD_REQUEST_BODY)
        if keyword:
            refusal = self._refusal(keyword)
            if refusal:
                return refusal
        items: list[dict[str, Any]] = []
        topic = self._topic(keyword) if keyword else None
        if topic is not None and offset == 0:
            items.append(self.search_item(topic))
            for related in self.world.related(PLATFORM, keyword):
                other = self._topic(related)
                if other is not None:
                    items.append(self.search_item(other))
        items = items[: max(1, min(size, SEARCH_PAGE_MAX))]
        request_id = hashlib.sha256(f"{self.world.seed}|{keyword}".encode()).hexdigest()[:16]
        data = {
            "new_topic": {"name": keyword},
            "has_create_jurisdiction": False,
            "topic_items": items,
            "request_id": request_id,
            "page_info": {"offset": offset + len(items), "has_more": False},
        }
        return json_response(200, _ok(data))

"""Weibo replica: m.weibo.cn `api/container/getIndex` for topic containers, in its real shape.

Real (third-party code and types, PLATFORMS §4): the `ok` envelope; `cardlistInfo` with
`cardlist_head_cards[0].head_data{title, midtext "阅读… 讨论…", downtext "主持人：…"}`; posts
as `card_type` 9 `mblog`s, top level and inside `card_group`s; `created_at` like "Tue Feb 23
12:28:47 +0800 2021"; `{"ok":0,"msg":"这里还没有内容","data":{"cards":[]}}`; `{"ok":-100,"msg":
"请先登录","url":"https://passport.weibo.cn/signin/welcome?..."}`; the Sina Visitor System redirect;
HTTP 432. [INF]: the `layout_changed` redesign, `cardlistInfo.total` and `starttime` values, which
cards are grouped, ten posts per page, and that relative `created_at` is never served (the replica
clock is not the crawler's clock, so "2分钟前" would be wrong).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote

from replica.base import (
    Query,
    Response,
    esc,
    gate,
    json_response,
    method_not_allowed,
    not_found,
    respond,
)
from replica.world import LIST_CAP, PostTruth, TagNotFound, TopicTruth, World, display_count

PLATFORM = "weibo"
API = "/api/container/getIndex"
PAGE_SIZE = 10
CHINA = timezone(timedelta(hours=8))
EMPTY_BODY = {"ok": 0, "msg": "这里还没有内容", "data": {"cards": []}}
REAL = "https://m.weibo.cn"


def container_query(containerid: str) -> str | None:
    """The `q` of a topic container "231522type=1&t=10&q=#tag#", without the '#'s."""
    if not containerid.startswith("231522"):
        return None
    q = dict(parse_qsl(containerid[len("231522"):], keep_blank_values=True)).get("q", "")
    q = q.strip()
    if len(q) < 3 or not (q.startswith("#") and q.endswith("#")):
        return None
    return q[1:-1].strip() or None


def created_text(post: PostTruth) -> str:
    return post.created_at.astimezone(CHINA).strftime("%a %b %d %H:%M:%S +0800 %Y")


class WeiboApp:
    """Replica of m.weibo.cn topic containers for one World."""

    platform = PLATFORM

    def __init__(self, world: World, prefix: str = "/weibo") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")

    def kind(self, method: str, path: str) -> str:
        return "get_index" if path.rstrip("/") == API else "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return not_found()
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        return self._get_index(query)

    def _topic(self, name: str) -> TopicTruth | None:
        try:
            return self.world.topic(PLATFORM, name)
        except TagNotFound:
            return None

    def _get_index(self, query: Query) -> Response:
        containerid = query.get("containerid", "")
        name = container_query(containerid)
        if name is None:
            return json_response(200, EMPTY_BODY)
        failure = gate(self.world, PLATFORM, name, as_json=True)
        if failure:
            return failure
        variants = self.world.variants(PLATFORM, name)
        original = f"{REAL}{API}?{query.raw}"
        if "login_wall" in variants:
            url = ("https://passport.weibo.cn/signin/welcome?entry=mweibo&r="
                   + quote(original, safe=""))
            return json_response(200, {"ok": -100, "msg": "请先登录", "url": url})
        if "captcha" in variants:
            # the real redirect leaves for passport.weibo.com, with that page as its body
            location = ("https://passport.weibo.com/visitor/visitor?entry=miniblog&a=enter&url="
                        + quote(original, safe="") + "&domain=weibo.com")
            return respond(302, _VISITOR_PAGE, "text/html; charset=utf-8", Location=location)
        if "ip_block" in variants:
            return respond(432, "", "text/html; charset=utf-8")
        topic = self._topic(name)
        try:
            page = max(1, int(query.get("page", "1") or 1))
        except ValueError:
            return json_response(200, EMPTY_BODY)
        start = (page - 1) * PAGE_SIZE
        if topic is None or start >= min(LIST_CAP, topic.posts):
            return json_response(200, EMPTY_BODY)
        posts = self.world.posts_for(PLATFORM, name, limit=start + PAGE_SIZE)[start:]
        more = start + PAGE_SIZE < min(LIST_CAP, topic.posts)
        info = self._cardlist_info(containerid, topic, page + 1 if more else None)
        if "layout_changed" in variants:
            # [INF] a redesign: the counters move into a `stats` list, midtext goes away
            head = info["cardlist_head_cards"][0]["head_data"]
            head.pop("midtext")
            head["stats"] = [{"name": "阅读", "value": topic.views},
                             {"name": "讨论", "value": topic.discussions}]
        data = {"cardlistInfo": info, "cards": self._cards(posts, topic, page),
                "scheme": f"sinaweibo://cardlist?containerid={quote(containerid, safe='')}"}
        return json_response(200, {"ok": 1, "data": data})

    def _cardlist_info(self, containerid: str, topic: TopicTruth,
                       next_page: int | None) -> dict[str, Any]:
        host_name = f"用户{int(self.world.unit(PLATFORM, topic.name, 'host') * 10**7):07d}"
        age_days = 30 + int(self.world.unit(PLATFORM, topic.name, "start") * 600)
        head = {
            "title": f"#{topic.name}#",
            "midtext": f"阅读{display_count(topic.views)} 讨论{display_count(topic.discussions)}",
            "downtext": f"主持人：{host_name}",
            "portrait_url": "https://wx1.sinaimg.cn/thumbnail/topic_default.jpg",
            "desc": "",
            "background_url": "",
        }
        return {
            "containerid": containerid,
            "v_p": 42,
            "show_style": 1,
            "total": topic.posts,
            "starttime": int((topic.at - timedelta(days=age_days)).timestamp()),
            "cardlist_title": "",
            "desc": "",
            "cardlist_head_cards": [{"head_type": 1, "head_data": head}],
            "page": next_page,
        }

    def mblog(self, post: PostTruth, topic: TopicTruth) -> dict[str, Any]:
        link = (f"{REAL}/search?containerid="
                + quote(f"231522type=1&t=10&q=#{topic.name}#", safe="")
                + "&extparam=" + quote(f"#{topic.name}#", safe=""))
        text = (f'<a  href="{esc(link)}" data-hide=""><span class="surl-text">'
                f"#{esc(topic.name)}#</span></a> {esc(post.title)}")
        return {
            "created_at": created_text(post),
            "id": post.id,
            "idstr": post.id,
            "mid": post.id,
            "text": text,
            "source": "微博 weibo.com",
            "user": {
                "id": int(post.author_id),
                "screen_name": post.author_nickname,
                "profile_url": f"{REAL}/u/{post.author_id}",
            },
            "reposts_count": post.shares,
            "comments_count": post.comments,
            "attitudes_count": post.likes,
            "pic_num": 0,
            "isLongText": False,
        }

    def _cards(self, posts: list[PostTruth], topic: TopicTruth, page: int) -> list[dict]:
        cards: list[dict[str, Any]] = []
        if page == 1:
            # [INF] the first page opens with a "热门" group and an intro card that is no post
            cards.append({"card_type": 4, "desc": f"#{topic.name}# 的相关微博"})
            hot, posts = posts[:2], posts[2:]
            cards.append({"card_type": 11, "title": "热门",
                          "card_group": [{"card_type": 9, "mblog": self.mblog(p, topic)}
                                         for p in hot]})
        cards.extend({"card_type": 9, "itemid": f"{topic.name}_-_{p.id}",
                      "mblog": self.mblog(p, topic)} for p in posts)
        return cards


_VISITOR_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sina Visitor System</title>'
    '<link rel="icon" href="data:,"></head><body><div id="message">'
    "<p>Sina Visitor System</p><p>正在验证您的身份，请稍候…</p></div></body></html>"
)

"""Weibo replica: m.weibo.cn `api/container/getIndex` for topic containers, in its real shape.

Real (third-party code and types, PLATFORMS §4): the `ok` envelope; `cardlistInfo` with
`cardlist_head_cards[0].head_data{title, midtext "阅读… 讨论…", downtext "主持人：…"}`; posts
as `card_type` 9 `mblog`s, top level and inside `card_group`s; `created_at` like "Tue Feb 23
12:28:47 +0800 2021"; `{"ok":0,"msg":"这里还没有内容","data":{"cards":[]}}`; `{"ok":-100,"msg":
"请先登录","url":"https://passport.weibo.cn/signin/welcome?..."}`; the Sina Visitor System redirect;
HTTP 432. Super-topics (超话, a real answer in Drelf2018/WeiboSpider test/test.go, 2022): the
container `100808{32 hex}_-_{tab}` answers `data.pageInfo{page_title, page_url, share_pageid,
desc_more: ["阅读1607.2万　帖子4115　粉丝5810", …]}` (U+3000 between the parts) and cards grouped
as `card_type` "11" groups of a "42" caption and a "9" mblog (strings), a post repeated under
"…评论微博了" captions. [INF]: that every topic has a super-topic, its id (a hash of the name
here), the follower count (粉丝), and which tab shows which posts (all tabs show the newest).
[INF]: the `layout_changed` redesign, `cardlistInfo.total` and `starttime` values, which
cards are grouped, ten posts per page, and that relative `created_at` is never served (the replica
clock is not the crawler's clock, so "2分钟前" would be wrong).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote

from replica.base import (
    Query,
    Response,
    esc,
    gate,
    html_response,
    json_response,
    method_not_allowed,
    not_found,
    respond,
)
from replica.truth import ChineseTruth, digest
from replica.world import LIST_CAP, PostTruth, TagNotFound, TopicTruth, World, display_count

PLATFORM = "weibo"
API = "/api/container/getIndex"
# s.weibo.com search (dataabc/weibo-search, a saved page of 2018): HTML cards `div.card-wrap[mid]`,
# pages listed in `ul.s-scroll`, 50 pages at most, `timescope=custom:Y-m-d-H:Y-m-d-H`, China time
# printed relative to `$CONFIG['servertime']`. [INF]: ten cards a page, newest first within a
# timescope, and that the signed-out answer is a redirect to passport.weibo.com.
SEARCH = "/weibo"
SEARCH_REAL = "https://s.weibo.com"
SEARCH_PAGES = 50
SEARCH_PAGE_SIZE = 10
PAGE_SIZE = 10
CHINA = timezone(timedelta(hours=8))
EMPTY_BODY = {"ok": 0, "msg": "这里还没有内容", "data": {"cards": []}}
REAL = "https://m.weibo.cn"
SUPER_PREFIX = "100808"


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


class WeiboTruth(ChineseTruth):
    """Weibo's ground truth: mids that grow with time, "#topic#" texts, reads as views."""

    views_per_post = (500.0, 6000.0)  # Weibo "阅读" counts every read of every post [INF]
    # registered up front, so its super-topic id (id:100808…) resolves before any search
    catalog = ("TikTok难民",)

    def post_id(self, created: int, entropy: int) -> str:
        # Weibo mids grow with time (about 4.9e15 in 2025) [INF]
        return str(4_000_000_000_000_000 + (created - 1_262_304_000) * 2_000_000
                   + entropy % 2_000_000)

    co_tags = False

    def text(self, name: str, title: str) -> str:
        return f"#{name}# {title}"

    def topic_ids(self, seed: int, platform: str, key: str, birth: float) -> tuple[str, None]:
        # the topic's super-topic container id: "100808" and 32 hex digits [INF: the hash]
        return SUPER_PREFIX + digest(seed, platform, key, "super-topic").hex()[:32], None


class WeiboApp:
    """Replica of m.weibo.cn topic containers for one World."""

    platform = PLATFORM
    truth = WeiboTruth()  # what replica.world knows about Weibo

    def __init__(self, world: World, prefix: str = "/weibo") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")
        self._slice = lru_cache(maxsize=64)(self._slice_posts)

    def kind(self, method: str, path: str) -> str:
        route = path.rstrip("/")
        if route == API:
            return "get_index"
        if route == SEARCH:
            return "search"
        return "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return not_found()
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if kind == "search":
            return self._search(query, headers)
        return self._get_index(query)

    def _topic(self, name: str) -> TopicTruth | None:
        try:
            return self.world.topic(PLATFORM, name)
        except TagNotFound:
            return None

    def _get_index(self, query: Query) -> Response:
        containerid = query.get("containerid", "")
        if containerid.startswith(SUPER_PREFIX):
            return self._super_topic(containerid)
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

    def _super_topic(self, containerid: str) -> Response:
        """A super-topic's container: `pageInfo` with its summary, and the newest posts."""
        topic_id = containerid.split("_-_")[0]
        name = self.world.lookup(PLATFORM, topic_id)
        topic = self._topic(name) if name is not None else None
        if name is None or topic is None:
            return json_response(200, EMPTY_BODY)
        failure = gate(self.world, PLATFORM, name, as_json=True)
        if failure:
            return failure
        posts = self.world.posts_for(PLATFORM, name, limit=PAGE_SIZE)
        nick = f"用户{int(self.world.unit(PLATFORM, topic.name, 'host') * 10**7):07d}"
        data = {"pageInfo": self.super_page_info(containerid, topic),
                "cards": self._super_cards(posts, topic, nick),
                "scheme": f"sinaweibo://pageinfo?containerid={quote(containerid, safe='')}",
                "showAppTips": 0}
        return json_response(200, {"ok": 1, "data": data})

    def followers(self, topic: TopicTruth) -> int:
        """The super-topic's 粉丝 (followers), a share of its posters [INF]."""
        return topic.participants // 3 + 1

    def super_summary(self, topic: TopicTruth) -> str:
        """`desc_more[0]`: "阅读1607.2万　帖子4115　粉丝5810", full-width spaces between."""
        return "\u3000".join((f"阅读{display_count(topic.views)}",
                               f"帖子{display_count(topic.posts)}",
                               f"粉丝{display_count(self.followers(topic))}"))

    def super_page_info(self, containerid: str, topic: TopicTruth) -> dict[str, Any]:
        topic_id = containerid.split("_-_")[0]
        return {
            "containerid": containerid,
            "v_p": "42",
            "show_style": 1,
            "page_type_name": topic.name,
            "title_top": topic.name,
            "nick": topic.name,
            "page_title": topic.name,
            "page_attr": topic.name,
            "page_url": f"http://weibo.com/p/{topic_id}",
            "oid": f"1022:{topic_id}",
            "page_view": "super",
            "desc": f"{topic.name}超话",
            "page_size": 15,
            "share_pageid": topic_id,
            "is_refuse": 0,
            "refuse_msg": "权限合法",
            "desc_more": [self.super_summary(topic), "等级LV.1初级粉丝　连续签到0天 >>"],
            "portrait_sub_text": f"{topic.name}超话",
            "cardlist_head_cards": [{"head_type": 0, "head_type_name": "channel_list",
                                     "channel_list": [
                                         {"id": "feed", "name": "帖子",
                                          "containerid": f"{topic_id}_-_feed"},
                                         {"id": "live", "name": "名人动态",
                                          "containerid": f"{topic_id}_-_live"}]}],
            "containerid_bak": containerid,
            "background": None,
        }

    def _super_cards(self, posts: list[PostTruth], topic: TopicTruth,
                     nick: str) -> list[dict[str, Any]]:
        """Groups of a "42" caption and a "9" mblog, as strings; the first post is shown a
        second time under a "评论微博了" caption, as the real page repeats commented posts."""
        def group(post: PostTruth, caption: str, itemid: str) -> dict[str, Any]:
            return {"card_type": "11", "itemid": "", "show_type": 0, "card_group": [
                {"card_type": "42", "itemid": "", "style": 2, "display_type": 2,
                 "desc": caption},
                {"card_type": "9", "itemid": itemid, "weibo_need": "mblog",
                 "mblog": self.mblog(post, topic)}]}

        cards = [group(p, f"{p.author_nickname}发微博了", f"member_live_{p.id}") for p in posts]
        if posts:
            cards.insert(1, group(posts[0], f"{nick}评论微博了", ""))
        return cards

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

    def _cards(self, posts: list[PostTruth], topic: TopicTruth, page: int) -> list[dict[str, Any]]:
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


    # -- s.weibo.com search ---------------------------------------------------------------------

    def _slice_posts(self, name: str, start: datetime | None, end: datetime,
                     now: datetime) -> tuple[PostTruth, ...]:
        # only the first SEARCH_PAGES pages can be reached, so no more posts are ever built
        return tuple(self.world.timeline(PLATFORM, name, until=end, since=start,
                                         limit=SEARCH_PAGES * SEARCH_PAGE_SIZE, at=now))

    def _search(self, query: Query, headers: Mapping[str, str]) -> Response:
        q = query.get("q", "").strip()
        name = q[1:-1].strip() if len(q) > 2 and q.startswith("#") and q.endswith("#") else q
        original = f"{SEARCH_REAL}{SEARCH}?{query.raw}"
        if name:
            failure = gate(self.world, PLATFORM, name, as_json=False)
            if failure:
                return failure
        variants = self.world.variants(PLATFORM, name) if name else {}
        if "captcha" in variants:
            location = ("https://passport.weibo.com/visitor/visitor?entry=miniblog&a=enter&url="
                        + quote(original, safe="") + "&domain=weibo.com")
            return respond(302, _VISITOR_PAGE, "text/html; charset=utf-8", Location=location)
        if "SUB=" not in headers.get("cookie", "") or "login_wall" in variants:
            # [INF] how search answers a visitor without a signed-in SUB cookie
            location = ("https://passport.weibo.com/sso/signin?entry=wbsearch&source=search"
                        "&url=" + quote(original, safe=""))
            return respond(302, "", "text/html; charset=utf-8", Location=location)
        if "ip_block" in variants:
            return respond(432, "", "text/html; charset=utf-8")
        try:
            start, end = _timescope(query.get("timescope", ""))
            page = max(1, int(query.get("page", "1") or 1))
        except ValueError:
            start, end, page = None, None, 1
        now = self.world.now()
        end = min(end, now + timedelta(seconds=1)) if end else now + timedelta(seconds=1)
        topic = self._topic(name) if name else None
        total = 0
        if topic is not None and (start is None or start < end):
            total = (self.world.count_between(PLATFORM, name, start, end) if start is not None
                     else topic.posts)
        pages = min(SEARCH_PAGES, -(-total // SEARCH_PAGE_SIZE))
        posts: tuple[PostTruth, ...] = ()
        if page <= pages:
            listed = self._slice(name, start, end, now)
            posts = listed[(page - 1) * SEARCH_PAGE_SIZE : page * SEARCH_PAGE_SIZE]
        return html_response(200, self._search_page(q, name, query, posts, page, pages, now))

    def _search_page(self, q: str, name: str, query: Query, posts: tuple[PostTruth, ...],
                     page: int, pages: int, now: datetime) -> str:
        def link(n: int) -> str:
            pairs = [(k, v) for k, v in query.pairs if k != "page"] + [("page", str(n))]
            return esc(SEARCH + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs))

        if posts:
            body = "".join(self._search_card(p, name, now) for p in posts)
            cur = ' class="cur"'
            items = "".join(f'<li{cur if n == page else ""}><a href="{link(n)}">第{n}页</a></li>'
                            for n in range(1, pages + 1))
            more = (f'<a href="{link(page + 1)}" class="next">下一页</a>' if page < pages
                    else "")
            body += ('<div class="m-page"><div><span class="list"><ul class="s-scroll" '
                     f'action-type="feed_list_page_morelist">{items}</ul></span>{more}'
                     "</div></div>")
        else:
            body = ('<div class="card card-no-result s-pt20b40"><p>抱歉，未找到“'
                    f"{esc(q)}”相关结果。</p></div>")
        return (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>微博搜索</title>'
            '<link rel="icon" href="data:,"><script type="text/javascript">'
            "var $CONFIG = {}; $CONFIG['islogin'] = '1'; $CONFIG['product'] = 'search';"
            f" $CONFIG['pageid'] = 'weibo'; $CONFIG['servertime'] = {int(now.timestamp())};"
            " $CONFIG['s_domain'] = '//s.weibo.com';</script></head><body class=\"wbs-feed\">"
            '<div class="m-main"><div id="pl_feed_main"><div class="m-wrap">'
            f'<div class="m-con-l" id="pl_feedlist_index"><div>{body}</div></div>'
            "</div></div></div></body></html>"
        )

    def _search_card(self, post: PostTruth, name: str, now: datetime) -> str:
        uid = post.author_id
        bid = _bid(post.id)
        topic = quote(f"#{name}#", safe="")
        return (
            f'<div class="card-wrap" action-type="feed_list_item" mid="{esc(post.id)}">'
            '<div class="card"><div class="card-feed"><div class="avator">'
            f'<a href="//weibo.com/{esc(uid)}?refer_flag=1001030103_"></a></div>'
            '<div class="content" node-type="like"><div class="info"><div>'
            f'<a href="//weibo.com/{esc(uid)}?refer_flag=1001030103_" class="name" '
            f'target="_blank" nick-name="{esc(post.author_nickname)}">'
            f"{esc(post.author_nickname)}</a></div></div>"
            f'<p class="txt" node-type="feed_list_content" nick-name="{esc(post.author_nickname)}">'
            f'<a href="//s.weibo.com/weibo?q={topic}" target="_blank">#{esc(name)}#</a> '
            f"{esc(post.title)}</p>"
            f'<p class="from"><a href="//weibo.com/{esc(uid)}/{bid}?refer_flag=1001030103_" '
            f'target="_blank">\n  {display_time(post.created_at, now)}\n  </a> 来自 '
            '<a href="http://weibo.com/" rel="nofollow">微博 weibo.com</a></p></div></div>'
            '<div class="card-act"><ul><li><a href="javascript:void(0);" '
            'action-type="feed_list_favorite">收藏</a></li>'
            f'<li><a href="javascript:void(0);" action-type="feed_list_forward">'
            f"转发 {post.shares or ''}</a></li>"
            f'<li><a href="javascript:void(0);" action-type="feed_list_comment">'
            f"评论 {post.comments or ''}</a></li>"
            f'<li><a title="赞" action-type="feed_list_like" href="javascript:void(0);">'
            f'<i class="icon-act icon-act-praise"></i> <em>{post.likes or ""}</em></a></li>'
            "</ul></div></div></div>"
        )


def display_time(created: datetime, now: datetime) -> str:
    """How s.weibo.com prints a post time, relative to the server's clock (China time)."""
    elapsed = (now - created).total_seconds()
    local, today = created.astimezone(CHINA), now.astimezone(CHINA)
    if 0 <= elapsed < 60:
        return "刚刚"
    if 0 <= elapsed < 3600:
        return f"{int(elapsed // 60)}分钟前"
    if local.date() == today.date():
        return f"今天 {local:%H:%M}"
    if local.year == today.year:
        return f"{local:%m}月{local:%d}日 {local:%H:%M}"
    return f"{local:%Y}年{local:%m}月{local:%d}日 {local:%H:%M}"


def _timescope(text: str) -> tuple[datetime | None, datetime | None]:
    """"custom:2025-01-05-8:2025-01-06-8": [start, end) in China hours (weibo-search's form)."""
    if not text:
        return None, None
    kind, _, rest = text.partition(":")
    start_text, _, end_text = rest.partition(":")
    if kind != "custom" or not start_text or not end_text:
        raise ValueError(f"timescope {text!r}")

    def hour(value: str) -> datetime:
        day, _, h = value.rpartition("-")
        return datetime.fromisoformat(day).replace(hour=int(h), tzinfo=CHINA).astimezone(UTC)

    return hour(start_text), hour(end_text)


_B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _bid(mid: str) -> str:
    """The base-62 "bid" of a post's URL (GFHQlFsjb), from its mid, 7 digits at a time."""
    out: list[str] = []
    text = mid
    while text:
        chunk, text = int(text[-7:]), text[:-7]
        digits = ""
        while chunk:
            chunk, r = divmod(chunk, 62)
            digits = _B62[r] + digits
        out.insert(0, digits.rjust(4, "0") if text else digits)
    return "".join(out)


_VISITOR_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sina Visitor System</title>'
    '<link rel="icon" href="data:,"></head><body><div id="message">'
    "<p>Sina Visitor System</p><p>正在验证您的身份，请稍候…</p></div></body></html>"
)

"""Registry of replica platform apps: adding a platform is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from replica.base import App
from replica.bilibili import BilibiliApp
from replica.bluesky import BlueskyApp
from replica.douyin import DouyinApp
from replica.instagram import InstagramApp
from replica.mastodon import MastodonApp
from replica.tiktok import TikTokApp
from replica.weibo import WeiboApp
from replica.world import World
from replica.xiaohongshu import XiaohongshuApp
from replica.youtube import YouTubeApp

# name -> factory(world, prefix); the server mounts each under "/<name>/".
APPS: dict[str, Callable[[World, str], App]] = {
    "bilibili": BilibiliApp,
    "bluesky": BlueskyApp,
    "douyin": DouyinApp,
    "instagram": InstagramApp,
    "mastodon": MastodonApp,
    "tiktok": TikTokApp,
    "weibo": WeiboApp,
    "xiaohongshu": XiaohongshuApp,
    "youtube": YouTubeApp,
}

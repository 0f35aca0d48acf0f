"""Registry of replica platform apps: adding a platform is one module plus one line here.

Each app class carries its `truth` (replica/truth.py), so the ground truth in replica/world.py
needs no edit for a new platform either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from replica.base import App
from replica.bilibili import BilibiliApp
from replica.bluesky import BlueskyApp
from replica.douyin import DouyinApp
from replica.instagram import InstagramApp
from replica.mastodon import MastodonApp
from replica.tiktok import TikTokApp
from replica.truth import PlatformTruth
from replica.weibo import WeiboApp
from replica.world import World
from replica.xiaohongshu import XiaohongshuApp
from replica.youtube import YouTubeApp


class AppClass(Protocol):
    """A platform app's class: built per world, and declaring its part of the ground truth."""

    # Read-only, so an app may declare a subclass of PlatformTruth (a settable member is invariant).
    @property
    def truth(self) -> PlatformTruth: ...

    def __call__(self, world: World, prefix: str) -> App: ...


# name -> factory(world, prefix); the server mounts each under "/<name>/".
APPS: dict[str, AppClass] = {
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

# name -> what the ground truth knows about the platform; replica.world reads only this.
TRUTHS: Mapping[str, PlatformTruth] = {name: app.truth for name, app in APPS.items()}

"""Platform adapters, one module each; this registry is the only place that lists them."""

from __future__ import annotations

from crawler.platforms.base import Platform
from crawler.platforms.bilibili import Bilibili
from crawler.platforms.bluesky import Bluesky
from crawler.platforms.douyin import Douyin
from crawler.platforms.instagram import Instagram
from crawler.platforms.mastodon import Mastodon
from crawler.platforms.tiktok import TikTok
from crawler.platforms.weibo import Weibo
from crawler.platforms.xiaohongshu import Xiaohongshu
from crawler.platforms.youtube import YouTube

REGISTRY: dict[str, type[Platform]] = {
    Bilibili.name: Bilibili,
    Bluesky.name: Bluesky,
    Douyin.name: Douyin,
    Instagram.name: Instagram,
    Mastodon.name: Mastodon,
    TikTok.name: TikTok,
    Weibo.name: Weibo,
    Xiaohongshu.name: Xiaohongshu,
    YouTube.name: YouTube,
}

ALIASES: dict[str, str] = {"xhs": "xiaohongshu", "rednote": "xiaohongshu"}


class UnknownPlatformError(ValueError):
    """A platform name that is not in the registry."""


BUILTIN: frozenset[str] = frozenset(REGISTRY)


def register_sources(config_path: str) -> list[str]:
    """Add the `[[source]]` platforms of a config file to the registry; their names."""
    from crawler.platforms.configured import load_sources

    added = []
    for cls in load_sources(config_path, set(BUILTIN)):
        REGISTRY[cls.name] = cls
        added.append(cls.name)
    return added


def platform_class(name: str) -> type[Platform]:
    """The adapter class for a platform name or alias (case-insensitive)."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    try:
        return REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownPlatformError(f"unknown platform {name!r} (known: {known})") from None


def parse_platforms(arg: str) -> list[str]:
    """Canonical names from a comma-separated list such as 'tiktok,xhs'; duplicates dropped."""
    names: list[str] = []
    for part in arg.split(","):
        if part.strip():
            name = platform_class(part).name
            if name not in names:
                names.append(name)
    if not names:
        raise UnknownPlatformError("no platform given")
    return names

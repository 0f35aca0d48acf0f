"""Offline replica of the platforms' public tag pages and APIs, served on 127.0.0.1."""

from __future__ import annotations

from replica.clock import ReplicaClock
from replica.server import ReplicaServer
from replica.world import (
    VARIANTS,
    PostTruth,
    TagNotFound,
    TopicTruth,
    World,
    display_count,
    display_parts,
    normalize_tag,
)

__all__ = [
    "VARIANTS",
    "PostTruth",
    "ReplicaClock",
    "ReplicaServer",
    "TagNotFound",
    "TopicTruth",
    "World",
    "display_count",
    "display_parts",
    "normalize_tag",
]

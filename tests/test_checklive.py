"""`tagarchive check-live` against the replica (never against a real platform in tests)."""

from __future__ import annotations

from replica.server import ReplicaServer
from tests.crawl_helpers import run_cli


def test_matching_shape_passes(replica: ReplicaServer) -> None:
    replica.world.set_variant("tiktok", "livecheck", "ssr")
    result = run_cli("check-live", "tiktok", "livecheck",
                     "--base-url", replica.base_url("tiktok"))
    assert result.code == 0, result.stdout + result.stderr
    assert "views" in result.stdout
    assert "MISSING" not in result.stdout
    assert f"{replica.world.topic('tiktok', 'livecheck').views:,}" in result.stdout


def test_changed_layout_is_reported(replica: ReplicaServer) -> None:
    replica.world.set_variant("xiaohongshu", "livecheck", "layout_changed")
    result = run_cli("check-live", "xiaohongshu", "livecheck",
                     "--base-url", replica.base_url("xiaohongshu"))
    assert result.code == 1
    assert "layout_changed" in result.stderr

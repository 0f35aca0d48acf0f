"""Shared test fixtures: one replica server per session (helpers: tests/*_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from replica.server import ReplicaServer
from replica.world import World


@pytest.fixture(scope="session")
def replica_server() -> Iterator[ReplicaServer]:
    with ReplicaServer(world=World(seed=2025)) as server:
        yield server


@pytest.fixture
def replica(replica_server: ReplicaServer) -> Iterator[ReplicaServer]:
    """The session replica with no variants left over from another test."""
    replica_server.world.clear_variants()
    replica_server.faults.clear()
    yield replica_server
    replica_server.world.clear_variants()
    replica_server.faults.clear()


from tests.redis_helpers import redis_server  # noqa: E402, F401 - the fixture, for every test
from tests.s3_helpers import s3_moto, s3_server  # noqa: E402, F401 - S3 (moto) fixtures

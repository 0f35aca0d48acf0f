"""Shared test fixtures: one replica server per session (helpers: tests/*_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from replica.server import ReplicaServer
from replica.signing import SignerState
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


@pytest.fixture
def signer(replica: ReplicaServer) -> Iterator[SignerState]:
    """The replica's Xiaohongshu signer, back to its defaults after the test, no hits counted
    yet."""
    state: SignerState = replica.platforms["xiaohongshu"].signing  # type: ignore[attr-defined]
    state.reset()
    replica.reset_hits()
    yield state
    state.reset()


from tests.redis_helpers import redis_server  # noqa: E402, F401 - the fixture, for every test
from tests.s3_helpers import s3_moto, s3_server  # noqa: E402, F401 - S3 (moto) fixtures

"""A real runs service for each test: fresh migrated database, real gRPC server on port 0."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import grpc
import pytest
from prometheus_client import CollectorRegistry

from switchboard.catalog import configure
from switchboard.services.runs import app as runs_app
from switchboard.services.runs.reaper import Reaper
from switchboard.services.runs.settings import RunsSettings
from switchboard.shared.auth import Authenticator
from switchboard.shared.db import create_pool
from switchboard.runs.v1 import run_service_pb2 as pb
from switchboard.runs.v1 import run_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN
from tests.support.serving import serving
from tests.support.worker_keys import ISSUER, PUBLIC_KEYS_SETTING, verifier

OPERATOR = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)


def worker_metadata(organization_id: str, agent_id: str | None = None) -> tuple[tuple[str, str], ...]:
    """A worker of ``agent_id`` (a new agent when not given) in the organisation."""
    token = ISSUER.issue(
        organization_id=organization_id, agent_id=agent_id or str(uuid.uuid4()), connection_id=None, ttl=timedelta(minutes=10)
    )
    return (("authorization", f"Bearer {token.token}"),)


@dataclass
class Runs:
    stub: run_service_pb2_grpc.RunServiceStub
    pool: asyncpg.Pool
    settings: RunsSettings
    registry: CollectorRegistry
    channel: grpc.aio.Channel | None = None

    def reaper(self, **overrides: float) -> Reaper:
        """A reaper as another replica would run it (its own loop, same database)."""
        return Reaper(
            self.pool,
            interval_seconds=overrides.get("interval_seconds", self.settings.runs_reaper_interval_seconds),
            stale_after_seconds=overrides.get("stale_after_seconds", self.settings.runs_reaper_stale_after_seconds),
            batch_size=int(overrides.get("batch_size", self.settings.runs_reaper_batch_size)),
        )

    async def enqueue(self, organization_id: str, lane: int = pb.LANE_ACTION, **fields) -> pb.Run:
        reply = await self.stub.EnqueueRun(
            pb.EnqueueRunRequest(organization_id=organization_id, lane=lane, **fields), metadata=OPERATOR
        )
        return reply.run

    async def claim(self, worker_id: str = "worker-1", lanes=(), metadata=OPERATOR) -> pb.Run | None:
        reply = await self.stub.ClaimRun(pb.ClaimRunRequest(worker_id=worker_id, lanes=list(lanes)), metadata=metadata)
        return reply.run if reply.HasField("run") else None


@contextlib.asynccontextmanager
async def running_runs(database_url: str, *, start_reaper: bool = False, **overrides: object) -> AsyncIterator[Runs]:
    configuration = configure(
        database_url=database_url,
        internal_token=INTERNAL_TOKEN,
        worker_token_public_keys=PUBLIC_KEYS_SETTING,
        db_pool_max_size=40,
    ).replace(**overrides)
    pool = await create_pool(configuration.platform, "runs", application_name="tests-runs")
    registry = CollectorRegistry()
    own = configuration.of("runs")
    app = await runs_app.create(configuration.platform, pool, own=own, registry=registry)
    # The reaper runs only when a test asks: most drive their own sweeps.
    async with serving(app, pool, Authenticator(INTERNAL_TOKEN, verifier()), components=None if start_reaper else ()) as (_, channel):
        yield Runs(run_service_pb2_grpc.RunServiceStub(channel), pool, own, registry, channel)


@pytest.fixture
async def runs(migrated_database: str) -> AsyncIterator[Runs]:
    async with running_runs(migrated_database) as running:
        yield running


@pytest.fixture
def org() -> str:
    return str(uuid.uuid4())

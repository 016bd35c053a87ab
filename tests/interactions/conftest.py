"""Real interactions replicas for each test: fresh migrated database, real gRPC servers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc

from switchboard.catalog import configure
from switchboard.services.interactions import app as interactions_app
from switchboard.services.interactions.hub import StreamHub
from switchboard.shared.auth import Authenticator
from switchboard.shared.db import create_pool
from switchboard.shared.grpc.server import ServerOptions
from switchboard.shared.service import ServiceApp, run_service
from switchboard.interactions.v1 import event_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN
from tests.support.worker_keys import PUBLIC_KEYS_SETTING, verifier

OPERATOR = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)


@dataclass
class Replica:
    stub: event_service_pb2_grpc.EventServiceStub
    channel: grpc.aio.Channel
    pool: asyncpg.Pool
    app: ServiceApp
    port: int

    @property
    def hub(self) -> StreamHub:
        return self.app.component(StreamHub)


@contextlib.asynccontextmanager
async def replica(database_url: str, **overrides: object) -> AsyncIterator[Replica]:
    """One replica with every component running, as `serve` runs it (the same run_service)."""
    configuration = configure(
        database_url=database_url,
        internal_token=INTERNAL_TOKEN,
        worker_token_public_keys=PUBLIC_KEYS_SETTING,
        db_pool_max_size=20,
    ).replace(**overrides)
    pool = await create_pool(configuration.platform, "interactions", application_name="tests-interactions")
    app = await interactions_app.create(configuration.platform, pool, own=configuration.of("interactions"))
    options = ServerOptions(host="127.0.0.1", port=0, shutdown_grace_seconds=5)
    async with run_service(app, pool, options=options, authenticator=Authenticator(INTERNAL_TOKEN, verifier())) as server:
        assert server.port is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            one = Replica(event_service_pb2_grpc.EventServiceStub(channel), channel, pool, app, server.port)
            await one.hub.listening.wait()
            yield one

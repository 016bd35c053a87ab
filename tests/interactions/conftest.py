"""Real interactions replicas for each test: fresh migrated database, real gRPC servers."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc

from switchboard.services.interactions import app as interactions_app
from switchboard.services.interactions.hub import StreamHub
from switchboard.shared.auth import Authenticator
from switchboard.shared.config import Settings
from switchboard.shared.db import create_pool
from switchboard.shared.grpc.server import ServerOptions, ServiceApp, ServiceServer
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
    server: ServiceServer
    port: int

    @property
    def hub(self) -> StreamHub:
        return self.app.on_drain[0].__self__  # the hub whose close_subscribers is the drain hook

    async def stop(self) -> None:
        for drain in self.app.on_drain:
            drain()
        await self.server.stop()
        for stop in self.app.on_stop:
            await stop()


@contextlib.asynccontextmanager
async def replica(database_url: str, **overrides: object) -> AsyncIterator[Replica]:
    settings = dataclasses.replace(
        Settings(database_url=database_url, internal_token=INTERNAL_TOKEN, worker_token_public_keys=PUBLIC_KEYS_SETTING, db_pool_max_size=20),
        **overrides,
    )
    pool = await create_pool(settings, "interactions", application_name="tests-interactions")
    app = await interactions_app.create(settings, pool)
    server = ServiceServer(
        app.registrations,
        ServerOptions(host="127.0.0.1", port=0, shutdown_grace_seconds=5),
        authenticator=Authenticator(INTERNAL_TOKEN, verifier()),
    )
    port = await server.start()
    for start in app.on_start:
        start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    running = Replica(event_service_pb2_grpc.EventServiceStub(channel), channel, pool, app, server, port)
    await running.hub.listening.wait()
    stopped = False
    try:
        yield running
    finally:
        await channel.close()
        if not stopped:
            await running.stop()
        await pool.close()

"""A service's app behind a real gRPC server on a loopback port, for the tests of each service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import grpc

from switchboard.shared.auth import Authenticator
from switchboard.shared.authz import Memberships
from switchboard.shared.grpc.server import ServerOptions, ServiceApp, ServiceServer


@contextlib.asynccontextmanager
async def serving(
    app: ServiceApp,
    pool: asyncpg.Pool,
    authenticator: Authenticator,
    *,
    shutdown_grace_seconds: float = 10.0,
    memberships: Memberships | None = None,
) -> AsyncIterator[tuple[int, grpc.aio.Channel]]:
    """Serve ``app``; yield its port and a channel to it; then stop the server, run the app's stop
    hooks and close ``pool``, as a process of the service would. Acting users' roles come from
    ``memberships`` (or the app's own); without either, acting users are refused as UNAVAILABLE."""
    server = ServiceServer(
        app.registrations,
        ServerOptions(host="127.0.0.1", port=0, shutdown_grace_seconds=shutdown_grace_seconds),
        authenticator=authenticator,
        memberships=memberships or app.memberships,
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield port, channel
    finally:
        for drain in app.on_drain:  # as a process of the service drains before it stops
            drain()
        await server.stop()
        for stop in app.on_stop:
            await stop()
        await pool.close()

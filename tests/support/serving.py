"""A service's app behind a real gRPC server on a loopback port, for the tests of each service:
run through switchboard/shared/service.run_service, the one start and stop order `serve` uses."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
import grpc

from switchboard.shared.auth import Authenticator
from switchboard.shared.authz import Memberships
from switchboard.shared.grpc.server import ServerOptions
from switchboard.shared.lifecycle import Component
from switchboard.shared.service import ServiceApp, run_service


@contextlib.asynccontextmanager
async def serving(
    app: ServiceApp,
    pool: asyncpg.Pool,
    authenticator: Authenticator,
    *,
    shutdown_grace_seconds: float = 10.0,
    memberships: Memberships | None = None,
    components: Sequence[Component] | None = None,
) -> AsyncIterator[tuple[int, grpc.aio.Channel]]:
    """Serve ``app``; yield its port and a channel to it; then stop as a process of the service
    would (components drained, server stopped, components stopped, clients and ``pool`` closed).
    ``components``: which of the app's components run (None: all, as in a process; a test of one
    loop may leave the others out). Acting users' roles come from ``memberships`` (or the app's
    own); without either, acting users are refused as UNAVAILABLE."""
    options = ServerOptions(host="127.0.0.1", port=0, shutdown_grace_seconds=shutdown_grace_seconds)
    async with run_service(
        app, pool, options=options, authenticator=authenticator, memberships=memberships, components=components
    ) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert server.port is not None
            yield server.port, channel

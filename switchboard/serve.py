"""``switchboard serve <service>``: one process of one service, as compose runs it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Iterator

import grpc
import uvicorn

from switchboard.catalog import Configuration, service as service_named
from switchboard.peers import remote_fetch, remote_revocations
from switchboard.shared.auth import Authenticator, WorkerTokens
from switchboard.shared.config import ConfigError, Settings, env_names
from switchboard.shared.db import create_pool, database_for
from switchboard.shared.grpc.client import open_channel
from switchboard.shared.logs import get_logger
from switchboard.shared.memberships import CachedMemberships
from switchboard.shared.metrics import RpcMetrics
from switchboard.shared.process import port_is_free, signal_ready, wait_for_stop
from switchboard.shared.revocations import RevocationSync, RevokedTokens
from switchboard.shared.service import ServiceApp, run_service, server_options
from switchboard.shared.worker_keys import parse_public_keys

log = get_logger(__name__)

METRICS_PORT_OFFSET = 1000


def require_free_port(host: str, port: int, variable: str) -> None:
    """Raise ConfigError (one line naming ``variable``) when ``host:port`` is taken: clearer than
    the server's own bind error, which comes as a traceback or a C-level log line."""
    if not port_is_free(host, port):
        raise ConfigError(f"port {port} on {host} is in use by another process: set {variable} to a free port")


def authenticator_from(
    settings: Settings, revoked: RevokedTokens | None = None, *, worker_tokens: WorkerTokens | None = None
) -> Authenticator:
    """Internal callers by the internal token, workers by the verification key set (public keys
    only; ``worker_tokens`` when the service verifies them its own way). Raises ConfigError when
    either is not configured."""
    settings.require("internal_token", "worker_token_public_keys")
    assert settings.internal_token is not None and settings.worker_token_public_keys is not None
    tokens = worker_tokens or WorkerTokens(parse_public_keys(settings.worker_token_public_keys))
    return Authenticator(settings.internal_token, tokens, revoked)


def refuse_signing_key(settings: Settings, process: str) -> None:
    """Only identity may hold the private key of worker tokens: any other process that is given
    it refuses to start (a compromised replica must not be able to mint tokens)."""
    if settings.worker_token_signing_key is not None:
        raise ConfigError(
            f"SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY is for the identity service only: unset it for {process}, "
            "which verifies worker tokens with SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS"
        )


def revocation_sync_for(settings: Settings, app: ServiceApp) -> tuple[RevocationSync, grpc.aio.Channel | None]:
    """The loop that keeps this process's revoked-token list fresh, from the app's own source or
    from the identity service (then also the channel to close at the end)."""
    # Stale beyond six missed refreshes (30 s by default): refuse worker tokens rather than trust an
    # old list. The floor keeps a very short refresh from failing workers on a blink of identity.
    revoked = RevokedTokens(max_staleness_seconds=max(2.0, 6 * settings.revocation_refresh_seconds))
    channel = None
    fetch = app.revocations
    if fetch is None:
        channel = open_channel(settings.target_of("identity"), token=settings.internal_token, health_checked=True)
        fetch = remote_revocations(channel)
    return RevocationSync(revoked, fetch, settings.revocation_refresh_seconds), channel


async def serve_grpc(
    configuration: Configuration,
    name: str,
    *,
    port: int | None = None,
    metrics_port: int | None = None,
    parent_pid: int | None = None,
    ready_fd: int | None = None,
) -> None:
    """Run one replica of the service ``name`` until SIGINT/SIGTERM (or the parent's exit), then
    drain (see shared/service.run_service for the order). Its health follows the database:
    NOT_SERVING while a probe cannot reach it, SERVING again once it can. ``ready_fd`` (from
    ``up``) is told once the process serves.

    Raises ConfigError when the database URL or the tokens are not configured, or a port is taken.
    """
    settings = configuration.platform
    database = database_for(settings, name)
    authenticator_from(settings)  # fail on missing tokens before anything opens
    if name != "identity":
        refuse_signing_key(settings, name)
    service = service_named(name)
    names = env_names()
    port = settings.port_of(name) if port is None else port
    if metrics_port is None:
        metrics_port = settings.metrics_port if settings.metrics_port is not None else port + METRICS_PORT_OFFSET
    if port:  # 0 asks the system for a free port
        require_free_port(settings.bind_host, port, names[f"{name}_port"])
    require_free_port(settings.bind_host, metrics_port, names["metrics_port"])
    pool = await create_pool(settings, service.schema, application_name=f"switchboard-{name}")
    metrics = RpcMetrics()
    try:
        app = await service.build(settings, pool, configuration.of(name), registry=metrics.registry)
    except BaseException:
        await pool.close()
        raise
    sync, identity_channel = revocation_sync_for(settings, app)
    memberships = app.memberships
    if memberships is None:
        if identity_channel is None:
            identity_channel = open_channel(settings.target_of("identity"), token=settings.internal_token, health_checked=True)
        memberships = CachedMemberships(remote_fetch(identity_channel), ttl_seconds=settings.membership_cache_seconds)
    stop = asyncio.create_task(wait_for_stop(parent_pid))
    try:
        async with run_service(
            app,
            pool,
            options=server_options(settings, port),
            authenticator=authenticator_from(settings, sync.revoked, worker_tokens=app.worker_tokens),
            memberships=memberships,
            metrics=metrics,
            metrics_port=metrics_port,
            # The probe takes the calls' route (through the pooler, if any): what it cannot reach,
            # calls cannot either.
            database_url=database.url,
            database_pooled=database.pooled,
            name=name,
            revocations=sync,
            closers=[identity_channel.close] if identity_channel is not None else (),
            stopping=stop,
        ) as server:
            if not stop.done():
                log.info("service_started", service=name, port=server.port, metrics_port=metrics_port, pid=os.getpid())
                signal_ready(ready_fd)
            reason = await stop
            log.info("service_stopping", service=name, reason=reason)
    finally:
        stop.cancel()
    log.info("service_stopped", service=name)


class _EdgeServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process's stop signal (or the supervisor's
    exit) is handled once, in wait_for_stop, and then the server drains open requests."""

    ready_fd: int | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # listening (uvicorn exits by itself when it cannot bind)
            signal_ready(self.ready_fd)


async def serve_edge(
    configuration: Configuration, *, port: int | None = None, parent_pid: int | None = None, ready_fd: int | None = None
) -> None:
    """Run the HTTP edge until SIGINT/SIGTERM (or the parent's exit); open requests finish first.
    ``ready_fd`` (from ``up``) is told once it listens. Raises ConfigError when its port is taken."""
    from switchboard.services.edge.app import create_app

    settings = configuration.platform
    refuse_signing_key(settings, "the edge")
    port = settings.edge_port if port is None else port
    if port:
        require_free_port(settings.bind_host, port, env_names()["edge_port"])
    app = create_app(settings, own=configuration.of("edge"))
    server = _EdgeServer(
        uvicorn.Config(
            app,
            host=settings.bind_host,
            port=port,
            log_config=None,  # our JSON logging, configured by the CLI
            access_log=False,  # the Observe middleware logs each request once, with its id
            timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
            lifespan="on",
        )
    )
    server.ready_fd = ready_fd
    log.info("edge_starting", port=port, pid=os.getpid())
    stop = asyncio.create_task(wait_for_stop(parent_pid))
    stop.add_done_callback(lambda _: setattr(server, "should_exit", True))
    try:
        await server.serve()
    finally:
        stop.cancel()
    log.info("edge_stopped")

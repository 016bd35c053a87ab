"""A service's declared shape, and the one function that runs any service.

Each context declares one ``Service`` in switchboard/services/<context>/app.py: its name and
schema, its own settings class, the servicers it serves (whose methods carry their authorization
policies), and how to build a ``ServiceApp`` from settings and a pool: registrations, background
components, the clients to close, and where it learns of revocations and roles when it answers
them itself. ``run_service`` runs a built app with the one start and stop order; ``switchboard
serve`` and the tests both go through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from switchboard.shared.config import DEFAULT_PORTS, Settings
from switchboard.shared.db import DatabaseProbe
from switchboard.shared.grpc.health import SERVING
from switchboard.shared.grpc.server import Registration, ServerOptions, ServiceServer
from switchboard.shared.lifecycle import Component
from switchboard.shared.logs import get_logger
from switchboard.shared.settings import EnvSettings

if TYPE_CHECKING:
    import asyncpg
    from prometheus_client import CollectorRegistry

    from switchboard.shared.auth import Authenticator, WorkerTokens
    from switchboard.shared.authz import Memberships
    from switchboard.shared.metrics import RpcMetrics
    from switchboard.shared.revocations import Fetch, RevocationSync

log = get_logger(__name__)

S = TypeVar("S", bound=EnvSettings)
C = TypeVar("C", bound=Component)

DATABASE = "database"
"""The dependency name under which a gRPC process's health follows its database probe."""


@dataclass(frozen=True)
class ServiceApp:
    """A built service: what ``run_service`` serves, starts, stops and closes."""

    registrations: Sequence[Registration]
    # Started in this order once the process may serve; drained, then stopped in reverse order.
    components: Sequence[Component] = ()
    # Clients to close once everything stopped (HTTP clients, channels to other services).
    closers: Sequence[Callable[[], Awaitable[None]]] = ()
    # Where this service learns of revoked worker tokens; None means from the identity service.
    revocations: Fetch | None = None
    # Where acting users' roles come from; None means from the identity service (cached briefly).
    memberships: Memberships | None = None
    # How this service verifies worker tokens; None means the platform's verifier, which requires
    # the token's organisation (a service that resolves it itself may accept tokens without).
    worker_tokens: WorkerTokens | None = None

    def component(self, kind: type[C]) -> C:
        """The component of type ``kind`` (for tests that drive one)."""
        found = [c for c in self.components if isinstance(c, kind)]
        if len(found) != 1:
            raise LookupError(f"{len(found)} components of type {kind.__name__}")
        return found[0]


@dataclass(frozen=True)
class Service(Generic[S]):
    """One bounded context as the platform runs it."""

    name: str
    schema: str
    """The PostgreSQL schema it owns (and the folder of its migrations)."""
    settings: type[S]
    """Its own settings class (switchboard/services/<name>/settings.py)."""
    create: Callable[..., Awaitable[ServiceApp]]
    """``async create(settings, pool, *, own=None, registry=None) -> ServiceApp``: ``own`` is an
    instance of ``settings`` (its defaults when None), ``registry`` where its metrics go."""
    servicers: Sequence[tuple[str, type]] = field(default_factory=tuple)
    """(full gRPC service name, servicer class): the RPCs it serves, each with its policy."""

    @property
    def default_port(self) -> int:
        return DEFAULT_PORTS[self.name]

    async def build(
        self, settings: Settings, pool: asyncpg.Pool, own: S | None = None, *, registry: CollectorRegistry | None = None
    ) -> ServiceApp:
        return await self.create(settings, pool, own=own, registry=registry)


def server_options(settings: Settings, port: int) -> ServerOptions:
    """The gRPC server's options from the platform's settings."""
    return ServerOptions(
        host=settings.bind_host,
        port=port,
        default_deadline_seconds=settings.default_deadline_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        drain_delay_seconds=settings.drain_delay_seconds,
        max_message_bytes=settings.grpc_max_message_bytes,
    )


@contextlib.asynccontextmanager
async def run_service(
    app: ServiceApp,
    pool: asyncpg.Pool,
    *,
    options: ServerOptions,
    authenticator: Authenticator,
    memberships: Memberships | None = None,
    metrics: RpcMetrics | None = None,
    metrics_port: int | None = None,
    database_url: str | None = None,
    database_pooled: bool = False,
    name: str = "service",
    revocations: RevocationSync | None = None,
    components: Sequence[Component] | None = None,
    closers: Sequence[Callable[[], Awaitable[None]]] = (),
    stopping: asyncio.Future[Any] | None = None,
) -> AsyncIterator[ServiceServer]:
    """Serve ``app`` until the block exits; the server is yielded, bound and (unless ``stopping``
    finished first) SERVING. The one start and stop order of every service:

    start: bind with health NOT_SERVING; metrics on ``metrics_port``; the database probe (health
    follows ``database_url``, through a transaction pooler when ``database_pooled``) and the revocation refresh; once the first refresh is in (worker
    tokens can be checked only then), the app's components (``components``: only these), then
    SERVING.

    stop: components drain (long-lived streams end); the server stops (NOT_SERVING, the drain
    delay, calls in flight within the grace); everything started stops in reverse order (the
    components, then the refresh and the probe); the app's closers and ``closers`` run; the pool
    closes.
    """
    server = ServiceServer(
        app.registrations,
        options,
        authenticator=authenticator,
        metrics=metrics,
        memberships=memberships or app.memberships,
    )
    watchers: list[Component] = []
    if database_url is not None:
        watchers.append(
            DatabaseProbe(
                database_url,
                lambda reachable: server.health.set_dependency(DATABASE, reachable),
                application_name=f"switchboard-{name}-probe",
                pooled=database_pooled,
            )
        )
    if revocations is not None:
        watchers.append(revocations)
    started: list[Component] = []
    bound = False
    try:
        await server.start(serving=False)
        bound = True
        if metrics_port is not None:
            server.metrics.serve(options.host, metrics_port)
        for watcher in watchers:
            watcher.start()
            started.append(watcher)
        if revocations is not None:
            await _first(revocations.refreshed.wait(), stopping)
        if stopping is None or not stopping.done():
            for component in app.components if components is None else components:
                component.start()
                started.append(component)
            await server.health.set_all(SERVING)
        yield server
    finally:
        ours = [c for c in started if c not in watchers]
        for component in ours:
            component.drain()
        if bound:
            await server.stop()
        for component in reversed(started):
            await component.stop()
        for close in (*app.closers, *closers):
            await close()
        await pool.close()


async def _first(ready: Awaitable[Any], stopping: asyncio.Future[Any] | None) -> None:
    """Wait for ``ready`` or for ``stopping``, whichever comes first."""
    waiting = asyncio.ensure_future(ready)
    try:
        await asyncio.wait({waiting, *([stopping] if stopping else [])}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()

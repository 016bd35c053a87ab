"""Builds the edge's ASGI application in the open: upstream channels, routes, middleware."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard.services.edge.middleware import BodySizeLimit, HttpMetrics, Observe
from switchboard.services.edge.problems import problem
from switchboard.services.edge.proxy import proxy_request
from switchboard.services.edge.settings import EdgeSettings
from switchboard.services.edge.sse import KeepSend
from switchboard.services.edge.streams import KEEP_ALIVE_SECONDS, stream_events
from switchboard.services.edge.upstreams import Upstreams
from switchboard.services.edge.webhooks import slack_interactions, telegram_update
from switchboard.services.edge.fanout import StreamFanout
from switchboard.shared.auth import Authenticator, WorkerTokens
from switchboard.peers import remote_revocations
from switchboard.shared.revocations import Fetch, RevocationSync, RevokedTokens
from switchboard.shared.subscriber_limits import SubscriberLimits
from switchboard.shared.config import Settings
from switchboard.shared.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from switchboard.shared.worker_keys import parse_public_keys

PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def healthz(request: Request) -> Response:
    """The process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when every upstream service reports SERVING; 503 naming the ones that do not."""
    services = await request.app.state.upstreams.readiness()
    not_ready = sorted(name for name, status in services.items() if status != "SERVING")
    if not_ready:
        return problem(503, "not serving: " + ", ".join(not_ready), services=services)
    return JSONResponse({"status": "ready", "services": services})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=METRICS_CONTENT_TYPE)


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.status_code != 404 else f"no route for {request.method} {request.url.path}"
    return _with_headers(problem(exc.status_code, detail), exc.headers)


def _with_headers(response: Response, headers: dict[str, str] | None) -> Response:
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def create_app(
    settings: Settings, *, own: EdgeSettings | None = None, upstreams: Upstreams | None = None, revocations: Fetch | None = None
) -> Starlette:
    """The edge application. ``upstreams`` defaults to channels built from ``settings``, and then
    ``revocations`` to the identity service's list. With a source of revocations (and worker token
    keys), the SSE clients of a stream share one upstream subscription (fanout.py): the edge can
    then check each client's token before each delivery itself; without one, each client keeps
    its own upstream call, where the service checks it."""
    own = own or EdgeSettings()
    registry = CollectorRegistry()
    if upstreams is None:
        upstreams = Upstreams.from_settings(settings)
        revocations = revocations or remote_revocations(upstreams.channels["identity"])
    public_keys = settings.worker_token_public_keys
    worker_tokens = WorkerTokens(parse_public_keys(public_keys)) if public_keys else None
    sync: RevocationSync | None = None
    fanout: StreamFanout | None = None
    if revocations is not None and worker_tokens is not None and settings.internal_token:
        # Stale beyond six missed refreshes, as in the services: then clients are not shared.
        revoked = RevokedTokens(max_staleness_seconds=max(2.0, 6 * settings.revocation_refresh_seconds))
        sync = RevocationSync(revoked, revocations, settings.revocation_refresh_seconds)
        fanout = StreamFanout(
            upstreams.channels["interactions"],
            Authenticator(settings.internal_token, worker_tokens, revoked),
            SubscriberLimits(
                own.edge_sse_max_clients,
                own.edge_sse_max_clients_per_stream,
                own.edge_sse_max_clients_per_organization,
                own.edge_sse_max_clients_per_agent,
            ),
            keep_alive=KEEP_ALIVE_SECONDS,
            registry=registry,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if sync is not None:
            sync.start()
        yield
        if sync is not None:
            await sync.stop()
        if fanout is not None:
            await fanout.close()
        await upstreams.close()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/v1/streams/{stream:path}/events", stream_events, methods=["GET"]),
            Route("/webhooks/slack/interactions", slack_interactions, methods=["POST"]),
            Route("/webhooks/telegram/{connection_id}", telegram_update, methods=["POST"]),
            Route("/v1/proxy/{upstream}/{path:path}", proxy_request, methods=PROXY_METHODS),
        ],
        middleware=[
            Middleware(KeepSend),
            Middleware(Observe, metrics=HttpMetrics(registry)),
            # Proxied bodies stream through to the secret proxy, which enforces its own limit.
            Middleware(BodySizeLimit, max_bytes=own.edge_max_body_bytes, exempt_prefix="/v1/proxy/"),
        ],
        # Unexpected exceptions become a 500 problem in the Observe middleware, with the request id.
        exception_handlers={HTTPException: _http_problem},
        lifespan=lifespan,
    )
    app.state.upstreams = upstreams
    app.state.registry = registry
    app.state.settings = settings
    app.state.worker_tokens = worker_tokens
    app.state.fanout = fanout
    app.state.revocations = sync
    return app

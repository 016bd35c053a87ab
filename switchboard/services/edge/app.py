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
from switchboard.services.edge.streams import stream_events
from switchboard.services.edge.upstreams import Upstreams
from switchboard.services.edge.webhooks import slack_interactions, telegram_update
from switchboard.shared.auth import WorkerTokens
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


def create_app(settings: Settings, *, own: EdgeSettings | None = None, upstreams: Upstreams | None = None) -> Starlette:
    """The edge application. ``upstreams`` defaults to channels built from ``settings``."""
    own = own or EdgeSettings()
    registry = CollectorRegistry()
    upstreams = upstreams or Upstreams.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
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
    public_keys = settings.worker_token_public_keys
    app.state.worker_tokens = WorkerTokens(parse_public_keys(public_keys)) if public_keys else None
    return app

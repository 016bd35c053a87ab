"""ASGI middleware of the edge: request ids, access logs and metrics; the request size limit."""

from __future__ import annotations

import time
import uuid

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.services.edge.problems import problem
from switchboard.shared.headers import REQUEST_ID_HEADER, REQUEST_ID_PATTERN
from switchboard.shared.logs import get_logger
from switchboard.shared.validation import ascii_int

log = get_logger(__name__)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Request counts and latencies by route template (never the raw path: unbounded labels)."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "switchboard_http_requests",
            "HTTP requests answered by the edge, by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "switchboard_http_request_duration_seconds",
            "Time from request to the end of the response, by route and method.",
            ["route", "method"],
            registry=registry,
        )


class Observe:
    """Gives every request an id (``x-request-id`` in and out), logs one line when the response
    ends and records metrics."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - a 500 with the request id, the traceback in the log
            log.error("http_unexpected_error", exc_info=exc)
            if response_started:
                raise
            response = problem(500, "internal error; the edge logged the details under this response's x-request-id")
            await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            # Client-chosen methods would make unbounded label values; fold the unusual ones.
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(seconds)
            log.info(
                "http_request_finished",
                http_method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 3),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Answers 413 to a request whose body exceeds ``max_bytes``: at once when Content-Length says
    so, otherwise as soon as the streamed body crosses the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefix: str | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt_prefix and scope["path"].startswith(self.exempt_prefix)):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            length = ascii_int(declared)
            if length is None:
                await problem(400, "Content-Length must be a non-negative integer of at most 19 ASCII digits")(scope, receive, send)
                return
            if length > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"the request body exceeds the limit of {self.max_bytes} bytes", limit_bytes=self.max_bytes)
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _request_id(scope: Scope) -> str:
    given = _header(scope, REQUEST_ID_HEADER.encode())
    return given if given and REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex

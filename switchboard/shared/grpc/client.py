"""Client channels between parts: round robin over replicas, credentials, default deadlines."""

from __future__ import annotations

import json
from typing import Any

import grpc

from switchboard.shared.auth import AUTHORIZATION_HEADER

# Round robin over every address the target resolves to. No retry policy: a call that failed
# with UNAVAILABLE may still have had effects, so only the caller knows whether repeating it is
# safe; gRPC already retries transparently the calls that never left the client.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
# The same, skipping replicas whose health (grpc.health.v1 Watch, the whole server: "") is not
# SERVING: a replica cut off from its database, or draining, gets no new calls while another
# serves. When none serves, calls fail at once with UNAVAILABLE ("backend unhealthy").
_HEALTH_CHECKED_SERVICE_CONFIG = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)


class _CallDefaults:
    """Adds the bearer token to every call and a deadline to unary calls that name none
    (principle 4: every RPC has a deadline; a stream's caller sets its own)."""

    def __init__(self, token: str | None, default_timeout: float):
        self._auth = ((AUTHORIZATION_HEADER, f"Bearer {token}"),) if token else ()
        self._timeout = default_timeout

    def _details(self, details: grpc.aio.ClientCallDetails, unary_response: bool) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if self._auth and AUTHORIZATION_HEADER not in metadata:
            metadata.add(*self._auth[0])
        timeout = details.timeout
        if timeout is None and unary_response:
            timeout = self._timeout
        return grpc.aio.ClientCallDetails(details.method, timeout, metadata, details.credentials, details.wait_for_ready)


# One interceptor per kind of call: grpc.aio files an interceptor under the first kind it is an
# instance of (an if/elif chain), so one class of all four kinds would only ever see unary calls,
# and streamed calls would go out without the token.
class _UnaryUnary(_CallDefaults, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details, True), request)


class _UnaryStream(_CallDefaults, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details, False), request)


class _StreamUnary(_CallDefaults, grpc.aio.StreamUnaryClientInterceptor):
    # No default deadline here (as before this interceptor reached such calls): a client stream
    # may be long-lived, and its caller sets the deadline it means.
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details, False), request_iterator)


class _StreamStream(_CallDefaults, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details, False), request_iterator)


def open_channel(
    target: str,
    *,
    token: str | None = None,
    default_timeout: float = 10.0,
    max_message_bytes: int = 4 << 20,
    health_checked: bool = False,
) -> grpc.aio.Channel:
    """An insecure channel to ``target`` (``host:port``, ``ipv4:a:p,b:q`` or ``dns:///name:port``)
    that balances round robin over every address, sends ``token`` as the bearer, and gives unary
    calls ``default_timeout`` seconds unless the caller sets a timeout. ``health_checked``: only
    over the replicas that report SERVING (client-side health checking)."""
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.service_config", _HEALTH_CHECKED_SERVICE_CONFIG if health_checked else _SERVICE_CONFIG),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            # Replicas come back within a second or two: look for them again soon (gRPC's default
            # backoff starts at 1 s and grows to 120 s).
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ],
        interceptors=[kind(token, default_timeout) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)],
    )

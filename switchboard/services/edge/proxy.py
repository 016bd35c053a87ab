"""`ANY /v1/proxy/{upstream}/{path}`: a worker's HTTP request to a provider, through the secret proxy.

The worker authenticates with `X-Switchboard-Token: <worker token>`; everything else it sent
(`Authorization: Bearer sb_secret_…` meant for the upstream included) goes to
SecretProxyService.Forward as it is, the body streamed in chunks. The answer streams back the same
way: an upstream event stream reaches the worker as it is produced. A refusal becomes a problem
response (401, 403, 404, 413, 429, 503); an upstream that breaks off mid-response aborts ours,
so the worker sees a truncated response rather than a complete-looking one.

The body goes up only once the proxy accepted the request (its initial metadata carries
``x-switchboard-body-limit``), and no chunk goes up after the first one beyond that limit. gRPC's
client turns a call's status into INTERNAL ("Internal error from Core") when one of its writes is
under way as the server ends the call: a refusal that arrived while a large body was still being
written used to reach the worker as a 502. Now no write is under way when the proxy may refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import grpc
import structlog
from grpc._cython import cygrpc  # the base of gRPC's core errors, which grpc.aio does not re-export
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from switchboard.services.edge.problems import problem, problem_from_error
from switchboard.shared.errors import reason_of
from switchboard.shared.headers import BODY_LIMIT_METADATA, EDGE_TOKEN_HEADER, REQUEST_ID_HEADER, WORKER_TOKEN_HEADER
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc

_NOT_FORWARDED = frozenset({WORKER_TOKEN_HEADER.encode(), b"host"})
_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}\Z")  # what gRPC metadata can carry


class UpstreamBrokeOff(Exception):
    """The response was already under way when the upstream (or the proxy) failed."""


async def proxy_request(request: Request) -> Response:
    token = (request.headers.get(WORKER_TOKEN_HEADER) or "").strip()
    if not token or not _TOKEN.match(token):
        return problem(401, "send your worker token as 'X-Switchboard-Token: <token>'")
    upstream = request.path_params["upstream"]
    path = _path_as_received(request, upstream)
    if path is None:
        return problem(400, "write the upstream name as it is (letters, digits, '_' and '-'), not percent-encoded")
    settings = request.app.state.settings
    stub = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(request.app.state.upstreams.channels["secretproxy"])
    metadata = [("authorization", f"Bearer {token}"), (EDGE_TOKEN_HEADER, settings.internal_token)]
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        metadata.append((REQUEST_ID_HEADER, request_id))
    call = stub.Forward(metadata=metadata)
    # The request goes up in its own task while this one waits for the answer: a refusal can
    # arrive before the whole body was sent, and then it is the answer.
    sender = asyncio.create_task(_send(call, request, upstream, path))
    watcher = asyncio.create_task(_cancel_when_client_leaves(request, call, sender))
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as exc:
        sender.cancel()
        # The proxy's refusal carries a reason; a status without one is gRPC's own.
        return problem_from_error(exc, reason=reason_of(exc), peer="the secret proxy")
    finally:
        watcher.cancel()  # from here on the streaming response watches for the client itself
    if first is grpc.aio.EOF or first.WhichOneof("kind") != "head":
        sender.cancel()
        call.cancel()
        return problem(502, "the secret proxy answered without a response head")
    response = StreamingResponse(_body(call, sender))
    response.status_code = first.head.status_code
    response.raw_headers = [(h.name.lower().encode("latin-1"), h.value.encode("latin-1")) for h in first.head.headers]
    return response


async def _send(call: grpc.aio.StreamStreamCall, request: Request, upstream: str, path: str) -> None:
    head = pb.ForwardRequestHead(
        method=request.method,
        upstream=upstream,
        path=path,
        headers=[
            pb.HttpHeader(name=name.decode("latin-1"), value=value.decode("latin-1"))
            for name, value in request.headers.raw
            if name not in _NOT_FORWARDED
        ],
        source_address=request.client.host if request.client else "",
    )
    try:
        await call.write(pb.ForwardRequest(head=head))
        # Resolves with the proxy's acceptance, or with nothing when the call ended (a refusal:
        # its status is the answer) or the proxy answers without the body (a 502 of its own).
        limit = _body_limit(await call.initial_metadata())
        if limit is None:
            return
        sent = 0
        async for chunk in request.stream():
            if chunk:
                await call.write(pb.ForwardRequest(body_chunk=chunk))
                sent += len(chunk)
                if sent > limit:
                    return  # the proxy refuses this body on reading that chunk (BODY_TOO_LARGE)
        await call.done_writing()
    except ClientDisconnect:
        call.cancel()  # the worker is gone: so is its request upstream
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError, cygrpc.BaseError):
        # The call already ended (a refusal, or the answer came early): its status is the answer.
        # gRPC's core errors (UsageError, "Failed send_close" on a call the proxy just ended) say
        # the same; cancelling here would replace the proxy's status with CANCELLED (a 502).
        pass
    except Exception:  # noqa: BLE001 - anything else: the call must not wait for a body that never comes
        if not call.done():
            call.cancel()
            raise


def _body_limit(metadata: grpc.aio.Metadata | None) -> int | None:
    """The proxy's body limit, if the initial metadata says it accepted the request."""
    for key, value in metadata or ():
        if key == BODY_LIMIT_METADATA and isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
    return None


async def _cancel_when_client_leaves(request: Request, call: grpc.aio.StreamStreamCall, sender: asyncio.Task) -> None:
    """While the upstream has not answered yet: a worker that hangs up cancels the upstream call at
    once, rather than leaving it (and its upstream connection) to the read timeout."""
    # The sender's own failure is not this task's business (the call's status says what went wrong).
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await sender  # the body is up: the next thing the client can send is its leaving
    if (await request.receive())["type"] == "http.disconnect":
        call.cancel()


def _path_as_received(request: Request, upstream: str) -> str | None:
    """The path below the upstream, percent-encoded as the worker sent it, with its query; None
    when the raw path does not start with the upstream's name as it is (then the decoded path
    would not be what the worker sent, e.g. "%3F" turned into a query)."""
    raw = request.scope.get("raw_path", b"").decode("latin-1")
    prefix = f"/v1/proxy/{upstream}/"
    if not raw.startswith(prefix):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    path = raw[len(prefix) - 1 :]
    return f"{path}?{query}" if query else path


async def _body(call: grpc.aio.StreamStreamCall, sender: asyncio.Task) -> AsyncIterator[bytes]:
    try:
        # read() throughout: the head was taken with read(), and gRPC does not let one call mix it
        # with iteration.
        while (message := await call.read()) is not grpc.aio.EOF:
            kind = message.WhichOneof("kind")
            if kind == "body_chunk":
                yield message.body_chunk
            elif kind == "end":
                return
    except grpc.aio.AioRpcError as exc:
        raise UpstreamBrokeOff(f"{exc.code().name}: {exc.details()}") from None
    finally:
        sender.cancel()
        call.cancel()  # the worker went away, or we are done: release the upstream at once


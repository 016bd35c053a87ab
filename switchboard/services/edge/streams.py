"""`GET /v1/streams/{stream}/events`: a worker's event stream as server-sent events.

The worker authenticates with its worker token (`Authorization: Bearer …`), which the edge passes
on to the interactions service, where its scope is enforced; the edge reads the token only to know
its organisation. Resume with `Last-Event-ID` or `?after=`. Each event is `id: <sequence>`,
`event: <type>`, `data: <payload>`; a `: keep-alive` comment goes out every 15 s;
the clients of one stream share one upstream subscription per edge process (fanout.py); trimmed events are
announced by a `trimmed` event; a position beyond the stream's head (its storage was reset), on
resuming or mid-stream, by a `reset` event whose id is the head, before the events after it. When the client goes away, the subscription is cancelled at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from switchboard.services.edge.fanout import StreamFanout
from switchboard.services.edge.problems import problem, problem_from_status
from switchboard.services.edge.sse import FrameStream
from switchboard.shared.auth import WorkerTokens
from switchboard.shared.errors import DomainError, Unauthenticated, error_info
from switchboard.shared.headers import SUBSCRIBED_HEADER
from switchboard.shared.validation import ascii_int
from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc

KEEP_ALIVE_SECONDS = 15
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
SUBSCRIBE_WAIT_SECONDS = 10


def _after(request: Request) -> int | None:
    """The resume position: ASCII digits within int64 (what the service's field holds), else None."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    return ascii_int(raw, maximum=2**63 - 1)


async def stream_events(request: Request) -> Response:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problem(401, "send your worker token as 'Authorization: Bearer <token>'")
    tokens: WorkerTokens | None = request.app.state.worker_tokens
    if tokens is None:
        return problem(503, "the edge has no worker token public keys configured")
    try:
        worker = tokens.verify(token.strip())
    except Unauthenticated as exc:
        return problem(401, exc.message)
    # Where the clients of a stream share one upstream feed, the edge checks the token itself
    # too, before the client joins and before each delivery: a revoked token is refused here.
    fanout: StreamFanout | None = request.app.state.fanout
    if fanout is not None:
        try:
            fanout.check(worker)
        except Unauthenticated as exc:
            return problem(401, exc.message)
        except DomainError:
            fanout = None  # no fresh list of revocations here: the service checks this client
    after = _after(request)
    if after is None:
        return problem(400, "Last-Event-ID and ?after= must be a non-negative event sequence: ASCII digits, below 2^63")
    stub = event_service_pb2_grpc.EventServiceStub(request.app.state.upstreams.channels["interactions"])
    call = stub.Subscribe(
        pb.SubscribeRequest(stream=request.path_params["stream"], organization_id=worker.organization_id, after_sequence=after),
        metadata=(("authorization", f"Bearer {token.strip()}"),),
        # A replica that just died is replaced within a second or two: wait for one rather than
        # answer 503 at once (EventSource clients do not retry after an error status).
        wait_for_ready=True,
    )
    # The service sends its headers once the subscription is accepted; a refusal (not found,
    # too many subscribers) arrives instead as a status, which becomes the HTTP answer.
    try:
        metadata = await asyncio.wait_for(call.initial_metadata(), SUBSCRIBE_WAIT_SECONDS)
    except TimeoutError:
        call.cancel()
        return problem(503, "no interactions replica answered in time; retry", retry_after_seconds=1)
    if metadata is None or SUBSCRIBED_HEADER not in dict(metadata):
        code = await call.code()
        return problem_from_status(code, await call.details())
    # Accepted by the service, for this token: the client joins the stream's one upstream feed in
    # this process (after catching up on its own call), where the edge can check the token again
    # before each delivery; otherwise it keeps its own call, checked by the service.
    if fanout is not None:
        key = (worker.organization_id or "", request.path_params["stream"])
        refused = fanout.refusal(worker, key)
        if refused is not None:
            call.cancel()
            return problem_from_status(refused.code, refused.message)
        return FrameStream(fanout.events(worker, key, after, call), HEADERS)
    return EventSourceResponse(
        _events(call),
        ping=KEEP_ALIVE_SECONDS,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
        headers=HEADERS,
    )


async def _events(call: grpc.aio.UnaryStreamCall) -> AsyncIterator[ServerSentEvent]:
    try:
        async for message in call:
            kind = message.WhichOneof("kind")
            if kind == "reset":
                # The position asked for is beyond the stream's head: the id is the head, so a
                # client that reconnects after this resumes from there.
                reset = message.reset
                yield ServerSentEvent(
                    data=json.dumps({"requested_after_sequence": reset.requested_after_sequence, "head_sequence": reset.head_sequence}),
                    event="reset",
                    id=str(reset.head_sequence),
                )
            elif kind == "trimmed":
                trimmed = message.trimmed
                yield ServerSentEvent(
                    data=json.dumps(
                        {
                            "requested_after_sequence": trimmed.requested_after_sequence,
                            "first_available_sequence": trimmed.first_available_sequence,
                        }
                    ),
                    event="trimmed",
                    id=str(trimmed.first_available_sequence - 1),
                )
            else:
                yield ServerSentEvent(data=message.event.payload_json, event=message.event.type, id=str(message.event.sequence))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.CANCELLED:
            return
        # The stream ended early (a slow client, a replica draining): say where to resume.
        info = error_info(exc)
        resume = info.metadata.get("resume_after_sequence", "") if info else ""
        yield ServerSentEvent(
            data=json.dumps({"code": exc.code().name, "message": exc.details(), "resume_after_sequence": resume}), event="error"
        )
    finally:
        call.cancel()  # the client went away (or we are done): free the subscription now

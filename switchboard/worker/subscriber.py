"""A subscription that resumes: EventService.Subscribe again, after the last sequence delivered,
whenever the call ends for a reason that passes (the replica drains, the subscriber fell behind,
the connection dropped), with a bounded backoff. No event is delivered twice and none is skipped
(a stream the retention trimmed is the server's to say: it is logged, and delivery goes on from
the first event still stored)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence

import grpc

from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc

log = logging.getLogger(__name__)

# Ends of a call after which subscribing again may work; any other code is raised to the caller.
RESUMABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0


async def subscribe(
    channel: grpc.aio.Channel,
    metadata: Sequence[tuple[str, str]],
    organization_id: str,
    stream: str,
    after_sequence: int = 0,
) -> AsyncIterator[pb.Event]:
    """The events of ``stream`` after ``after_sequence``, stored ones first, then live ones, for as
    long as the caller iterates. Raises grpc.aio.AioRpcError for a refusal (PERMISSION_DENIED,
    NOT_FOUND, RESOURCE_EXHAUSTED, ...)."""
    stub = event_service_pb2_grpc.EventServiceStub(channel)
    position = after_sequence
    backoff = FIRST_BACKOFF
    while True:
        call = stub.Subscribe(
            pb.SubscribeRequest(stream=stream, organization_id=organization_id, after_sequence=position), metadata=tuple(metadata)
        )
        try:
            async for message in call:
                kind = message.WhichOneof("kind")
                if kind == "event":
                    position = message.event.sequence
                    backoff = FIRST_BACKOFF
                    yield message.event
                elif kind == "trimmed":
                    log.warning(
                        "events %d..%d of %s were trimmed before they were read",
                        message.trimmed.requested_after_sequence + 1, message.trimmed.first_available_sequence - 1, stream,
                    )  # fmt: skip
                    position = message.trimmed.first_available_sequence - 1
                elif kind == "reset":
                    log.warning("stream %s was reset: its head is %d, below %d", stream, message.reset.head_sequence, position)
                    position = message.reset.head_sequence
            # The server ended the call without an error (it does not, today): subscribe again.
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RESUMABLE:
                raise
            log.info("subscription to %s ended (%s); resuming after %d", stream, exc.code().name, position)
        finally:
            call.cancel()
        await asyncio.sleep(backoff * (0.5 + random.random()))
        backoff = min(backoff * 2, MAX_BACKOFF)

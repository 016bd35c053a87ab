"""The EventService servicer: thin (parse, authorise, call the store or the hub, encode)."""

from __future__ import annotations

import contextlib
from datetime import datetime

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.services.interactions import events, publishing, store
from switchboard.services.interactions.hub import HubClosing, StreamHub, SubscriberLagging
from switchboard.shared.authz import Role, current_access, policy, policy_of
from switchboard.shared.errors import Aborted, Unavailable
from switchboard.shared.headers import SUBSCRIBED_HEADER
from switchboard.shared.validation import Violations
from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc

Context = grpc.aio.ServicerContext


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


class EventService(event_service_pb2_grpc.EventServiceServicer):
    """switchboard.interactions.v1.EventService."""

    def __init__(self, pool: asyncpg.Pool, hub: StreamHub, limits: events.SubscriberLimits):
        self._pool = pool
        self._hub = hub
        self._limits = limits
        # Drained with the replica: PublishStream calls store what they read and end (UNAVAILABLE).
        self.publishers = publishing.Draining()

    async def _append(self, organization_id: str, stream: str, items: list[tuple[str, str]]) -> tuple[list[int], datetime]:
        async with self._pool.acquire() as conn:
            return await store.events_append(conn, organization_id, stream, items)

    # Publishing: internal services, and workers on their own agent's streams. Users read only.
    @policy(worker="organization", target="organization_id", stream="stream")
    async def Publish(self, request: pb.PublishRequest, context: Context) -> pb.PublishResponse:
        organization_id, stream, kind, payload = events.one_event(request)
        sequences, created_at = await self._append(organization_id, stream, [(kind, payload)])
        return pb.PublishResponse(sequence=sequences[0], created_at=_timestamp(created_at))

    @policy(worker="organization", target="organization_id", stream="stream")
    async def PublishBatch(self, request: pb.PublishBatchRequest, context: Context) -> pb.PublishBatchResponse:
        v = Violations()
        stream = events.stream_name(v, "stream", request.stream)
        organization_id = v.uuid("organization_id", request.organization_id)
        if not 1 <= len(request.events) <= events.MAX_BATCH:
            v.add("events", f"must hold 1 to {events.MAX_BATCH} events")
        items = [
            (events.event_type(v, f"events[{i}].type", e.type), events.payload(v, f"events[{i}].payload_json", e.payload_json))
            for i, e in enumerate(request.events)
        ]
        if sum(len(p.encode()) for _, p in items) > events.MAX_BATCH_BYTES:
            v.add("events", "payloads must total at most 3 MiB")
        v.check()
        sequences, created_at = await self._append(organization_id, stream, items)
        return pb.PublishBatchResponse(sequences=sequences, created_at=_timestamp(created_at))

    # Each event is authorised as a Publish (a streamed request has no fields to check up front).
    @policy(worker="organization")
    async def PublishStream(self, requests, context: Context):
        acks = publishing.publish_stream(
            requests, current_access(), policy_of(EventService.Publish), self._append, self.publishers.draining
        )
        async with contextlib.aclosing(acks):
            async for ack in acks:
                yield ack

    @policy(user=Role.MEMBER, worker="organization", target="organization_id", stream="stream")
    async def Subscribe(self, request: pb.SubscribeRequest, context: Context):
        v = Violations()
        stream = events.stream_name(v, "stream", request.stream)
        organization_id = v.uuid("organization_id", request.organization_id)
        if request.after_sequence < 0:
            v.add("after_sequence", "must not be negative")
        v.check()
        access = current_access()
        with self._limits.slot(access, organization_id, stream):
            # Accepted: say so now (the edge waits for this before answering 200 to SSE clients).
            await context.send_initial_metadata(((SUBSCRIBED_HEADER, "1"),))
            try:
                async for item in self._hub.subscribe(organization_id, stream, request.after_sequence):
                    # Before each delivery: may the caller still? A revoked or expired token, a
                    # member removed: the stream ends with the refusal. (Cheap: the token checks
                    # are in memory, a user's role comes from the bounded membership cache.)
                    if access.recheck is not None:
                        await access.recheck()
                    if item.reset_after is not None:
                        yield pb.SubscribeResponse(reset=pb.EventsReset(requested_after_sequence=item.reset_after, head_sequence=item.sequence))
                    elif item.trimmed_after is not None:
                        yield pb.SubscribeResponse(
                            trimmed=pb.EventsTrimmed(requested_after_sequence=item.trimmed_after, first_available_sequence=item.sequence)
                        )
                    else:
                        # The shared reader hands every local subscriber the same item: its message
                        # is built once per process (the stream is the same for all of them).
                        message = item.wire
                        if message is None:
                            message = item.wire = pb.SubscribeResponse(
                                event=pb.Event(
                                    stream=stream,
                                    sequence=item.sequence,
                                    type=item.type,
                                    payload_json=item.payload_json,
                                    created_at=_timestamp(item.created_at),  # type: ignore[arg-type]
                                )
                            )
                        yield message
            except SubscriberLagging as exc:
                raise Aborted(
                    f"the subscriber could not keep up; resubscribe after sequence {exc.resume_after}",
                    reason="SUBSCRIBER_TOO_SLOW",
                    metadata={"resume_after_sequence": str(exc.resume_after)},
                ) from None
            except HubClosing as exc:
                raise Unavailable(
                    f"this replica is shutting down; resubscribe after sequence {exc.resume_after}",
                    reason="REPLICA_DRAINING",
                    metadata={"resume_after_sequence": str(exc.resume_after)},
                ) from None

"""EventService.PublishStream: events sent down one call, appended with coalesced statements.

A worker streaming an LLM's output sends many small events per second. Each unary Publish is a
round trip and a commit of its own; here, while one flush is being committed, the events that
arrive meanwhile wait, and the next flush stores all those of one stream with one statement
(``store.events_append``: one upsert of the stream's head and one INSERT of its events). Each event
is acknowledged with its sequence only once that statement committed: the durability of Publish.

Every event is checked as a Publish would be (its fields, then Publish's own policy against the
caller's principal: a worker only on its agent's streams in its organisation); a refused event gets
an ack carrying the code and message Publish would have failed with, and the call goes on. Acks
come in the order the events were sent, refusals included, so a client matches them by position
or by tag.

Bounds: at most ``MAX_PENDING`` events or ``MAX_PENDING_BYTES`` of payload wait per call (the call
stops reading, so gRPC's flow control holds the sender back), and a flush stores at most
``MAX_FLUSH`` events or ``MAX_FLUSH_BYTES`` per statement.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from switchboard.services.interactions import events
from switchboard.shared.authz import Access, Policy, authorize
from switchboard.shared.errors import DomainError, Unavailable
from switchboard.shared.lifecycle import Component
from switchboard.shared.memberships import NoMemberships
from switchboard.interactions.v1 import event_service_pb2 as pb

MAX_PENDING = 2000
MAX_PENDING_BYTES = 8 << 20
MAX_FLUSH = 500
MAX_FLUSH_BYTES = events.MAX_BATCH_BYTES

Append = Callable[[str, str, list[tuple[str, str]]], Awaitable[tuple[list[int], datetime]]]
"""Stores events of one stream in one committed statement: (organization, stream, [(type,
payload)]) → (their sequences, the time stored)."""


class Draining(Component):
    """Set when the replica drains: every PublishStream call stops reading, stores and acks what it
    read, and ends UNAVAILABLE, instead of holding the server's stop for its grace period."""

    name = "publish-streams"

    def __init__(self) -> None:
        self.draining = asyncio.Event()

    def drain(self) -> None:
        self.draining.set()


@dataclass(slots=True)
class _Pending:
    tag: int
    organization_id: str = ""
    stream: str = ""
    type: str = ""
    payload: str = ""
    size: int = 0
    refusal: DomainError | None = None


class _Window:
    """The events of one call waiting to be stored, bounded in count and bytes."""

    def __init__(self) -> None:
        self.items: deque[_Pending] = deque()
        self.bytes = 0
        self.ended = False
        self.failure: BaseException | None = None
        self.changed = asyncio.Event()

    def full(self) -> bool:
        return len(self.items) >= MAX_PENDING or self.bytes >= MAX_PENDING_BYTES

    def put(self, item: _Pending) -> None:
        self.items.append(item)
        self.bytes += item.size
        self.changed.set()

    def take(self) -> list[_Pending]:
        """The next flush: the oldest events, up to the flush bounds (at least one)."""
        taken: list[_Pending] = []
        size = 0
        while self.items and len(taken) < MAX_FLUSH and (not taken or size + self.items[0].size <= MAX_FLUSH_BYTES):
            item = self.items.popleft()
            size += item.size
            taken.append(item)
        self.bytes -= size
        self.changed.set()
        return taken


async def publish_stream(
    requests: AsyncIterable[pb.PublishStreamRequest],
    access: Access,
    publish_policy: Policy,
    append: Append,
    draining: asyncio.Event | None = None,
) -> AsyncIterator[pb.PublishStreamResponse]:
    """Acks, in the order sent, for the events read from ``requests``, stored through ``append``.

    ``publish_policy`` is Publish's: each event is authorised as that call would be. Raises what
    reading the requests raised (INVALID_ARGUMENT for an undecodable message), what the recheck of
    a long-lived caller raised (a revoked token), or the database's failure; events not yet
    acknowledged then may or may not be stored. When ``draining`` is set (the replica shuts down),
    the call stops reading, stores and acks what it read, and ends UNAVAILABLE.
    """
    window = _Window()
    reader = asyncio.create_task(_read(requests, access, publish_policy, window))
    watcher = asyncio.create_task(_stop_reading_on(draining, reader, window)) if draining is not None else None
    try:
        while True:
            while not window.items and not window.ended:
                window.changed.clear()
                await window.changed.wait()
            if not window.items:
                if window.failure is not None:
                    raise window.failure
                return
            batch = window.take()
            if access.recheck is not None:
                await access.recheck()
            for ack in await _store(batch, append):
                yield ack
    finally:
        for task in (reader, watcher):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (reader, watcher) if t is not None), return_exceptions=True)


async def _stop_reading_on(draining: asyncio.Event, reader: asyncio.Task, window: _Window) -> None:
    await draining.wait()
    if not reader.done():
        window.failure = Unavailable(
            "this replica is shutting down; events not acknowledged were not stored: send them again (any replica)",
            reason="REPLICA_DRAINING",
        )
        reader.cancel()


async def _read(requests: AsyncIterable[pb.PublishStreamRequest], access: Access, publish_policy: Policy, window: _Window) -> None:
    memberships = NoMemberships()  # Publish admits no acting user: no role is ever asked for
    try:
        async for request in requests:
            while window.full():
                window.changed.clear()
                await window.changed.wait()
            window.put(await _check(request, access, publish_policy, memberships))
    except Exception as exc:  # noqa: BLE001 - handed to the writer, which ends the call with it
        window.failure = window.failure or exc
    finally:
        window.ended = True
        window.changed.set()


async def _check(request: pb.PublishStreamRequest, access: Access, publish_policy: Policy, memberships: NoMemberships) -> _Pending:
    """The event to store, or its refusal: the fields as Publish checks them, then Publish's policy."""
    try:
        organization_id, stream, kind, payload = events.one_event(request)
        await authorize(publish_policy, access.principal, request, None, memberships)
    except DomainError as refusal:
        return _Pending(request.tag, refusal=refusal)
    return _Pending(request.tag, organization_id, stream, kind, payload, len(request.payload_json))


async def _store(batch: list[_Pending], append: Append) -> list[pb.PublishStreamResponse]:
    """One statement per stream of the batch (in order of first appearance); the acks in the
    batch's order."""
    by_stream: dict[tuple[str, str], list[_Pending]] = {}
    for item in batch:
        if item.refusal is None:
            by_stream.setdefault((item.organization_id, item.stream), []).append(item)
    sequences: dict[int, int] = {}  # id(item) → its sequence
    for (organization_id, stream), items in by_stream.items():
        stored, _ = await append(organization_id, stream, [(i.type, i.payload) for i in items])
        for item, sequence in zip(items, stored, strict=True):
            sequences[id(item)] = sequence
    acks = []
    for item in batch:
        if item.refusal is not None:
            acks.append(pb.PublishStreamResponse(tag=item.tag, code=item.refusal.code.value[0], message=item.refusal.message))
        else:
            acks.append(pb.PublishStreamResponse(tag=item.tag, sequence=sequences[id(item)]))
    return acks

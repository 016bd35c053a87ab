"""One upstream subscription per stream per edge process, fanned out to every SSE client of it.

A ``Feed`` is the edge's own ``Subscribe`` to a stream (as the edge, an internal caller), opened
beyond any sequence so that the service answers at once with the stream's head (a reset notice)
and the feed is live from there. Each event is encoded into its SSE frame once, kept in a bounded
window (the last ``window_rows`` frames), and every client of the stream takes the frames after its
own position from it.

A client joins only after its own ``Subscribe``, with its own token, was accepted by the service
(the stream's policy, the token's revocation, the subscriber limits: the edge decides nothing about
who may read what). That call also serves its catch-up: a client resuming from before the feed's
window reads its own call until the window covers its position, then drops the call and takes from
the feed. From then on, before each delivery, the edge checks the client's token again as the
service would (expired? revoked, by the list of revocations this process keeps fresh?), so that a
revoked token never rides on the feed. A client that falls behind the window (it does not read) is
ended with where to resume, as the service ends a slow subscriber; when the feed's upstream ends
(a replica drains or dies), every client of it is ended with where to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from bisect import bisect_right
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge
from sse_starlette.sse import ServerSentEvent

from switchboard.services.edge.sse import KEEP_ALIVE
from switchboard.shared.auth import Authenticator, WorkerPrincipal
from switchboard.shared.authz import Access
from switchboard.shared.errors import DomainError, error_info
from switchboard.shared.logs import get_logger
from switchboard.shared.subscriber_limits import SubscriberLimits
from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc

log = get_logger(__name__)

StreamKey = tuple[str, str]  # (organization_id, stream)
WINDOW_ROWS = 1000
WINDOW_BYTES = 4 << 20  # a feed's frames in memory at most (events are up to 1 MiB each)
WRITE_BYTES = 64 << 10  # one write to a client at most (a larger frame goes alone)
# The feed opens after this sequence: beyond any head, so that the first answer is the head.
_BEYOND_ANY = 2**63 - 1


def event_frame(sequence: int, type: str, payload_json: str) -> bytes:
    return ServerSentEvent(data=payload_json, event=type, id=str(sequence)).encode()


def reset_frame(requested_after: int, head: int) -> bytes:
    # The id is the head: a client that reconnects after this resumes from there.
    data = json.dumps({"requested_after_sequence": requested_after, "head_sequence": head})
    return ServerSentEvent(data=data, event="reset", id=str(head)).encode()


def trimmed_frame(requested_after: int, first_available: int) -> bytes:
    data = json.dumps({"requested_after_sequence": requested_after, "first_available_sequence": first_available})
    return ServerSentEvent(data=data, event="trimmed", id=str(first_available - 1)).encode()


def error_frame(code: str, message: str, resume_after: int | str) -> bytes:
    data = json.dumps({"code": code, "message": message, "resume_after_sequence": str(resume_after)})
    return ServerSentEvent(data=data, event="error").encode()


def frames_of(message: pb.SubscribeResponse) -> tuple[int, bytes]:
    """A message of a client's own call: the position after it, and its frame."""
    kind = message.WhichOneof("kind")
    if kind == "reset":
        return message.reset.head_sequence, reset_frame(message.reset.requested_after_sequence, message.reset.head_sequence)
    if kind == "trimmed":
        trimmed = message.trimmed
        return trimmed.first_available_sequence - 1, trimmed_frame(trimmed.requested_after_sequence, trimmed.first_available_sequence)
    event = message.event
    return event.sequence, event_frame(event.sequence, event.type, event.payload_json)


def _sequence(item: tuple[int, bytes]) -> int:
    return item[0]


def _access(principal: WorkerPrincipal) -> Access:
    return Access(principal, "worker", organization_id=principal.organization_id, agent_id=principal.agent_id)


class FeedEnded(Exception):
    """The feed's upstream ended: the client is ended too, with where to resume."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Feed:
    """The edge's one subscription to a stream: every event after ``base`` up to ``tail`` as SSE
    frames (gaps are events trimmed before they were read), ``epoch`` counting the resets; at most
    ``window_rows`` frames and WINDOW_BYTES."""

    def __init__(self, key: StreamKey, call: grpc.aio.UnaryStreamCall, window_rows: int, keep_alive: float):
        self.key = key
        self.clients = 0
        self.base: int | None = None  # None until the service said where the head is
        self.tail = 0
        self.epoch = 0
        self.ended: FeedEnded | None = None
        self.changed = asyncio.Event()
        self._items: list[tuple[int, bytes]] = []
        self._bytes = 0
        self._rows = window_rows
        self._call = call
        self.pings = 0  # bumped when the stream was quiet for ``keep_alive`` seconds
        self._quiet = True
        self._task = asyncio.create_task(self._pump(), name="edge-stream-feed")
        # One timer per stream rather than one per client and event: every client of a quiet
        # stream sends a keep-alive comment when this ticks.
        self._ticker = asyncio.create_task(self._tick(keep_alive), name="edge-stream-keep-alive")

    def covers(self, position: int) -> bool:
        return self.ended is None and self.base is not None and self.base <= position <= self.tail

    def after(self, position: int) -> list[tuple[int, bytes]]:
        start = bisect_right(self._items, position, key=_sequence)
        return self._items[start:]

    def _bound(self) -> None:
        """Drop the oldest frames beyond the window's rows or bytes (the newest always stays)."""
        drop = 0
        while len(self._items) - drop > 1 and (len(self._items) - drop > self._rows or self._bytes > WINDOW_BYTES):
            self._bytes -= len(self._items[drop][1])
            drop += 1
        if drop:
            self.base = self._items[drop - 1][0]
            del self._items[:drop]

    def close(self) -> None:
        self._task.cancel()
        self._ticker.cancel()
        self._call.cancel()

    async def _tick(self, keep_alive: float) -> None:
        while True:
            await asyncio.sleep(keep_alive)
            if self._quiet:
                self.pings += 1
                self._wake()
            self._quiet = True

    def _wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def _pump(self) -> None:
        try:
            async for message in self._call:
                kind = message.WhichOneof("kind")
                if kind == "event":
                    event = message.event
                    frame = event_frame(event.sequence, event.type, event.payload_json)
                    self._items.append((event.sequence, frame))
                    self._bytes += len(frame)
                    self.tail = event.sequence
                    self._quiet = False
                    self._bound()
                elif kind == "reset":
                    # The first answer (the feed opened beyond the head), or the stream's storage
                    # was reset under it: the window starts again at the head.
                    self._items.clear()
                    self._bytes = 0
                    self.base = self.tail = message.reset.head_sequence
                    self.epoch += 1
                else:  # trimmed: nothing is stored up to the first available one
                    self.tail = max(self.tail, message.trimmed.first_available_sequence - 1)
                self._wake()
            self.ended = FeedEnded("UNAVAILABLE", "the stream ended; resubscribe")
        except asyncio.CancelledError:
            self.ended = FeedEnded("CANCELLED", "the edge is shutting down; resubscribe")
            raise
        except grpc.aio.AioRpcError as exc:
            self.ended = FeedEnded(exc.code().name, exc.details() or "the stream ended; resubscribe")
            log.info("stream_feed_ended", code=exc.code().name)
        finally:
            self._wake()


class StreamFanout:
    """The edge's feeds, one per stream with clients, and the checks of each client's token."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        authenticator: Authenticator,
        limits: SubscriberLimits,
        *,
        window_rows: int = WINDOW_ROWS,
        keep_alive: float = 15.0,
        registry: CollectorRegistry | None = None,
    ):
        self._keep_alive = keep_alive
        registry = registry or CollectorRegistry()
        self._opened = Counter("switchboard_edge_stream_feeds_opened", "Upstream subscriptions opened by the edge.", registry=registry)
        Gauge("switchboard_edge_stream_feeds", "Streams this edge process holds one upstream subscription for.", registry=registry).set_function(
            lambda: len(self._feeds)
        )
        Gauge("switchboard_edge_stream_clients", "SSE clients on those subscriptions (catching up or shared).", registry=registry).set_function(
            lambda: sum(feed.clients for feed in self._feeds.values())
        )
        self._stub = event_service_pb2_grpc.EventServiceStub(channel)
        self._authenticator = authenticator
        self._limits = limits
        self._rows = window_rows
        self._feeds: dict[StreamKey, Feed] = {}
        self.upstream_opened = 0
        """How many upstream subscriptions this process opened (tests and metrics count them)."""

    @property
    def feeds(self) -> int:
        return len(self._feeds)

    def refusal(self, principal: WorkerPrincipal, key: StreamKey) -> DomainError | None:
        """Why this client may not hold one more subscription on this process, if it may not."""
        return self._limits.refusal(_access(principal), *key)

    def check(self, principal: WorkerPrincipal) -> None:
        """Raise as the service would now if the token has expired or was revoked (Unauthenticated),
        or if this process's list of revocations is too stale to tell (Unavailable)."""
        self._authenticator.still_valid(principal)

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            feed.close()
        self._feeds.clear()

    def _join(self, key: StreamKey) -> Feed:
        feed = self._feeds.get(key)
        if feed is None or feed.ended is not None:
            # As the edge itself (the channel's internal token): the service sees one subscription.
            call = self._stub.Subscribe(
                pb.SubscribeRequest(stream=key[1], organization_id=key[0], after_sequence=_BEYOND_ANY),
                wait_for_ready=True,
            )
            feed = self._feeds[key] = Feed(key, call, self._rows, self._keep_alive)
            self.upstream_opened += 1
            self._opened.inc()
        feed.clients += 1
        return feed

    def _leave(self, feed: Feed) -> None:
        feed.clients -= 1
        if not feed.clients:
            feed.close()
            if self._feeds.get(feed.key) is feed:
                del self._feeds[feed.key]

    async def events(
        self, principal: WorkerPrincipal, key: StreamKey, after: int, own: grpc.aio.UnaryStreamCall
    ) -> AsyncIterator[bytes]:
        """The SSE frames of one client whose own call ``own`` the service accepted: caught up on
        that call, then from the stream's feed, its token checked again before each delivery."""
        client = _Client(principal, after)
        feed = self._join(key)
        try:
            with contextlib.ExitStack() as held:
                # Checked before the client was answered; a join that raced another for the last
                # slot is ended here, with where to resume.
                try:
                    held.enter_context(self._limits.slot(_access(principal), *key))
                except DomainError as exc:
                    own.cancel()
                    yield error_frame(exc.code.name, exc.message, client.position)
                    return
                # (aclosing: a client that leaves mid-way cancels its own call now, not at the GC.)
                async with contextlib.aclosing(self._catch_up(client, feed, own)) as frames:
                    async for frame in frames:
                        yield frame
                if client.ended:
                    return
                async with contextlib.aclosing(self._shared(client, feed)) as frames:
                    async for frame in frames:
                        yield frame
        finally:
            self._leave(feed)

    async def _catch_up(self, client: _Client, feed: Feed, own: grpc.aio.UnaryStreamCall) -> AsyncIterator[bytes]:
        """Frames from the client's own call until the feed covers its position (the feed may get
        there while the call has nothing new: whichever comes first); the call is then dropped."""
        reading: asyncio.Future | None = None
        try:
            while not feed.covers(client.position):
                if reading is None:
                    reading = asyncio.ensure_future(own.read())
                waits = (reading,) if feed.ended is not None else (reading, asyncio.ensure_future(feed.changed.wait()))
                await asyncio.wait(waits, timeout=self._keep_alive, return_when=asyncio.FIRST_COMPLETED)
                for other in waits[1:]:
                    other.cancel()
                if not reading.done():
                    if not any(w.done() for w in waits):
                        yield KEEP_ALIVE  # nothing for a while: a comment keeps proxies from closing
                    continue
                message = await reading
                reading = None
                if message is grpc.aio.EOF:
                    client.ended = True
                    return
                client.position, frame = frames_of(message)
                yield frame
        except grpc.aio.AioRpcError as exc:
            client.ended = True
            if exc.code() != grpc.StatusCode.CANCELLED:
                info = error_info(exc)
                resume = info.metadata.get("resume_after_sequence", client.position) if info else client.position
                yield error_frame(exc.code().name, exc.details() or "", resume)
        finally:
            if reading is not None:
                reading.cancel()
            own.cancel()

    async def _shared(self, client: _Client, feed: Feed) -> AsyncIterator[bytes]:
        """Frames from the feed's window after the client's position, until the feed ends, the
        client falls behind the window, or its token may no longer read."""
        epoch, pinged = feed.epoch, feed.pings
        while True:
            changed = feed.changed
            if feed.epoch != epoch:
                epoch = feed.epoch
                assert feed.base is not None
                if client.position > feed.base:  # the stream was reset below the position
                    yield reset_frame(client.position, feed.base)
                    client.position = feed.base
            if feed.ended is not None:
                yield error_frame(feed.ended.code, feed.ended.message, client.position)
                return
            assert feed.base is not None
            if client.position < feed.base:
                message = f"the client could not keep up; resubscribe after sequence {client.position}"
                yield error_frame("ABORTED", message, client.position)
                return
            # What the window holds after the position goes out in few writes (a client that was a
            # few events behind catches up in one), each event checked; a write is at most
            # WRITE_BYTES (or one frame): a client resuming at the window's start that then stops
            # reading must not pin the whole window (4 MiB) in the edge's send buffer.
            out: list[bytes] = []
            size, full = 0, False
            for sequence, frame in feed.after(client.position):
                if out and size + len(frame) > WRITE_BYTES:
                    full = True  # the rest in the next round (the window is looked at again)
                    break
                try:
                    self._authenticator.still_valid(client.principal)  # before each delivery
                except DomainError as exc:
                    out.append(error_frame(exc.code.name, exc.message, client.position))
                    yield b"".join(out)
                    return
                if sequence > client.position + 1:
                    out.append(trimmed_frame(client.position, sequence))  # trimmed before the feed read it
                out.append(frame)
                size += len(frame)
                client.position = sequence
            if not full and feed.tail > client.position and not feed.after(client.position):  # trimmed up to the tail
                out.append(trimmed_frame(client.position, feed.tail + 1))
                client.position = feed.tail
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
            elif feed.pings != pinged:
                pinged = feed.pings
                yield KEEP_ALIVE
            elif feed.changed is changed:
                await changed.wait()


@dataclass
class _Client:
    """One SSE client of a stream: whose token, and the last sequence it was sent."""

    principal: WorkerPrincipal
    position: int
    ended: bool = False

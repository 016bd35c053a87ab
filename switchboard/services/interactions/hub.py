"""Fan-out of event streams inside one process, woken by PostgreSQL LISTEN/NOTIFY.

The events table is the source of truth. One listening connection per process receives a
notification per commit (the stream's key and last sequence, never the payload). For each stream
with local subscribers, one reader turns those notifications into one bounded read of the new
events (by count and by bytes) into the stream's shared window (window.py), and wakes the local
subscribers, who take the events from memory, each at its own position: one read per event per
process, however many subscribers. A subscriber behind the window (resuming from further back, or
too slow to keep up with it) reads the table itself, a bounded page at a time, until it is inside
the window, then takes from it like the others. The reader also reads every poll interval, which
covers a missed notification; when the listening connection drops (PostgreSQL restarts, the
network blinks) the hub reconnects, every window starts again from its stream's head, and the
subscribers read on from their position: nothing is lost, nothing is delivered twice, the order is
the sequence.

A subscriber resuming after a sequence beyond the stream's head (the stream was lost in a reset or
restore) is told so with a reset notice carrying the head, then reads on from the head; so is a
caught-up subscriber whose position is beyond the head when the database comes back.

A subscriber that has caught up once and then falls more than ``max_lag`` events behind the head
of its stream (its client does not read fast enough) is ended with the position to resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from switchboard.services.interactions import store
from switchboard.services.interactions.window import StreamItem, Window
from switchboard.shared.lifecycle import BackgroundLoop
from switchboard.shared.logs import get_logger

log = get_logger(__name__)

__all__ = ["HubClosing", "StreamHub", "StreamItem", "SubscriberLagging"]

StreamKey = tuple[str, str]  # (organization_id, stream name)
PAGE_ROWS = 200
PAGE_BYTES = 4 << 20
# A stream's shared window: enough for subscribers a few pages apart to share it; a subscriber
# further behind reads the table itself (which is what every subscriber did before windows).
WINDOW_ROWS = 1000
WINDOW_BYTES = 4 << 20
# What PostgreSQL going away looks like to a reader (a restart, a failover, a network blink).
_OUTAGE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # What asyncpg raises when a connection broken by the outage is reset on its way back to the
    # pool ("cannot switch to state …; another operation is in progress").
    asyncpg.InternalClientError,
)


class HubClosing(Exception):
    """The process is shutting down: resubscribe, on any replica, after ``resume_after``."""

    def __init__(self, resume_after: int):
        super().__init__(f"this replica is shutting down; resume after sequence {resume_after}")
        self.resume_after = resume_after


class SubscriberLagging(Exception):
    """The subscriber fell too far behind: it must resubscribe after ``resume_after``."""

    def __init__(self, resume_after: int):
        super().__init__(f"subscriber fell behind after sequence {resume_after}")
        self.resume_after = resume_after


class _Stream:
    """One stream with local subscribers: its head, its shared window and the one task that reads
    into it, and the wake-ups (``dirty``: there may be new events to read; ``changed``: the window
    grew, or something else every subscriber must see)."""

    __slots__ = ("head", "subscribers", "window", "reader", "dirty", "changed")

    def __init__(self) -> None:
        self.head = 0
        self.subscribers = 0
        self.window: Window | None = None
        self.reader: asyncio.Task | None = None
        self.dirty = asyncio.Event()
        self.changed = asyncio.Event()

    def wake(self) -> None:
        # Waiters hold the event they saw before reading; a fresh one serves the next round.
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class TableReads:
    """How often the hub reads the events table, by kind: ``shared`` (a stream's reader, once per
    notification however many subscribers), ``catch_up`` (a subscriber behind its stream's window),
    ``bounds`` (a stream's first and last sequence). A Prometheus counter, so that the sharing can
    be watched (and is counted by the tests) in production as it runs."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        counter = Counter(
            "switchboard_events_table_reads",
            "Reads of the events table by the stream hub, by kind (shared, catch_up, bounds).",
            ["read"],
            registry=self.registry,
        )
        self.shared, self.catch_up, self.bounds = (counter.labels(kind) for kind in ("shared", "catch_up", "bounds"))

    def value(self, kind: str) -> float:
        return self.registry.get_sample_value("switchboard_events_table_reads_total", {"read": kind}) or 0.0


class StreamHub(BackgroundLoop):
    """One per process: the listening connection and the streams that have local subscribers."""

    name = "stream-hub"

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        poll_seconds: float = 1.0,
        max_lag: int = 1000,
        registry: CollectorRegistry | None = None,
        window_rows: int = WINDOW_ROWS,
        window_bytes: int = WINDOW_BYTES,
    ):
        self._pool = pool
        self._dsn = dsn
        self._poll = poll_seconds
        self._max_lag = max_lag
        self._window_rows = window_rows
        self._window_bytes = window_bytes
        self._streams: dict[StreamKey, _Stream] = {}
        self._listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._closing = False
        self.listening = asyncio.Event()
        """Set while the listening connection is up."""
        self._generation = 0  # how many times the listening connection was (re)established
        self.reads = TableReads(registry)

    # -- lifecycle -------------------------------------------------------------------------------

    async def _loop(self) -> None:
        await self._run()

    async def _after_stop(self) -> None:
        readers = [s.reader for s in self._streams.values() if s.reader is not None]
        for reader in readers:
            reader.cancel()
        for reader in readers:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._close_listener()

    def drain(self) -> None:
        self.close_subscribers()

    def close_subscribers(self) -> None:
        """End every subscription now (they resubscribe elsewhere), so that none holds up a
        graceful stop; new subscriptions are refused from here on."""
        self._closing = True
        for state in self._streams.values():
            state.wake()

    @property
    def subscriber_count(self) -> int:
        return sum(state.subscribers for state in self._streams.values())

    # -- subscribing -----------------------------------------------------------------------------

    async def subscribe(self, organization_id: str, stream: str, after: int) -> AsyncIterator[StreamItem]:
        """Events of the stream after ``after``, in order: stored ones, then live ones. Raises
        HubClosing when the process drains, SubscriberLagging when the subscriber falls behind."""
        key = (organization_id, stream)
        state = self._streams.get(key)
        if state is None:
            state = self._streams[key] = _Stream()
            state.reader = asyncio.create_task(self._read_shared(key, state), name="stream-reader")
        state.subscribers += 1
        position = after
        caught_up = False
        bounds_checked_at: int | None = None  # the listener generation of the last bounds check
        try:
            while True:
                if self._closing:
                    raise HubClosing(position)
                changed = state.changed  # taken before reading: a wake-up after the read is not lost
                window = state.window
                shared = window is not None and window.generation == self._generation and window.covers(position)
                if shared:
                    assert window is not None
                    items = window.after(position, PAGE_ROWS)
                else:
                    # Behind the window (or none yet, or ahead of it): read the table itself.
                    self.reads.catch_up.inc()
                    rows = await self._survive_outage(store.events_after, organization_id, stream, position, PAGE_ROWS, PAGE_BYTES)
                    items = [StreamItem(r["sequence"], r["type"], r["payload_json"], r["created_at"]) for r in rows]
                if items:
                    if items[0].sequence > position + 1:
                        # Trimmed by retention before it was read: say so, never jump silently.
                        yield StreamItem(sequence=items[0].sequence, trimmed_after=position)
                    for item in items:
                        yield item
                        position = item.sequence
                    if position > state.head:
                        state.head = position
                    if caught_up and state.head - position > self._max_lag:
                        raise SubscriberLagging(position)
                    continue
                # Caught up: check the stream's bounds once, and again whenever the database came
                # back (it may have come back reset, below everyone's position). Inside a window
                # read under the current connection there is nothing to check: the position is
                # at most the head, and nothing after it was missed.
                if bounds_checked_at != self._generation:
                    caught_up = True
                    bounds_checked_at = self._generation
                    if not shared:
                        self.reads.bounds.inc()
                        first, last = await self._survive_outage(store.stream_bounds, organization_id, stream)
                        if position > last:
                            # Beyond the head: those sequences never existed here (the database was
                            # reset or restored), and waiting after them would miss every new event
                            # until the stream grew past them. Say so, and go on from the head.
                            yield StreamItem(sequence=last, reset_after=position)
                            position = state.head = last
                            continue  # on from the head (the window may cover it)
                        elif first > position + 1 and last > position:
                            # Everything after the position was trimmed and nothing newer is stored.
                            yield StreamItem(sequence=first, trimmed_after=position)
                            position = first - 1
                            continue  # on from the new position (the window may cover it)
                # The reader wakes us when the window grows; the timeout is only a safety net.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await changed.wait()
        finally:
            state.subscribers -= 1
            if not state.subscribers and self._streams.get(key) is state:
                del self._streams[key]
                if state.reader is not None:
                    state.reader.cancel()

    async def _read_shared(self, key: StreamKey, state: _Stream) -> None:
        """The one reader of a stream in this process: opens its window at the stream's head,
        then, on each notification (and every poll interval), reads the events after the window's
        tail into it and wakes the subscribers. Runs until the stream's last local subscriber
        leaves (it is cancelled then)."""
        organization_id, stream = key
        while True:
            try:
                window = state.window
                if window is None or window.generation != self._generation:
                    # (Re)open at the head: a window read under an earlier listening connection may
                    # hold events of a database that since came back reset.
                    generation = self._generation
                    self.reads.bounds.inc()
                    _, last = await self._survive_outage(store.stream_bounds, organization_id, stream)
                    if generation == self._generation:
                        state.window = Window(last, generation, max_rows=self._window_rows, max_bytes=self._window_bytes)
                        state.wake()  # subscribers reading the table may now take from the window
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await state.dirty.wait()
                state.dirty.clear()  # cleared before the read: a notification during it reads again
                self.reads.shared.inc()
                rows = await self._survive_outage(store.events_after, organization_id, stream, window.tail, PAGE_ROWS, PAGE_BYTES)
                if not rows or state.window is not window or window.generation != self._generation:
                    continue
                window.extend(StreamItem(r["sequence"], r["type"], r["payload_json"], r["created_at"]) for r in rows)
                if window.tail > state.head:
                    state.head = window.tail
                if len(rows) == PAGE_ROWS or sum(len(r["payload_json"]) for r in rows) >= PAGE_BYTES // 2:
                    state.dirty.set()  # a full page: there may be more
                state.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the reader must outlive any one read's failure
                # Not an outage (those are waited out above): log it, and read again shortly; the
                # subscribers meanwhile read the table themselves if they are behind.
                log.error("stream_reader_failed", exc_info=exc)
                await asyncio.sleep(min(self._poll, 0.5))

    async def _survive_outage(self, read, *args):
        """Run a read on the pool; while PostgreSQL is unreachable (restarting), wait and retry
        rather than end the subscription: the table will still hold everything when it is back.
        (Draining still ends it: the subscriber loop checks between reads.)"""
        while True:
            try:
                return await read(self._pool, *args)
            except _OUTAGE as exc:
                log.warning("stream_read_waiting_for_database", error=type(exc).__name__)
                await asyncio.sleep(min(self._poll, 0.5))

    # -- listening -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
                await self._lost.wait()
                raise ConnectionError("the listening connection was lost")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError) as exc:
                log.warning("stream_hub_reconnecting", error=type(exc).__name__, detail=str(exc)[:200])
                self.listening.clear()
                await self._close_listener()
                await asyncio.sleep(min(self._poll, 0.5))

    async def _listen(self) -> None:
        self._lost.clear()
        self._listener = await asyncpg.connect(self._dsn)
        self._listener.add_termination_listener(lambda _: self._lost.set())
        await self._listener.add_listener(store.EVENTS_CHANNEL, self._on_notify)
        self._generation += 1
        self.listening.set()
        # Anything published while nobody listened is in the table: every reader reopens its window
        # at the head, and every subscriber reads on from its position.
        for state in self._streams.values():
            state.dirty.set()
            state.wake()

    def _on_notify(self, connection: object, pid: int, channel: str, payload: str) -> None:
        organization_id, _, rest = payload.partition(" ")
        stream, _, last = rest.rpartition(" ")
        state = self._streams.get((organization_id, stream))
        if state is not None:
            if last.isdigit():
                state.head = max(state.head, int(last))
            state.dirty.set()  # the stream's reader reads the new events, then wakes its subscribers

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), 2)

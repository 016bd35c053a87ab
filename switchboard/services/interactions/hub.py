"""Fan-out of event streams inside one process, woken by PostgreSQL LISTEN/NOTIFY.

The events table is the source of truth and every subscriber reads it: after its position, a
bounded page at a time (by count and by bytes), so a subscriber never holds more than one page in
memory however far behind it is. When a subscriber has read everything, it waits for a wake-up.
One listening connection per process receives a notification per commit (the stream's key and
last sequence, never the payload) and wakes the local subscribers of that stream. A wait also ends
after the poll interval, which covers a missed notification; when the listening connection drops
(PostgreSQL restarts, the network blinks) the hub reconnects and wakes everyone, who simply read
on from their position: nothing is lost, nothing is delivered twice, the order is the sequence.

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
from dataclasses import dataclass, field

import asyncpg

from switchboard.services.interactions import store
from switchboard.shared.lifecycle import BackgroundLoop
from switchboard.shared.logs import get_logger

log = get_logger(__name__)

StreamKey = tuple[str, str]  # (organization_id, stream name)
PAGE_ROWS = 200
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
PAGE_BYTES = 4 << 20


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


@dataclass(frozen=True)
class StreamItem:
    """What a subscription yields: an event, or the notice that events were trimmed."""

    sequence: int
    type: str = ""
    payload_json: str = ""
    created_at: object = None
    trimmed_after: int | None = None  # set on the notice: the sequence that was asked for
    reset_after: int | None = None  # set on the reset notice (``sequence`` is then the head)


@dataclass
class _Stream:
    """The local subscribers' shared view of one stream: its head, and the wake-up to wait on."""

    head: int = 0
    subscribers: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        # Waiters hold the event they saw before reading; a fresh one serves the next round.
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class StreamHub(BackgroundLoop):
    """One per process: the listening connection and the streams that have local subscribers."""

    name = "stream-hub"

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, poll_seconds: float = 1.0, max_lag: int = 1000):
        self._pool = pool
        self._dsn = dsn
        self._poll = poll_seconds
        self._max_lag = max_lag
        self._streams: dict[StreamKey, _Stream] = {}
        self._listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._closing = False
        self.listening = asyncio.Event()
        """Set while the listening connection is up."""
        self._generation = 0  # how many times the listening connection was (re)established

    # -- lifecycle -------------------------------------------------------------------------------

    async def _loop(self) -> None:
        await self._run()

    async def _after_stop(self) -> None:
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
        state = self._streams.setdefault(key, _Stream())
        state.subscribers += 1
        position = after
        caught_up = False
        bounds_checked_at: int | None = None  # the listener generation of the last bounds check
        try:
            while True:
                if self._closing:
                    raise HubClosing(position)
                changed = state.changed  # taken before reading: a wake-up after the read is not lost
                rows = await self._survive_outage(store.events_after, organization_id, stream, position, PAGE_ROWS, PAGE_BYTES)
                if rows:
                    if rows[0]["sequence"] > position + 1:
                        # Trimmed by retention before it was read: say so, never jump silently.
                        yield StreamItem(sequence=rows[0]["sequence"], trimmed_after=position)
                    for row in rows:
                        yield StreamItem(row["sequence"], row["type"], row["payload_json"], row["created_at"])
                        position = row["sequence"]
                    state.head = max(state.head, position)
                    if caught_up and state.head - position > self._max_lag:
                        raise SubscriberLagging(position)
                    continue
                # Caught up: check the stream's bounds once, and again whenever the database came
                # back (it may have come back reset, below everyone's position).
                if bounds_checked_at != self._generation:
                    caught_up = True
                    bounds_checked_at = self._generation
                    first, last = await self._survive_outage(store.stream_bounds, organization_id, stream)
                    if position > last:
                        # Beyond the head: those sequences never existed here (the database was
                        # reset or restored), and waiting after them would miss every new event
                        # until the stream grew past them. Say so, and go on from the head.
                        yield StreamItem(sequence=last, reset_after=position)
                        position = state.head = last
                    elif first > position + 1 and last > position:
                        # Everything after the position was trimmed and nothing newer is stored.
                        yield StreamItem(sequence=first, trimmed_after=position)
                        position = first - 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self._poll)
        finally:
            state.subscribers -= 1
            if not state.subscribers and self._streams.get(key) is state:
                del self._streams[key]

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
        # Anything published while nobody listened is in the table: everyone reads on.
        for state in self._streams.values():
            state.wake()

    def _on_notify(self, connection: object, pid: int, channel: str, payload: str) -> None:
        organization_id, _, rest = payload.partition(" ")
        stream, _, last = rest.rpartition(" ")
        state = self._streams.get((organization_id, stream))
        if state is not None:
            if last.isdigit():
                state.head = max(state.head, int(last))
            state.wake()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), 2)

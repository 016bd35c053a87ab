"""One EventService.PublishStream per worker process: events go down the call as they are sent,
and each caller waits (or not) for its own event's ack, which the server gives once the event is
committed. Events of one call are stored in the order sent; the server coalesces what arrives
while it commits, so a worker streaming many small events pays one statement per flush, not one
round trip and one commit per event.

When the call breaks (the replica went away), every event still waiting for its ack fails with
``PublishInterrupted`` (it may or may not be stored: the server acks only what committed), and
the next event opens a new call. An event the server refuses fails with ``PublishRefused``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence

import grpc

from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc

MAX_IN_FLIGHT = 1000
"""Events sent and not yet acknowledged, per process: a sender past it waits for room."""


class PublishRefused(Exception):
    """The server refused the event (bad input, a stream the token may not use); it is not stored.
    ``code`` is the gRPC status code Publish would have failed with."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class PublishInterrupted(Exception):
    """The call broke before the event's ack: it may or may not be stored."""


_CODES = {code.value[0]: code for code in grpc.StatusCode}


class Publisher:
    """Publishes over one PublishStream call, opened on the first event and again after a break."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]], *, max_in_flight: int = MAX_IN_FLIGHT):
        self._stub = event_service_pb2_grpc.EventServiceStub(channel)
        self._metadata = tuple(metadata)
        self._room = asyncio.Semaphore(max_in_flight)
        self._tags = itertools.count(1)
        self._call: _Call | None = None
        self._closed = False

    async def publish(self, organization_id: str, stream: str, type: str, payload_json: str) -> int:
        """Send one event and wait for its ack: its sequence in ``stream``. Raises PublishRefused
        or PublishInterrupted."""
        return await (await self.send(organization_id, stream, type, payload_json))

    async def send(self, organization_id: str, stream: str, type: str, payload_json: str) -> asyncio.Future[int]:
        """Send one event, waiting only for room among the events in flight; the future resolves
        to its sequence once committed (or fails as ``publish`` raises). Events sent one after the
        other are stored in that order."""
        if self._closed:
            raise RuntimeError("the publisher is closed")
        await self._room.acquire()
        call = self._call if self._call is not None and not self._call.broken else self._open()
        future = call.send(
            pb.PublishStreamRequest(
                tag=next(self._tags), stream=stream, organization_id=organization_id, type=type, payload_json=payload_json
            )
        )
        future.add_done_callback(lambda _: self._room.release())
        return future

    async def aclose(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout``) for the acks of the events in flight, then end the call."""
        self._closed = True
        if self._call is not None:
            await self._call.finish(timeout)

    def _open(self) -> _Call:
        self._call = _Call(self._stub, self._metadata)
        return self._call


class _Call:
    """One PublishStream call: its outgoing queue and the futures of the events awaiting acks."""

    def __init__(self, stub: event_service_pb2_grpc.EventServiceStub, metadata: tuple[tuple[str, str], ...]):
        self.broken = False
        self._outgoing: asyncio.Queue[pb.PublishStreamRequest | None] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._call = stub.PublishStream(self._requests(), metadata=metadata)
        self._reader = asyncio.create_task(self._read())

    def send(self, request: pb.PublishStreamRequest) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[request.tag] = future
        self._outgoing.put_nowait(request)
        return future

    async def finish(self, timeout: float) -> None:
        self._outgoing.put_nowait(None)  # half-close: the server acks what it has, then ends
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            self._call.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _requests(self) -> AsyncIterator[pb.PublishStreamRequest]:
        while (request := await self._outgoing.get()) is not None:
            yield request

    async def _read(self) -> None:
        error: BaseException | None = None
        try:
            async for ack in self._call:
                future = self._waiting.pop(ack.tag, None)
                if future is None or future.done():
                    continue  # its sender gave up waiting (cancelled)
                if ack.code == 0:
                    future.set_result(ack.sequence)
                else:
                    future.set_exception(PublishRefused(_CODES.get(ack.code, grpc.StatusCode.UNKNOWN), ack.message))
        except grpc.aio.AioRpcError as exc:
            error = exc
        except asyncio.CancelledError:
            error = None
        finally:
            self.broken = True
            for future in self._waiting.values():
                if not future.done():
                    reason = f"the publish call ended ({error.code().name}: {error.details()})" if isinstance(error, grpc.aio.AioRpcError) else "the publish call ended"
                    future.set_exception(PublishInterrupted(f"{reason} before this event's ack; it may or may not be stored"))
            self._waiting.clear()

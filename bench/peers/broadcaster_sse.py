"""The Python peer of event streams: encode/broadcaster on PostgreSQL LISTEN/NOTIFY, served as
server-sent events by sse-starlette (what a team would write instead of Switchboard's streams: no
history, no resume, no authentication). Run as its own process:

    DATABASE_URL=postgresql://… uvicorn bench.peers.broadcaster_sse:app --port N

``GET /sub/{channel}`` streams every message published after it subscribed; ``POST /pub/{channel}``
publishes the request's body (NOTIFY on the process's one connection, delivered back to it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from broadcaster import Broadcast
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_connection = asyncio.Lock()  # turns on broadcaster's one PostgreSQL connection
broadcast = Broadcast(os.environ.get("DATABASE_URL", "postgresql://localhost/postgres").replace("postgresql://", "postgres://", 1))


async def subscribe(request: Request) -> Response:
    channel = request.path_params["channel"]

    async def events() -> AsyncIterator[dict]:
        # broadcaster 0.3.1 loses all but one of the first subscribers of a channel that arrive
        # together (each awaits its LISTEN, then each sets the channel's set to its own queue),
        # and its one connection refuses a second operation while one is under way (LISTEN,
        # UNLISTEN, NOTIFY): each takes its turn, the smallest fix a team would make.
        held = contextlib.AsyncExitStack()
        async with _connection:
            subscriber = await held.enter_async_context(broadcast.subscribe(channel=channel))
        try:
            async for event in subscriber:  # type: ignore[union-attr]
                yield {"event": "bench", "data": event.message}
        finally:
            async with _connection:
                await held.aclose()

    return EventSourceResponse(events())


async def publish(request: Request) -> Response:
    message = (await request.body()).decode()
    async with _connection:
        await broadcast.publish(channel=request.path_params["channel"], message=message)
    return Response(status_code=204)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await broadcast.connect()
    yield
    await broadcast.disconnect()


app = Starlette(
    routes=[Route("/sub/{channel}", subscribe, methods=["GET"]), Route("/pub/{channel}", publish, methods=["POST"])],
    lifespan=lifespan,
)

"""Serve an ASGI app on loopback inside the test's event loop (a real HTTP server, port 0)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn


@contextlib.asynccontextmanager
async def serve_asgi(app) -> AsyncIterator[str]:
    """Yield the base URL of ``app`` served by uvicorn; stop it on exit."""
    # A socket that already listens: requests queue in its backlog until uvicorn accepts them, so
    # callers need no wait for start-up.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await task
        sock.close()

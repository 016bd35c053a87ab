"""Many SSE clients in one process, as cheap as a Python client gets (asyncio protocols, no
parsing beyond counting events): each counts the events it received by a marker every event's
payload carries, whatever the server's framing or chunking."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MARKER = b'"bench"'


class _Client(asyncio.Protocol):
    __slots__ = ("pool", "request", "count", "target", "tail", "status", "transport", "answered")

    def __init__(self, pool: SseClients, request: bytes):
        self.pool = pool
        self.request = request
        self.count = 0
        self.target = 0
        self.tail = b""
        self.status = b""
        self.transport: asyncio.Transport | None = None
        self.answered = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.answered.done():
            self.status = data[:12]
            self.answered.set_result(data.startswith(b"HTTP/1.1 200"))
        chunk = self.tail + data
        found = chunk.count(MARKER)
        self.tail = chunk[-(len(MARKER) - 1) :]
        if found:
            before = self.count
            self.count += found
            if before < self.target <= self.count:
                self.pool.reached()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_result(False)


class SseClients:
    """``count`` GET requests kept open; ``until`` waits for every client to reach its target."""

    def __init__(self) -> None:
        self.clients: list[_Client] = []
        self._remaining = 0
        self._done: asyncio.Future | None = None

    async def open(self, host: str, port: int, paths: list[str], headers: Callable[[int], dict[str, str]]) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(50)

        async def one(i: int, path: str) -> _Client:
            lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
            lines += [f"{k}: {v}" for k, v in headers(i).items()]
            client = _Client(self, ("\r\n".join(lines) + "\r\n\r\n").encode())
            async with gate:
                await loop.create_connection(lambda: client, host, port)
                if not await asyncio.wait_for(client.answered, 30):
                    raise RuntimeError(f"subscription refused: {client.status!r}")
            return client

        self.clients = list(await asyncio.gather(*(one(i, p) for i, p in enumerate(paths))))

    def reached(self) -> None:
        self._remaining -= 1
        if self._remaining == 0 and self._done is not None and not self._done.done():
            self._done.set_result(None)

    def expect(self, more: Callable[[int], int]) -> asyncio.Future:
        """From now, client ``i`` must receive ``more(i)`` more events; the future is done when
        every client has."""
        self._done = asyncio.get_running_loop().create_future()
        self._remaining = 0
        for i, client in enumerate(self.clients):
            client.target = client.count + more(i)
            if client.target > client.count:
                self._remaining += 1
        if not self._remaining:
            self._done.set_result(None)
        return self._done

    def close(self) -> None:
        for client in self.clients:
            if client.transport is not None:
                client.transport.close()

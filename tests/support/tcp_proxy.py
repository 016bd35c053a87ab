"""A loopback TCP proxy to PostgreSQL that a test cuts and restores: the route of one replica to its
database, which the network can take away while clients still reach the replica. It forwards to
a Unix socket (the embedded server) or to a TCP address (a server given by DATABASE_URL)."""

from __future__ import annotations

import asyncio
import contextlib


class CuttableProxy:
    """Listens on 127.0.0.1 and pipes each connection to PostgreSQL (a Unix socket path, or host
    and port).

    ``cut()`` is the route gone: the listener closes (a new connection is refused) and every
    connection through it is torn down. ``restore()`` listens again on the same port.
    """

    def __init__(self, upstream: str | tuple[str, int]):
        self._upstream = upstream
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0
        """How many connections were piped through (evidence that the route was in use)."""

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as a broken route gives: no goodbye to either side
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self.cut()

    async def _pipe(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            if isinstance(self._upstream, str):
                server_reader, server_writer = await asyncio.open_unix_connection(self._upstream)
            else:
                server_reader, server_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((client_writer, server_writer))
        try:
            await asyncio.gather(_copy(client_reader, server_writer), _copy(server_reader, client_writer))
        finally:
            for writer in (client_writer, server_writer):
                self._writers.discard(writer)
                writer.transport.abort()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()

"""A provider API stand-in for the secret proxy's tests: a real HTTP server (serve_asgi) that
records what it received and answers in the ways real upstreams do (JSON, echoes, event streams,
gzip, stalls, broken connections)."""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return values[0] if values else None


@dataclass
class FakeUpstream:
    received: list[Received] = field(default_factory=list)
    stall: asyncio.Event = field(default_factory=asyncio.Event)  # set to release /stall
    stalling: asyncio.Event = field(default_factory=asyncio.Event)  # set once a request waits in /stall

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/sse", self._sse, methods=["GET", "POST"]),
                Route("/echo-headers", self._echo_headers, methods=["GET", "POST"]),
                Route("/gzip-echo", self._gzip_echo, methods=["GET"]),
                Route("/stall", self._stall, methods=["GET"]),
                Route("/break", self._break, methods=["GET"]),
                Route("/big", self._big, methods=["GET"]),
                Route("/{path:path}", self._json, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            ]
        )

    async def _record(self, request: Request) -> Received:
        received = Received(
            request.method,
            request.url.path,
            request.url.query,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            await request.body(),
        )
        self.received.append(received)
        return received

    async def _json(self, request: Request) -> Response:
        received = await self._record(request)
        return JSONResponse(
            {"ok": True, "path": received.path, "bytes": len(received.body)},
            status_code=int(request.query_params.get("status", "200")),
            headers={"x-upstream": "fake", "connection": "close, x-hop", "x-hop": "1", "keep-alive": "timeout=5"},
        )

    async def _echo_headers(self, request: Request) -> Response:
        """Echoes every header it received, in its body and as x-echo-* headers (a careless API)."""
        received = await self._record(request)
        return JSONResponse(dict(received.headers), headers={f"x-echo-{k}": v for k, v in received.headers if k == "authorization"})

    async def _gzip_echo(self, request: Request) -> Response:
        received = await self._record(request)
        body = gzip.compress(json.dumps(dict(received.headers)).encode())
        return Response(body, media_type="application/json", headers={"content-encoding": "gzip"})

    async def _sse(self, request: Request) -> Response:
        await self._record(request)
        count = int(request.query_params.get("count", "100"))
        gap = float(request.query_params.get("gap", "0.05"))

        async def events():
            for i in range(count):
                yield f"id: {i}\ndata: {{\"n\": {i}}}\n\n".encode()
                await asyncio.sleep(gap)  # the upstream's pace, which the test measures arrivals against

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _stall(self, request: Request) -> Response:
        await self._record(request)
        self.stalling.set()
        await self.stall.wait()
        return JSONResponse({"ok": True})

    async def _break(self, request: Request) -> Response:
        await self._record(request)

        async def then_fail():
            yield b"partial"
            raise RuntimeError("the upstream breaks off")  # uvicorn drops the connection

        return StreamingResponse(then_fail(), media_type="text/plain")

    async def _big(self, request: Request) -> Response:
        await self._record(request)
        return Response(b"x" * (300 * 1024), media_type="application/octet-stream")

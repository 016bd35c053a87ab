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


@dataclass
class FakeProvider:
    """Just enough of Anthropic's Messages API and OpenAI's Chat Completions API for their SDKs to
    complete a streaming request: `POST /v1/messages` and `POST /v1/chat/completions` answer with
    the providers' event streams, but only to a request that carries ``key`` as its credential
    (``x-api-key``, or ``Authorization: Bearer``), and 401 otherwise. Like a careless API, the
    streamed text quotes the credential it received, so a test can see whether it came back."""

    key: str
    received: list[Received] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
            ]
        )

    async def _credential(self, request: Request) -> tuple[Received, str | None]:
        received = Received(
            request.method,
            request.url.path,
            request.url.query,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            await request.body(),
        )
        self.received.append(received)
        bearer = (received.header("authorization") or "").removeprefix("Bearer ")
        credential = received.header("x-api-key") or bearer
        return received, credential if credential == self.key else None

    async def _anthropic(self, request: Request) -> Response:
        received, credential = await self._credential(request)
        if credential is None:
            return JSONResponse({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}, 401)
        model = json.loads(received.body)["model"]
        texts = ["Hello", " from the loopback provider;", f" you sent {credential}"]
        events = [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_loopback", "type": "message", "role": "assistant", "content": [], "model": model,
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("ping", {"type": "ping"}),
            *[("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}) for t in texts],
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": len(texts)}}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        return self._stream(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)

    async def _openai(self, request: Request) -> Response:
        received, credential = await self._credential(request)
        if credential is None:
            return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}, 401)
        model = json.loads(received.body)["model"]

        def chunk(delta: dict, finish: str | None = None) -> str:
            data = {"id": "chatcmpl-loopback", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
            return f"data: {json.dumps(data)}\n\n"

        texts = ["Hello", " from the loopback provider;", f" you sent {credential}"]
        lines = [chunk({"role": "assistant", "content": ""}), *[chunk({"content": t}) for t in texts], chunk({}, "stop"), "data: [DONE]\n\n"]
        return self._stream(lines)

    @staticmethod
    def _stream(parts) -> Response:
        async def body():
            for part in parts:
                yield part.encode()
                await asyncio.sleep(0)  # one chunk at a time, as a provider streams

        return StreamingResponse(body(), media_type="text/event-stream")

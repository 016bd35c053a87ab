"""A run's context and the worker process's tools behind it.

``WorkerTools`` is opened once per worker process: one channel to the EventService with one
PublishStream call on it (``publisher``), and one ``httpx.AsyncClient`` pointed at the edge's
secret-proxy route with the worker's token. ``context_for(run)`` gives each run a ``RunContext``
over those shared tools: its run, attempt and parsed payload, ``publish`` (to the run's agent's
stream by default), ``http`` and ``subscribe``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx

from switchboard.interactions.v1 import event_service_pb2 as events_pb
from switchboard.worker import subscriber
from switchboard.worker.publisher import Publisher

# The edge's proxy route and the header that carries a worker's token to it (the edge's side is
# switchboard.shared.headers.WORKER_TOKEN_HEADER; a test keeps the two equal).
PROXY_PATH = "/v1/proxy"
WORKER_TOKEN_HEADER = "x-switchboard-token"
# A provider's answer (an LLM's) can take a while; connecting must not.
HTTP_TIMEOUT = httpx.Timeout(120.0, connect=5.0)
MAX_MESSAGE_BYTES = 8 << 20


def agent_stream(agent_id: str) -> str:
    """An agent's own event stream (a worker may use it and its sub-streams ``agents/<id>/…``)."""
    return f"agents/{agent_id}"


@dataclass
class RunContext:
    """What a handler gets for one run: the run, its attempt and payload, and the worker's tools."""

    run: Any
    """The run as leased (``switchboard.runs.v1.run_service_pb2.Run``)."""
    attempt: int
    """The run's attempt number (1 the first time): the fencing token of its completion."""
    payload: Any
    """The run's payload, parsed from JSON (None when it had none)."""
    _tools: WorkerTools = field(repr=False)

    @property
    def http(self) -> httpx.AsyncClient:
        """An HTTP client pointed at the secret proxy: ``await ctx.http.post("openai/v1/chat/completions",
        json=…)`` goes to the upstream named ``openai`` with placeholders swapped for secrets."""
        return self._tools.http

    async def publish(self, type: str, payload: Any, *, stream: str | None = None) -> int:
        """Publish an event (``payload`` is encoded as JSON) and wait until it is stored; its
        sequence. ``stream`` defaults to the run's agent's stream, in the run's organisation.
        Raises PublishRefused or PublishInterrupted."""
        return await (await self.send(type, payload, stream=stream))

    async def send(self, type: str, payload: Any, *, stream: str | None = None) -> asyncio.Future[int]:
        """Like ``publish``, without waiting for the ack: the future resolves to the sequence once
        the event is stored. Events sent one after another are stored in that order; a handler
        streaming output sends each piece and awaits the last one's future before it returns."""
        return await self._tools.publisher.send(self.run.organization_id, self._stream(stream), type, json.dumps(payload))

    def subscribe(self, stream: str, after_sequence: int = 0) -> AsyncIterator[events_pb.Event]:
        """The events of ``stream`` (in the run's organisation) after ``after_sequence``, then live
        ones, resuming by itself when a replica goes away."""
        return self._tools.subscribe(self.run.organization_id, stream, after_sequence)

    def _stream(self, stream: str | None) -> str:
        if stream is not None:
            return stream
        if not self.run.agent_id:
            raise ValueError("this run has no agent: name the stream to publish to")
        return agent_stream(self.run.agent_id)


class WorkerTools:
    """The tools of one worker process, shared by all its runs. Open with ``await
    WorkerTools.open(...)`` (or ``async with``), close with ``aclose``."""

    def __init__(self, channel: grpc.aio.Channel, token: str, proxy_url: str | None = None):
        self._channel = channel
        self._token = token
        self._proxy_url = proxy_url
        self._metadata = (("authorization", f"Bearer {token}"),)
        self.publisher = Publisher(channel, self._metadata)
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The process's one client of the secret proxy (made on first use: building its TLS
        context costs tens of milliseconds, which a worker that never calls out need not pay)."""
        if self._http is None:
            self._http = proxy_client(self._proxy_url, self._token)
        return self._http

    @classmethod
    async def open(
        cls,
        target: str,
        token: str,
        proxy_url: str | None = None,
        *,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> WorkerTools:
        """Tools for a worker holding ``token``. ``target`` is the EventService's address (the
        interactions service, e.g. ``localhost:50052``, or a ``dns:///`` name of its replicas);
        ``proxy_url`` the edge's address (``http://localhost:8080``; the proxy route is appended);
        ``credentials`` for TLS (plaintext without). Nothing connects before it is used."""
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        if credentials is None:
            channel = grpc.aio.insecure_channel(target, options=options)
        else:
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        return cls(channel, token, proxy_url)

    def context_for(self, run: Any) -> RunContext:
        """The context of one leased run."""
        payload = json.loads(run.payload_json) if run.payload_json else None
        return RunContext(run=run, attempt=run.attempt, payload=payload, _tools=self)

    def subscribe(self, organization_id: str, stream: str, after_sequence: int = 0) -> AsyncIterator[events_pb.Event]:
        """A resuming subscription (see ``RunContext.subscribe``)."""
        return subscriber.subscribe(self._channel, self._metadata, organization_id, stream, after_sequence)

    async def aclose(self) -> None:
        """Wait briefly for the acks of events in flight, then close the call, channel and client."""
        try:
            await self.publisher.aclose()
        finally:
            if self._http is not None:
                await self._http.aclose()
            await self._channel.close()

    async def __aenter__(self) -> WorkerTools:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def proxy_client(proxy_url: str | None, token: str) -> httpx.AsyncClient:
    """An HTTP client whose relative URLs go to the edge's proxy route, carrying the worker's
    token there and nowhere else (not to an absolute URL elsewhere, nor along a redirect)."""
    if proxy_url is None:
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT)
    base = httpx.URL(proxy_url.rstrip("/") + ("" if proxy_url.rstrip("/").endswith(PROXY_PATH) else PROXY_PATH) + "/")

    async def token_for_the_proxy_only(request: httpx.Request) -> None:
        # Called for every request, each redirect's included: the token goes to the proxy only.
        if _under(request.url, base):
            request.headers[WORKER_TOKEN_HEADER] = token
        else:
            request.headers.pop(WORKER_TOKEN_HEADER, None)

    return httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT, event_hooks={"request": [token_for_the_proxy_only]})


def _under(url: httpx.URL, base: httpx.URL) -> bool:
    return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port) and url.raw_path.startswith(base.raw_path)

"""Streams beside the peers, in one run: publish → SSE latency with one subscriber, and fan-out
(deliveries per second, server CPU per delivery) with 100 and 1 000 SSE subscribers on one stream
and 1 000 over 100 streams — Switchboard (interactions + edge, `switchboard serve`), encode/
broadcaster + sse-starlette (bench/peers/broadcaster_sse.py), and Nchan (bench/peers/nchan.py,
skipped with a note where it cannot be installed). Every subscriber is an SSE client of the
system's HTTP face; one publisher; 200-byte events."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import sys
import time
import uuid
from datetime import timedelta

import asyncpg
import grpc
import httpx
import psutil

from bench.common import Measurement, Row, fresh_database, percentile
from bench.peers import nchan
from bench.runs_throughput import TOKEN, WORKER_TOKENS, start_services
from bench.sse_clients import SseClients
from switchboard.shared.migrate import migrate
from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc

LATENCY_EVENTS = 300
# (subscribers, streams, events published in all)
FANOUTS = [(100, 1, 300), (1000, 1, 100), (1000, 100, 2000)]
LIMITS = {
    "SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS": "5000",
    "SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_STREAM": "5000",
    "SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_ORGANIZATION": "5000",
    "SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_AGENT": "5000",
    "SWITCHBOARD_EDGE_SSE_MAX_CLIENTS": "5000",
    "SWITCHBOARD_EDGE_SSE_MAX_CLIENTS_PER_STREAM": "5000",
    "SWITCHBOARD_EDGE_SSE_MAX_CLIENTS_PER_ORGANIZATION": "5000",
    "SWITCHBOARD_EDGE_SSE_MAX_CLIENTS_PER_AGENT": "5000",
}


def event(i: int) -> str:
    body = json.dumps({"bench": i, "pad": ""})
    return json.dumps({"bench": i, "pad": "x" * (200 - len(body))})  # 200 bytes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until_listening(port: int) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)


class _Cpu:
    """User + system CPU seconds of a set of processes (and, for PostgreSQL, its backends)."""

    def __init__(self, pids: list[int], postmaster: int | None = None):
        self._processes = [psutil.Process(p) for p in pids]
        self._postmaster = psutil.Process(postmaster) if postmaster else None

    def seconds(self) -> float:
        processes = list(self._processes)
        for process in list(processes):
            processes += process.children(recursive=True)
        if self._postmaster is not None:
            processes += [self._postmaster, *self._postmaster.children()]
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total


async def _postmaster(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return psutil.Process(await connection.fetchval("SELECT pg_backend_pid()")).ppid()
    finally:
        await connection.close()


class Switchboard:
    name = "Switchboard"

    async def start(self, admin_dsn: str) -> None:
        dsn = await fresh_database(admin_dsn)
        await migrate(dsn)
        self.processes, ports = await start_services(dsn, "interactions", "edge", extra_env=LIMITS)
        self.port = ports["edge"]
        self.organization = str(uuid.uuid4())
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['interactions']}")
        self.stub = event_service_pb2_grpc.EventServiceStub(self.channel)
        self.cpu = _Cpu([p.pid for p in self.processes], await _postmaster(dsn))
        self._tokens: dict[str, str] = {}
        await asyncio.sleep(1.5)  # the edge's first fetch of revocations: until then, clients are not shared

    def stream(self) -> str:
        agent = str(uuid.uuid4())
        self._tokens[agent] = WORKER_TOKENS.issue(organization_id=self.organization, agent_id=agent, connection_id=None, ttl=timedelta(hours=1)).token
        return agent

    def path(self, stream: str) -> str:
        return f"/v1/streams/agents/{stream}/events"

    def headers(self, stream: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens[stream]}"}

    async def publish(self, stream: str, payload: str) -> None:
        await self.stub.Publish(
            pb.PublishRequest(stream=f"agents/{stream}", organization_id=self.organization, type="bench", payload_json=payload),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
        )

    async def stop(self) -> None:
        await self.channel.close()
        for process in self.processes:
            process.terminate()
            await process.wait()


class _HttpPeer:
    """A peer published to with ``POST /pub/{channel}`` and read from ``GET /sub/{channel}``."""

    async def _client(self, port: int) -> None:
        self.port = port
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def stream(self) -> str:
        return "s" + uuid.uuid4().hex[:16]

    def path(self, stream: str) -> str:
        return f"/sub/{stream}"

    def headers(self, stream: str) -> dict[str, str]:
        return {}

    async def publish(self, stream: str, payload: str) -> None:
        reply = await self.http.post(f"/pub/{stream}", content=payload)
        assert reply.status_code < 300, reply.text


class Broadcaster(_HttpPeer):
    name = "broadcaster + sse-starlette"

    async def start(self, admin_dsn: str) -> None:
        dsn = await fresh_database(admin_dsn)
        port = _free_port()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", "bench.peers.broadcaster_sse:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            env={**os.environ, "DATABASE_URL": dsn}, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await _until_listening(port)
        await self._client(port)
        self.cpu = _Cpu([self.process.pid], await _postmaster(dsn))

    async def stop(self) -> None:
        await self.http.aclose()
        self.process.terminate()
        await self.process.wait()


class Nchan(_HttpPeer):
    name = "Nchan"

    async def start(self, admin_dsn: str) -> None:
        self.server = nchan.Nchan(_free_port())
        await self.server.start()
        await _until_listening(self.server.port)
        await self._client(self.server.port)
        assert self.server.process is not None
        self.cpu = _Cpu([self.server.process.pid])

    async def stop(self) -> None:
        await self.http.aclose()
        await self.server.stop()


async def _subscribed(system, subscribers: int, streams: int) -> tuple[SseClients, list[str]]:
    """Clients open and receiving (warmed up: each has had an event; peers without history drop
    events published before a subscription is in place)."""
    names = [system.stream() for _ in range(streams)]
    clients = SseClients()
    await clients.open("127.0.0.1", system.port, [system.path(names[i % streams]) for i in range(subscribers)],
                       lambda i: system.headers(names[i % streams]))  # fmt: skip
    for attempt in range(50):
        everyone = clients.expect(lambda i: 1 if clients.clients[i].count == 0 else 0)
        if everyone.done():
            break
        for name in names:
            await system.publish(name, event(-1))
        with __import__("contextlib").suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(everyone), 0.5)
    else:
        silent = sum(1 for c in clients.clients if c.count == 0)
        raise RuntimeError(f"{system.name}: {silent} of {subscribers} subscribers receive nothing")
    # Let the warm-up's last events land, then count from a quiet state.
    await asyncio.sleep(0.3)
    return clients, names


async def latency(system) -> list[float]:
    clients, (name,) = await _subscribed(system, 1, 1)
    samples = []
    try:
        for i in range(LATENCY_EVENTS):
            arrived = clients.expect(lambda _: 1)
            started = time.perf_counter()
            await system.publish(name, event(i))
            await asyncio.wait_for(arrived, 10)
            samples.append(time.perf_counter() - started)
    finally:
        clients.close()
    return samples


async def fanout(system, subscribers: int, streams: int, events: int, parts: dict | None = None) -> tuple[float, float]:
    """(deliveries per second, server CPU microseconds per delivery); ``parts`` (name → _Cpu)
    get their own CPU per delivery over the same time, for profiling."""
    clients, names = await _subscribed(system, subscribers, streams)
    try:
        per_stream = events // streams
        done = clients.expect(lambda _: per_stream)
        cpu = system.cpu.seconds()
        split = {name: part.seconds() for name, part in (parts or {}).items()}
        started = time.perf_counter()
        for i in range(per_stream * streams):
            await system.publish(names[i % streams], event(i))
        await asyncio.wait_for(done, 180)
        elapsed = time.perf_counter() - started
        cpu = system.cpu.seconds() - cpu
        split = {name: part.seconds() - split[name] for name, part in (parts or {}).items()}
    finally:
        clients.close()
    deliveries = subscribers * per_stream
    for name, seconds in split.items():
        parts[name] = seconds / deliveries * 1e6  # type: ignore[index]
    return deliveries / elapsed, cpu / deliveries * 1e6


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    systems = [Switchboard(), Broadcaster()]
    skipped = await asyncio.to_thread(nchan.ensure_installed)
    if skipped is None:
        systems.append(Nchan())
    results: dict[str, dict[str, Measurement]] = {}
    load = os.getloadavg()
    for system in systems:
        figures = results[system.name] = {}
        await system.start(admin_dsn)
        try:
            await latency(system)  # warm-up
            for _ in range(repetitions):
                samples = await latency(system)
                figures.setdefault("p50", Measurement()).samples.append(statistics.median(samples) * 1000)
                figures.setdefault("p99", Measurement()).samples.append(percentile(samples, 99) * 1000)
            for subscribers, streams, events in FANOUTS:
                await fanout(system, subscribers, streams, events // 4)  # warm-up
                for _ in range(repetitions):
                    rate, cpu = await fanout(system, subscribers, streams, events)
                    figures.setdefault(f"rate {subscribers}/{streams}", Measurement()).samples.append(rate)
                    figures.setdefault(f"cpu {subscribers}/{streams}", Measurement()).samples.append(cpu)
        finally:
            await system.stop()
    load_after = os.getloadavg()
    ours, peer = results["Switchboard"], results["broadcaster + sse-starlette"]
    horizon = results.get("Nchan")
    rows = [
        Row("streams: publish → SSE, 1 subscriber, p50", "ms", ours["p50"], "broadcaster + sse-starlette", peer["p50"], higher_is_better=False),
        Row("streams: publish → SSE, 1 subscriber, p99", "ms", ours["p99"], "broadcaster + sse-starlette", peer["p99"], higher_is_better=False, goal="p99 ≤ 1.5 ms"),
    ]
    if horizon:
        rows += [
            Row("streams: publish → SSE, 1 subscriber, p50", "ms", ours["p50"], "Nchan", horizon["p50"], higher_is_better=False),
            Row("streams: publish → SSE, 1 subscriber, p99", "ms", ours["p99"], "Nchan", horizon["p99"], higher_is_better=False),
        ]
    for subscribers, streams, _ in FANOUTS:
        shape = f"{subscribers:,} SSE subscribers on {'one stream' if streams == 1 else f'{streams} streams'}"
        key = f"{subscribers}/{streams}"
        goal_rate = "≥ 1.0× broadcaster" if streams == 1 else ""
        rows.append(Row(f"streams: deliveries/s, {shape}", "deliveries/s", ours[f"rate {key}"], "broadcaster + sse-starlette", peer[f"rate {key}"], goal=goal_rate))
        rows.append(Row(f"streams: server CPU per delivery, {shape}", "µs", ours[f"cpu {key}"], "broadcaster + sse-starlette", peer[f"cpu {key}"], higher_is_better=False, goal="≤ broadcaster's (ratio ≥ 1)"))
        if horizon:
            rows.append(Row(f"streams: deliveries/s, {shape}", "deliveries/s", ours[f"rate {key}"], "Nchan", horizon[f"rate {key}"]))
            rows.append(Row(f"streams: server CPU per delivery, {shape}", "µs", ours[f"cpu {key}"], "Nchan", horizon[f"cpu {key}"], higher_is_better=False))
    notes = [
        "Streams beside the peers (bench/streams_fanout.py): each system is started alone on this machine and measured "
        "through its HTTP face with SSE clients in the benchmark process (asyncio protocols under uvloop that only count "
        "events); one publisher awaits each publish before the next (Switchboard: gRPC Publish to interactions, which "
        "stores the event; broadcaster: POST to its app, one NOTIFY; Nchan: POST to its publisher location), 200-byte "
        "events. Switchboard is one `switchboard serve interactions` and one `switchboard serve edge` (plus identity, "
        "idle, for the edge's revocation list); broadcaster is one uvicorn process (uvloop, httptools) on the same "
        "PostgreSQL; Nchan is one nginx worker. Latency: 300 events one at a time, each awaited at the subscriber. "
        "Fan-out: the subscribers are connected and have each received a warm-up event first (the peers keep no history "
        f"for a late subscriber), then {', '.join(f'{e:,} events to {n:,} subscribers on {s} stream(s)' for n, s, e in FANOUTS)}; "
        "deliveries/s is subscribers × events per stream over the time until every subscriber has all; server CPU is the "
        "user+system time of the system's processes (PostgreSQL's backends included for Switchboard and broadcaster) over "
        "that time, per delivery. Only Switchboard's events are durable, ordered, resumable and authenticated.",
        f"Streams, machine load while measured: load average {load[0]:.1f} before and {load_after[0]:.1f} after "
        "(2 cores shared with other sessions' builds and tests): absolute figures are noisy; the ratios come from "
        "back-to-back runs under the same load."
        + ("" if skipped is None else f" Nchan skipped: {skipped}."),
    ]
    return rows, [*notes, PROFILE]


# Measured with py-spy (record, raw) on the edge and interactions processes and /proc CPU times per
# process over the publishing window (bench/streams_fanout.fanout's ``parts``), 2026-12-07, on
# this machine at load average 5-10.
PROFILE = (
    "Streams fan-out, where the time goes. Before this change every SSE client was its own Subscribe and every "
    "subscriber re-read the table per notification (the issue's table: 3,400 deliveries/s and 480 µs of server CPU "
    "per delivery with 100 subscribers). Now, per delivery with 100 subscribers on one stream: the edge ~12 µs (the "
    "write to the client's socket through uvicorn is half of it, the wake-up of each client's task most of the rest), "
    "interactions ~11 µs and PostgreSQL ~3 µs — both per event, spread over the subscribers: ~1.1 ms of interactions "
    "CPU per event, about half of it gRPC's C core and event loop for the Publish call and the one streamed message "
    "to the edge, ~10 % asyncpg (the insert, and the one shared read). Fixed along the way, from the profile: "
    "sse-starlette's per-event task group and send timeout and a timer per client and wait (a third of the edge's "
    "time per delivery; shared clients now get pre-encoded frames through a plain ASGI response and one keep-alive "
    "timer per stream), the middleware wrappers on every body frame (skipped after the response's start), and the "
    "protobuf message built per subscriber (once per event now). With 1,000 subscribers over 100 streams (10 per "
    "stream) the per-event cost is spread over 10 only: ~115 µs interactions, ~48 µs edge, ~34 µs PostgreSQL per "
    "delivery, against broadcaster's NOTIFY-only path (no row written, no read, no hop between processes) — the "
    "price of a durable, ordered, resumable stream behind an authenticating edge, which only amortises with more "
    "subscribers per stream. Latency: of ~1.9–2.1 ms publish → SSE at p50, the Publish RPC itself (a Python gRPC "
    "round trip that commits the event) is ~1.4–1.7 ms; the SSE client has the event ~0.2–0.6 ms after Publish "
    "returns (NOTIFY, one shared read, one gRPC message, one write). broadcaster's subscriber gets the NOTIFY before "
    "its POST even returns. p99 ≤ 1.5 ms is out of reach while the publish is a unary gRPC call at ~1.4 ms p50 "
    "on this machine (the streamed publish of issue 16 is the lever), and the p99s here are mostly scheduling "
    "outliers on 2 cores at load 5-10 (every system's p99 is 2-10× its p50). Next step, not taken: carrying small "
    "events in the NOTIFY itself would save the shared read (~0.1 ms and ~10 % of interactions' CPU per event)."
)

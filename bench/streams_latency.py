"""Streams: publish → deliver latency across two replicas against raw LISTEN/NOTIFY on the same
PostgreSQL, and sustained delivery with 100 subscribers."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import timedelta

import asyncpg
import grpc

from bench.common import Measurement, Row, fresh_database, percentile
from bench.runs_throughput import TOKEN, WORKER_TOKENS, start_services
from switchboard.shared.migrate import migrate
from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc

EVENTS = 300
SUBSCRIBERS = 100
SUSTAINED_EVENTS = 1000
METADATA = (("authorization", f"Bearer {TOKEN}"),)


async def _switchboard_latencies(publisher, subscriber_stub) -> list[float]:
    """Seconds from calling Publish on one replica to receiving the event from the other."""
    org, stream = str(uuid.uuid4()), "bench"
    arrivals: dict[int, asyncio.Future] = {}
    call = subscriber_stub.Subscribe(pb.SubscribeRequest(stream=stream, organization_id=org), metadata=METADATA)
    await call.initial_metadata()

    async def read() -> None:
        async for message in call:
            future = arrivals.get(message.event.sequence)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

    reader = asyncio.create_task(read())
    latencies = []
    try:
        for sequence in range(1, EVENTS + 1):
            arrivals[sequence] = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            await publisher.Publish(
                pb.PublishRequest(stream=stream, organization_id=org, type="bench", payload_json='{"n": 1}'), metadata=METADATA
            )
            latencies.append(await asyncio.wait_for(arrivals[sequence], 10) - started)
    finally:
        call.cancel()
        reader.cancel()
    return latencies


async def _raw_latencies(dsn: str) -> list[float]:
    """Seconds from NOTIFY on one connection to its delivery on a listening one."""
    listener, notifier = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    arrived: asyncio.Future | None = None

    def on_notify(*_: object) -> None:
        if arrived is not None and not arrived.done():
            arrived.set_result(time.perf_counter())

    await listener.add_listener("bench_raw", on_notify)
    latencies = []
    try:
        for _ in range(EVENTS):
            arrived = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            await notifier.execute("SELECT pg_notify('bench_raw', '1')")
            latencies.append(await asyncio.wait_for(arrived, 10) - started)
    finally:
        await listener.close()
        await notifier.close()
    return latencies


async def _sustained(stubs) -> float:
    """Events per second that each of 100 subscribers (spread over both replicas) receives while
    a publisher writes 1000 events in batches."""
    org, stream = str(uuid.uuid4()), "fanout"
    # Each subscriber is its own worker (the per-stream limit counts per caller).
    tokens = WORKER_TOKENS
    calls = [
        stubs[i % 2].Subscribe(
            pb.SubscribeRequest(stream=stream, organization_id=org),
            metadata=(
                (
                    "authorization",
                    "Bearer "
                    + tokens.issue(organization_id=org, agent_id=str(uuid.uuid4()), connection_id=None, ttl=timedelta(hours=1)).token,
                ),
            ),
        )
        for i in range(SUBSCRIBERS)
    ]
    await asyncio.gather(*(c.initial_metadata() for c in calls))

    async def drain(call) -> None:
        received = 0
        async for _ in call:
            received += 1
            if received == SUSTAINED_EVENTS:
                return

    started = time.perf_counter()
    readers = [asyncio.create_task(drain(c)) for c in calls]
    for _ in range(SUSTAINED_EVENTS // 100):
        await stubs[0].PublishBatch(
            pb.PublishBatchRequest(
                stream=stream, organization_id=org, events=[pb.EventInput(type="bench", payload_json='{"n": 1}')] * 100
            ),
            metadata=METADATA,
        )
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    elapsed = time.perf_counter() - started
    for call in calls:
        call.cancel()
    return SUSTAINED_EVENTS / elapsed


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    dsn = await fresh_database(admin_dsn)
    await migrate(dsn)
    processes, ports = await start_services(dsn, "interactions", "interactions")
    try:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{ports[key]}") for key in ("interactions", "interactions#1")]
        stubs = [event_service_pb2_grpc.EventServiceStub(c) for c in channels]
        ours_p50, ours_p99, raw_p50, raw_p99, sustained = [], [], [], [], []
        await _switchboard_latencies(stubs[0], stubs[1])  # warm-up
        await _raw_latencies(dsn)
        for _ in range(repetitions):
            ours = await _switchboard_latencies(stubs[0], stubs[1])
            raw = await _raw_latencies(dsn)
            ours_p50.append(statistics.median(ours) * 1000)
            ours_p99.append(percentile(ours, 99) * 1000)
            raw_p50.append(statistics.median(raw) * 1000)
            raw_p99.append(percentile(raw, 99) * 1000)
        await _sustained(stubs)  # warm-up
        for _ in range(repetitions):
            sustained.append(await _sustained(stubs))
        for channel in channels:
            await channel.close()
    finally:
        for process in processes:
            process.terminate()
            await process.wait()
    rows = [
        Row("streams: publish → deliver across replicas, p50", "ms", Measurement(ours_p50), "raw LISTEN/NOTIFY", Measurement(raw_p50), higher_is_better=False),
        Row(
            "streams: publish → deliver across replicas, p99",
            "ms",
            Measurement(ours_p99),
            "raw LISTEN/NOTIFY",
            Measurement(raw_p99),
            higher_is_better=False,
            goal="p99 ≤ 3× raw (ratio ≥ 0.33)",
        ),
        Row(f"streams: events/s to each of {SUBSCRIBERS} subscribers on 2 replicas", "events/s", Measurement(sustained), "(no peer)", None),
    ]
    note = (
        f"Streams: {EVENTS} events published one at a time through gRPC on one `switchboard serve interactions` "
        "replica, each awaited at a subscriber on the other replica before the next (Publish commits, NOTIFY "
        "wakes the other process, which reads the event from the table and sends it). Raw: NOTIFY on one asyncpg "
        "connection to a LISTEN on another, same server. Sustained: 1000 events in batches of 100 to "
        f"{SUBSCRIBERS} gRPC subscribers split over the two replicas; the time until every subscriber has all."
    )
    return rows, [note, PROFILE]


# Timestamps taken at the client around each Publish and each delivery, and the store's statements
# timed alone (one 2-core machine).
PROFILE = (
    "Streams, where the time goes: before this issue's change, ~1.5 ms of the ~1.7 ms publish → deliver (p50) "
    "was the Publish RPC itself; the subscriber has the event ~0.2 ms after Publish returns (NOTIFY, one "
    "events_after read of ~0.1 ms, the stream write). Within Publish: a unary gRPC round trip costs ~0.64 ms p50 "
    "on this machine (a health check, no pipeline) and events_append took ~0.47 ms in five round trips (BEGIN, "
    "stream upsert, event insert, pg_notify, COMMIT). events_append is now one statement (upsert, insert and "
    "pg_notify in CTEs, atomic by itself), which took p50 from 1.63 to 1.21 ms and p99 from 3.0 to 1.9 ms in "
    "back-to-back runs. What is left is the gRPC round trip and the pipeline: the goal (p99 within 3× a raw "
    "NOTIFY, ~0.6 ms) is below the cost of one Python gRPC call here. The p99 is also scheduling outliers on 2 "
    "shared cores: a bare health check's own p99 is ~2 ms."
)

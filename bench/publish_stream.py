"""Events per second one worker publishes to its agent's stream: over the worker library's one
PublishStream call (sent without waiting for each ack; the server coalesces what arrives while it
commits), against the same events through unary Publish, each awaited (what a handler does), and
with 16 Publish calls in flight. Every event is committed before it is acknowledged, on both sides."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta

import grpc

from bench.common import Measurement, Row, fresh_database
from bench.runs_throughput import WORKER_TOKENS, start_services
from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc
from switchboard.runs.v1 import run_service_pb2 as runs_pb
from switchboard.shared.migrate import migrate
from switchboard.worker import WorkerTools

EVENTS = 3000
IN_FLIGHT = 16
# An LLM's output token by token: small events.
PAYLOAD = {"delta": "a few words of output ", "index": 0}


async def _over_the_stream(target: str, token: str, org: str, agent: str, *, wait_each: bool = False) -> float:
    async with await WorkerTools.open(target, token) as tools:
        ctx = tools.context_for(runs_pb.Run(id=str(uuid.uuid4()), organization_id=org, agent_id=agent, attempt=1))
        await ctx.publish("agent.output", PAYLOAD)  # the call is open before the clock starts
        started = time.perf_counter()
        if wait_each:
            for i in range(EVENTS):
                await ctx.publish("agent.output", {**PAYLOAD, "index": i})
        else:
            sent = [await ctx.send("agent.output", {**PAYLOAD, "index": i}) for i in range(EVENTS)]
            await asyncio.gather(*sent)
        return EVENTS / (time.perf_counter() - started)


async def _unary(stub: event_service_pb2_grpc.EventServiceStub, token: str, org: str, agent: str, in_flight: int) -> float:
    metadata = (("authorization", f"Bearer {token}"),)
    counter = iter(range(EVENTS))

    async def publisher() -> None:
        for i in counter:
            await stub.Publish(
                pb.PublishRequest(stream=f"agents/{agent}", organization_id=org, type="agent.output", payload_json=json.dumps({**PAYLOAD, "index": i})),
                metadata=metadata,
            )

    started = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(in_flight)))
    return EVENTS / (time.perf_counter() - started)


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    dsn = await fresh_database(admin_dsn)
    await migrate(dsn)
    processes, ports = await start_services(dsn, "interactions")
    target = f"127.0.0.1:{ports['interactions']}"
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    token = WORKER_TOKENS.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(hours=1)).token
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            # The sides take turns within each repetition's round, so load on the machine hits both.
            streamed, awaited, unary, unary_parallel = ([] for _ in range(4))
            for _ in range(repetitions + 1):
                streamed.append(await _over_the_stream(target, token, org, agent))
                awaited.append(await _over_the_stream(target, token, org, agent, wait_each=True))
                unary.append(await _unary(stub, token, org, agent, 1))
                unary_parallel.append(await _unary(stub, token, org, agent, IN_FLIGHT))
    finally:
        for process in processes:
            process.terminate()
            await process.wait()
    def measured(samples: list[float]) -> Measurement:
        return Measurement(samples[1:])  # the first round is the warm-up

    figure = "events/s one worker publishes (PublishStream, library's send)"
    rows = [
        Row(figure, "events/s", measured(streamed), "unary Publish, each awaited", measured(unary), goal="≥ 5× unary Publish"),
        Row(figure, "events/s", measured(streamed), f"unary Publish, {IN_FLIGHT} in flight", measured(unary_parallel)),
        Row("events/s one worker publishes (PublishStream, each ack awaited)", "events/s", measured(awaited), "unary Publish, each awaited", measured(unary)),
    ]
    notes = [
        f"Publishing: {EVENTS} events of ~60 bytes per repetition from one worker (a worker token) to its agent's stream on "
        "one `switchboard serve interactions` process. PublishStream: the library's `RunContext.send` for each event "
        "(it waits only for room among 1000 in flight), then every ack; the server stores what arrived while it "
        "committed the previous flush with one statement. Unary: `Publish` per event on one channel, each awaited, "
        f"or {IN_FLIGHT} callers at once. Every event is committed before its ack or reply on every side."
    ]
    return rows, notes

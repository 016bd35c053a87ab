"""Slack click webhook → 200 through the edge at a steady 200 requests/s, each click a real
answer (claim, record, publish, background card edit), against the edge's /healthz at the same
rate (the HTTP floor of the same process tree)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from urllib.parse import urlencode

import grpc
import httpx

from bench.common import Measurement, Row, fresh_database, percentile
from bench.runs_throughput import TOKEN, start_services
from switchboard.shared.migrate import migrate
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc
from tests.support.asgi import serve_asgi
from tests.support.fake_chat import FakeSlack
from tests.support.slack import slack_signed_headers

RATE = 200  # requests per second
SECONDS = 3
SECRET = "bench-signing-" + "s" * 20
METADATA = (("authorization", f"Bearer {TOKEN}"),)


async def _open_loop(send) -> list[float]:
    """Send at a fixed rate regardless of answers (open loop); latency from the scheduled time."""
    count = RATE * SECONDS
    start = time.perf_counter() + 0.05
    latencies: list[float] = []

    async def one(i: int) -> None:
        scheduled = start + i / RATE
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        await send(i)
        latencies.append(time.perf_counter() - scheduled)

    await asyncio.gather(*(one(i) for i in range(count)))
    return latencies


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    dsn = await fresh_database(admin_dsn)
    await migrate(dsn)
    slack = FakeSlack("xoxb-bench-" + "b" * 20)
    async with serve_asgi(slack.app()) as slack_url:
        processes, ports = await start_services(dsn, "interactions", "edge")
        try:
            edge = f"http://127.0.0.1:{ports['edge']}"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['interactions']}") as channel, httpx.AsyncClient(
                base_url=edge, timeout=10, limits=httpx.Limits(max_connections=200)
            ) as http:
                stub = interaction_service_pb2_grpc.InteractionServiceStub(channel)
                org = str(uuid.uuid4())
                connection = (
                    await stub.RegisterConnection(
                        pb.RegisterConnectionRequest(
                            organization_id=org, platform=pb.PLATFORM_SLACK, external_id="TBENCH", bot_token=slack.bot_token,
                            signing_secret=SECRET, api_base_url=slack_url + "/api",
                        ),
                        metadata=METADATA,
                    )  # fmt: skip
                ).connection

                async def questions(count: int) -> list[str]:
                    created = []
                    for _ in range(count):
                        reply = await stub.CreateQuestion(
                            pb.CreateQuestionRequest(
                                organization_id=org, connection_id=connection.id, agent_id=str(uuid.uuid4()),
                                expected_user_id="U1", channel_id="C1", text="?", options=[pb.QuestionOption(id="yes", label="Yes")],
                            ),
                            metadata=METADATA,
                        )  # fmt: skip
                        created.append(reply.question_id)
                    return created

                async def clicks() -> list[float]:
                    ids = await questions(RATE * SECONDS)
                    bodies = [
                        urlencode({"payload": json.dumps({"type": "block_actions", "team": {"id": "TBENCH"}, "user": {"id": "U1"},
                                                          "actions": [{"action_id": "yes", "value": q}]})}).encode()  # fmt: skip
                        for q in ids
                    ]

                    async def send(i: int) -> None:
                        response = await http.post(
                            "/webhooks/slack/interactions", content=bodies[i], headers=slack_signed_headers(SECRET, bodies[i])
                        )
                        assert response.status_code == 200, response.text

                    return await _open_loop(send)

                async def healthz() -> list[float]:
                    async def send(i: int) -> None:
                        assert (await http.get("/healthz")).status_code == 200

                    return await _open_loop(send)

                ours_p50, ours_p99, floor_p50, floor_p99 = [], [], [], []
                await clicks()  # warm-up
                await healthz()
                for _ in range(repetitions):
                    ours = await clicks()
                    floor = await healthz()
                    ours_p50.append(statistics.median(ours) * 1000)
                    ours_p99.append(percentile(ours, 99) * 1000)
                    floor_p50.append(statistics.median(floor) * 1000)
                    floor_p99.append(percentile(floor, 99) * 1000)
        finally:
            for process in processes:
                process.terminate()
                await process.wait()
    rows = [
        Row("Slack click webhook → 200 at 200 req/s, p50", "ms", Measurement(ours_p50), "edge /healthz at 200 req/s", Measurement(floor_p50), higher_is_better=False),
        Row("Slack click webhook → 200 at 200 req/s, p99", "ms", Measurement(ours_p99), "edge /healthz at 200 req/s", Measurement(floor_p99), higher_is_better=False, goal="p99 < 50 ms"),
    ]
    note = (
        f"Slack clicks: {RATE * SECONDS} signed block_actions clicks per repetition sent open-loop at {RATE}/s to the edge "
        "(one process) in front of one interactions process; each verifies the signature, claims, records, publishes "
        "`question.answered` and queues the card edit (to a fake Slack on loopback). Baseline: the same load on /healthz."
    )
    return rows, [note]

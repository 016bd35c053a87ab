"""The worker's tools against real servers: publishing over one PublishStream (in order, refusals
per event, a replica lost under it), a subscription that resumes on another replica without gap or
duplicate, and an HTTP client that carries the worker's token to the secret proxy and nowhere else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import timedelta

import grpc
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from switchboard.shared import headers
from switchboard.runs.v1 import run_service_pb2 as runs_pb
from switchboard.worker import PublishInterrupted, PublishRefused, WorkerTools, context
from tests.interactions.conftest import replica
from tests.support.asgi import serve_asgi
from tests.support.worker_keys import ISSUER


def worker_token(org: str, agent: str) -> str:
    return ISSUER.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=5)).token


def leased(org: str, agent: str, payload: object = None) -> runs_pb.Run:
    return runs_pb.Run(id=str(uuid.uuid4()), organization_id=org, agent_id=agent, attempt=2, payload_json=json.dumps(payload) if payload is not None else "")


async def stored(pool, org: str, stream: str) -> list[tuple[int, str, dict]]:
    rows = await pool.fetch("SELECT sequence, type, payload_json FROM events WHERE organization_id = $1 AND stream = $2 ORDER BY sequence", org, stream)
    return [(r["sequence"], r["type"], json.loads(r["payload_json"])) for r in rows]


def test_the_proxy_token_header_is_the_edges():
    assert context.WORKER_TOKEN_HEADER == headers.WORKER_TOKEN_HEADER


async def test_a_runs_context_publishes_to_its_agents_stream_in_order_and_refusals_raise(migrated_database):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    async with replica(migrated_database) as one:
        async with await WorkerTools.open(f"127.0.0.1:{one.port}", worker_token(org, agent)) as tools:
            ctx = tools.context_for(leased(org, agent, {"feed": 7}))
            assert (ctx.attempt, ctx.payload) == (2, {"feed": 7})
            assert await ctx.publish("agent.started", {"n": 0}) == 1
            sent = [await ctx.send("agent.output", {"n": i}) for i in range(1, 400)]
            assert await asyncio.gather(*sent) == list(range(2, 401))
            with pytest.raises(PublishRefused) as refused:
                await ctx.publish("agent.output", {}, stream=f"agents/{uuid.uuid4()}")
            assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert await ctx.publish("agent.output", {"n": 400}, stream=f"agents/{agent}/tools") == 1  # the call went on
            assert await ctx.publish("agent.done", None) == 401
        rows = await stored(one.pool, org, f"agents/{agent}")
        assert [r[2]["n"] for r in rows[:400]] == list(range(400)) and rows[400][1] == "agent.done"


async def test_publishing_and_subscribing_carry_on_on_another_replica(migrated_database):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    stream = f"agents/{agent}"
    async with contextlib.AsyncExitStack() as first, replica(migrated_database) as two:
        one = await first.enter_async_context(replica(migrated_database))
        # One target, two replicas: the channel picks the first and moves to the second when it goes.
        target = f"ipv4:127.0.0.1:{one.port},127.0.0.1:{two.port}"
        async with await WorkerTools.open(target, worker_token(org, agent)) as tools:
            ctx = tools.context_for(leased(org, agent))
            received: list[int] = []
            five, all_ten = asyncio.Event(), asyncio.Event()

            async def read() -> None:
                async for event in ctx.subscribe(stream):
                    received.append(event.sequence)
                    if len(received) == 5:
                        five.set()
                    if event.sequence == 10:
                        all_ten.set()
                        return

            reader = asyncio.create_task(read())
            for i in range(5):
                await ctx.publish("agent.output", {"n": i})
            async with asyncio.timeout(10):
                await five.wait()
            in_flight = [await ctx.send("agent.output", {"n": 100 + i}) for i in range(50)]
            await first.aclose()  # replica one stops (drains first): the subscriber resumes elsewhere, the publish call breaks
            outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
            assert all(isinstance(o, int | PublishInterrupted) for o in outcomes), outcomes
            acked = [o for o in outcomes if isinstance(o, int)]
            for i in range(5):  # the next events open a new call, on the replica still there
                assert await ctx.publish("agent.output", {"n": 5 + i}) > 5
            async with asyncio.timeout(10):
                await all_ten.wait()
            await reader
            assert received == list(range(1, 11))  # no gap, no duplicate across the replicas
        rows = await stored(two.pool, org, stream)
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        assert set(acked) <= {r[0] for r in rows}


async def test_the_http_client_carries_the_token_to_the_proxy_only():
    seen: list[tuple[str, str | None]] = []

    async def record(request: Request):
        seen.append((request.url.path, request.headers.get("x-switchboard-token")))
        if request.url.path.endswith("/away"):
            return RedirectResponse(f"{elsewhere}/landing", status_code=307)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST"])])
    async with serve_asgi(app) as edge, serve_asgi(app) as elsewhere:
        for proxy_url in (edge, f"{edge}/v1/proxy/"):
            http = context.proxy_client(proxy_url, "w-token")
            async with http:
                assert (await http.post("openai/v1/chat/completions", json={})).status_code == 200
                assert (await http.get(f"{elsewhere}/direct")).status_code == 200
                assert (await http.get("up/away", follow_redirects=True)).status_code == 200
            assert seen == [
                ("/v1/proxy/openai/v1/chat/completions", "w-token"),
                ("/direct", None),
                ("/v1/proxy/up/away", "w-token"),
                ("/landing", None),
            ]
            seen.clear()

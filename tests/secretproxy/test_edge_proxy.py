"""The edge's proxy route, end to end: a worker's plain HTTP request with X-Switchboard-Token goes
through the edge and the secret proxy to a real upstream on loopback, and back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from switchboard.services.edge.app import create_app
from switchboard.services.edge.settings import EdgeSettings
from switchboard.services.edge.upstreams import Upstreams
from switchboard.services.secretproxy import placeholders
from switchboard.shared.config import Settings
from switchboard.shared.grpc.client import open_channel
from tests.conftest import INTERNAL_TOKEN
from tests.secretproxy.conftest import Proxy, running_proxy
from tests.support.asgi import serve_asgi
from tests.support.worker_keys import PUBLIC_KEYS_SETTING


@contextlib.asynccontextmanager
async def edge_for(proxy: Proxy) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(internal_token=INTERNAL_TOKEN, worker_token_public_keys=PUBLIC_KEYS_SETTING)
    upstreams = Upstreams({"secretproxy": open_channel(f"127.0.0.1:{proxy.port}", token=INTERNAL_TOKEN)})
    async with serve_asgi(create_app(settings, own=EdgeSettings(edge_max_body_bytes=1024), upstreams=upstreams)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
async def edge(proxy: Proxy) -> AsyncIterator[httpx.AsyncClient]:
    async with edge_for(proxy) as client:
        yield client


async def test_a_worker_calls_its_provider_through_the_edge_with_a_placeholder_and_never_sees_the_secret(proxy, edge):
    org = await proxy.org_ready()
    _, placeholder = await proxy.put_secret(org, "sk-through-the-edge-42")
    worker = proxy.worker(org)
    response = await edge.post(
        "/v1/proxy/echo/v1/chat/completions?model=x",
        headers={"X-Switchboard-Token": worker.token, "Authorization": f"Bearer {placeholder}", "Content-Type": "application/json"},
        content=b'{"messages": []}',
    )
    assert response.status_code == 200 and response.json() == {"ok": True, "path": "/v1/chat/completions", "bytes": 16}
    seen = proxy.upstream.received[-1]
    assert seen.header("authorization") == "Bearer sk-through-the-edge-42"
    assert seen.query == "model=x" and seen.body == b'{"messages": []}' and seen.header("x-switchboard-token") is None
    assert "sk-through-the-edge-42" not in response.text and all("sk-through" not in v for v in response.headers.values())
    assert response.headers["x-upstream"] == "fake" and "x-request-id" in response.headers


async def test_another_organisations_placeholder_through_the_edge_is_a_401_and_the_upstream_is_not_called(proxy, edge):
    a, b = await proxy.org_ready(), await proxy.org_ready()
    _, placeholder = await proxy.put_secret(a, "sk-of-a-only-77")
    response = await edge.get("/v1/proxy/echo/v1/models", headers={"X-Switchboard-Token": proxy.worker(b).token, "Authorization": f"Bearer {placeholder}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json" and response.json()["reason"] == "UNKNOWN_PLACEHOLDER"
    assert proxy.upstream.received == []


async def test_refusals_map_to_http_statuses_with_problem_bodies(proxy, edge):
    org = await proxy.org_ready(credential=True)
    token = {"X-Switchboard-Token": proxy.worker(org).token}
    assert (await edge.get("/v1/proxy/echo/v1/x")).status_code == 401  # no worker token
    assert (await edge.get("/v1/proxy/echo/v1/x", headers={"X-Switchboard-Token": "not-a-token"})).status_code == 401
    assert (await edge.get("/v1/proxy/nowhere/v1/x", headers=token)).status_code == 404
    await proxy.put_credential(org, "cred-denied-by-address", provider="loopback-denied")
    denied = await edge.get("/v1/proxy/loopback-denied/v1/x", headers=token)
    assert denied.status_code == 403 and denied.json()["reason"] == "PRIVATE_ADDRESS"
    assert (await edge.get("/v1/proxy/echo/v1/x?status=418", headers=token)).status_code == 418  # the upstream's own answer
    for _ in range(20):
        await edge.get("/v1/proxy/echo/v1/x", headers={**token, "X-Key": placeholders.new_placeholder()})
    throttled = await edge.get("/v1/proxy/echo/v1/x", headers=token)
    assert throttled.status_code == 429 and throttled.json()["reason"] == "TOO_MANY_FAILED_LOOKUPS"


async def test_an_upstream_event_stream_reaches_the_http_client_as_it_is_produced(proxy, edge):
    org = await proxy.org_ready(credential=True)
    arrivals: list[float] = []
    async with edge.stream("GET", "/v1/proxy/echo/sse?count=100&gap=0.05", headers={"X-Switchboard-Token": proxy.worker(org).token}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_raw():
            arrivals += [time.monotonic()] * chunk.count(b"data: ")
    assert len(arrivals) == 100
    assert arrivals[-1] - arrivals[0] > 4.0  # spread over the ~5 s the upstream took, not one burst at the end
    assert arrivals[50] - arrivals[0] > 2.0


async def test_identity_unavailable_for_a_token_without_organisation_is_a_503_and_the_upstream_is_not_called(
    migrated_database, identity, upstream
):
    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url) as proxy:
        org, agent = await proxy.agent()
        await proxy.allow(org)
        await proxy.put_credential(org, "cred-never-used-503")
    from tests.conftest import free_port

    dead = type(identity)(identity.stub, identity.pool, identity.revocations, identity.channel, port=free_port())
    async with running_proxy(migrated_database, dead, fake, url, proxy_identity_timeout_seconds=0.5) as proxy, edge_for(proxy) as edge:
        response = await edge.get("/v1/proxy/echo/v1/models", headers={"X-Switchboard-Token": proxy.worker(None, agent).token})
        assert response.status_code == 503 and response.json()["reason"] == "ORGANIZATION_UNRESOLVED"
    assert fake.received == []


async def test_large_bodies_stream_through_and_one_over_the_proxy_limit_is_a_413(migrated_database, identity, upstream):
    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url, proxy_max_body_bytes=200_000) as proxy, edge_for(proxy) as edge:
        org = await proxy.org_ready(credential=True)
        token = {"X-Switchboard-Token": proxy.worker(org).token}

        async def body(total: int):
            for _ in range(total // 10_000):
                yield b"z" * 10_000

        ok = await edge.post("/v1/proxy/echo/upload", headers=token, content=body(150_000))  # above the edge's own 1 KiB limit
        assert ok.status_code == 200 and ok.json()["bytes"] == 150_000
        too_big = await edge.post("/v1/proxy/echo/upload", headers=token, content=body(300_000))
        assert too_big.status_code == 413 and too_big.json()["reason"] == "BODY_TOO_LARGE"
        assert len(fake.received) == 1


async def test_an_upstream_breaking_off_mid_response_aborts_the_http_response(proxy, edge):
    org = await proxy.org_ready(credential=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await edge.get("/v1/proxy/echo/break", headers={"X-Switchboard-Token": proxy.worker(org).token})


async def test_a_worker_hanging_up_before_the_upstream_answers_cancels_the_upstream_call_at_once(proxy, edge):
    org = await proxy.org_ready(credential=True)
    request = asyncio.create_task(edge.get("/v1/proxy/echo/stall", headers={"X-Switchboard-Token": proxy.worker(org).token}))
    await proxy.upstream.stalling.wait()  # the request is upstream, and the upstream keeps it waiting
    request.cancel()  # the worker hangs up (its connection closes)
    with contextlib.suppress(asyncio.CancelledError):
        await request
    # Well before the 120 s read timeout, the proxy's call ends and is audited as cancelled.
    await asyncio.wait_for(proxy.audit.recorded(1), 10)
    [row] = await proxy.audit_rows()
    assert row["reason"] == "client_cancelled"

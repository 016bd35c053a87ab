"""The secret proxy's refusals reach the worker as the proxy's status, whatever the edge was doing
with the request body when the refusal came: a refusal arrives while the edge still streams a
large body into the Forward call (or right after an empty one), and the worker must see the
refusal's 4xx (or 503), never a 502 that hides it. Each case is repeated: the race it guards
against showed in about 7 of 10 tries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from switchboard.services.edge import proxy as edge_proxy
from switchboard.services.secretproxy import forwarding, placeholders
from tests.conftest import INTERNAL_TOKEN
from tests.secretproxy.conftest import Proxy, running_proxy
from tests.secretproxy.test_edge_proxy import edge_for

REPEATS = 30
ONE_MIB = b"x" * (1024 * 1024)


@pytest.fixture
async def edge(proxy: Proxy) -> AsyncIterator[httpx.AsyncClient]:
    async with edge_for(proxy) as client:
        yield client


async def _refused_many_times(
    edge: httpx.AsyncClient, path: str, headers: dict[str, str], *, field: str = "reason", bodies: tuple[bytes, ...] = (ONE_MIB, b"")
) -> list[tuple[int, str | None]]:
    """The same refused POST, REPEATS times with each of ``bodies`` (a 1 MiB one and an empty one),
    those of one round at once: (status, ``field`` of the problem body) of each."""

    async def one(body: bytes) -> tuple[int, str | None]:
        response = await edge.post(path, headers=headers, content=body)
        value = response.json().get(field) if response.headers.get("content-type") == "application/problem+json" else None
        return response.status_code, value

    answers: list[tuple[int, str | None]] = []
    for _ in range(REPEATS):
        answers += await asyncio.gather(*(one(body) for body in bodies))
    return answers


def test_the_edge_and_the_proxy_name_the_acceptance_alike():
    # Two services never import each other: each spells the name, and this keeps them the same.
    assert edge_proxy.BODY_LIMIT_METADATA == forwarding.BODY_LIMIT_METADATA == "x-switchboard-body-limit"


async def test_an_egress_refusal_of_a_large_or_empty_post_is_always_a_403(proxy, edge):
    org = await proxy.org_ready(credential=True)
    await proxy.allow(org, host="example.org")  # the loopback upstream is no longer allowed
    answers = await _refused_many_times(edge, "/v1/proxy/echo/v1/upload", {"X-Switchboard-Token": proxy.worker(org).token})
    assert answers == [(403, "EGRESS_DENIED")] * (2 * REPEATS)
    assert proxy.upstream.received == []


async def test_an_unknown_placeholder_on_a_large_or_empty_post_is_always_a_401(proxy, edge):
    org = await proxy.org_ready(credential=True)
    headers = {"X-Switchboard-Token": proxy.worker(org).token, "Authorization": f"Bearer {placeholders.new_placeholder()}"}
    # Failed lookups are throttled after a few: the throttle's 429 is a refusal too, and as exact.
    answers = await _refused_many_times(edge, "/v1/proxy/echo/v1/upload", headers)
    assert set(answers) <= {(401, "UNKNOWN_PLACEHOLDER"), (429, "TOO_MANY_FAILED_LOOKUPS")}
    assert answers[0] == (401, "UNKNOWN_PLACEHOLDER") and answers[-1] == (429, "TOO_MANY_FAILED_LOOKUPS")
    assert proxy.upstream.received == []


async def test_a_refusal_before_the_head_is_read_is_a_403_for_a_large_or_empty_post(proxy, edge):
    # A token the proxy does not accept for Forward (the internal token is not a worker's).
    answers = await _refused_many_times(edge, "/v1/proxy/echo/v1/upload", {"X-Switchboard-Token": INTERNAL_TOKEN})
    assert answers == [(403, "WORKERS_ONLY")] * (2 * REPEATS)
    assert proxy.upstream.received == []


async def test_a_token_refused_before_the_handler_runs_is_a_401_for_a_large_or_empty_post(proxy, edge):
    # Refused by the request pipeline as the call starts, before the proxy reads anything.
    answers = await _refused_many_times(edge, "/v1/proxy/echo/v1/upload", {"X-Switchboard-Token": "not-a-worker-token"}, field="grpc_status")
    assert answers == [(401, "UNAUTHENTICATED")] * (2 * REPEATS)
    assert proxy.upstream.received == []


async def test_a_body_over_the_proxys_limit_is_always_a_413(migrated_database, identity, upstream):
    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url, proxy_max_body_bytes=100_000) as proxy, edge_for(proxy) as edge:
        org = await proxy.org_ready(credential=True)
        headers = {"X-Switchboard-Token": proxy.worker(org).token}
        answers = await _refused_many_times(edge, "/v1/proxy/echo/v1/upload", headers, bodies=(ONE_MIB, ONE_MIB))
        assert answers == [(413, "BODY_TOO_LARGE")] * (2 * REPEATS)
        # The limit itself still goes through.
        assert (await edge.post("/v1/proxy/echo/v1/upload", headers=headers, content=b"y" * 100_000)).json()["bytes"] == 100_000


async def test_an_upstream_that_fails_while_a_large_body_is_sent_is_the_proxys_own_502(proxy, edge):
    """Accepted, then the upstream cannot be reached: the proxy's problem (naming the upstream)
    reaches the worker, not the edge's "the secret proxy failed"."""
    org = await proxy.org_ready(credential=True)
    await proxy.put_credential(org, "closed-cred-value-1", provider="closed")
    answers = await _refused_many_times(edge, "/v1/proxy/closed/v1/upload", {"X-Switchboard-Token": proxy.worker(org).token}, field="detail")
    assert answers == [(502, "the upstream 'closed' failed before answering (ConnectError)")] * (2 * REPEATS)

"""The identity service unreachable (its process frozen with SIGSTOP, so calls to it hang rather
than fail fast) under a running `switchboard up`: what needs identity fails closed, with
UNAVAILABLE (worker tokens once the revocation list is stale; a worker whose organisation only
identity knows), and everything else keeps serving. When identity answers again, so does all of
it, with no process restarted."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import timedelta

import grpc
import httpx
import psutil
import pytest

from switchboard.shared.errors import reason_of
from switchboard.shared.grpc.client import open_channel
from switchboard.interactions.v1 import event_service_pb2, event_service_pb2_grpc
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc
from switchboard.secretproxy.v1 import secret_proxy_service_pb2, secret_proxy_service_pb2_grpc
from tests.e2e.test_up import Stack
from tests.faults.helpers import (
    SERVING,
    equals,
    every_health,
    has_status,
    readyz,
    serving_processes,
    until,
)

ORGANIZATION = "0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11"
AGENT = "2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33"
UNKNOWN_RUN = "6f1b2c9e-8a44-4c1e-9d1a-0b7d4f3e2a11"
NOT_IDENTITY = ("interactions", "secretproxy", "runs")


async def worker_get_run(stack: Stack) -> str:
    """A worker's GetRun on the runs service: the code, and the reason when it failed."""
    token = stack.tokens.issue(
        organization_id=ORGANIZATION, agent_id=AGENT, connection_id=None, ttl=timedelta(minutes=5)
    )
    async with open_channel(f"127.0.0.1:{stack.ports['runs']}", token=token.token) as channel:
        try:
            await run_service_pb2_grpc.RunServiceStub(channel).GetRun(
                run_service_pb2.GetRunRequest(run_id=UNKNOWN_RUN), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}/{reason_of(exc)}"
    return "OK"


async def proxy_without_organization(stack: Stack) -> int:
    """A worker whose token lacks its organisation calls through the secret proxy: only identity
    can say which organisation it is (a new agent each time, so that no cached answer helps)."""
    token = stack.tokens.issue(
        organization_id=None, agent_id=str(uuid.uuid4()), connection_id=None, ttl=timedelta(minutes=5)
    )
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"http://127.0.0.1:{stack.ports['edge']}/v1/proxy/openai/v1/models",
            headers={"X-Switchboard-Token": token.token},
        )
    return response.status_code


async def internal_calls(stack: Stack) -> list[str]:
    """Calls that need no identity: an operator's on each of the other services."""
    results = []
    calls = [
        ("runs", lambda ch: run_service_pb2_grpc.RunServiceStub(ch).EnqueueRun(
            run_service_pb2.EnqueueRunRequest(organization_id=ORGANIZATION, lane=run_service_pb2.LANE_ACTION, payload_json="{}"), timeout=5)),
        ("interactions", lambda ch: event_service_pb2_grpc.EventServiceStub(ch).Publish(
            event_service_pb2.PublishRequest(stream="faults/identity", organization_id=ORGANIZATION, type="t", payload_json="{}"), timeout=5)),
        ("secretproxy", lambda ch: secret_proxy_service_pb2_grpc.SecretProxyServiceStub(ch).ListSecrets(
            secret_proxy_service_pb2.ListSecretsRequest(organization_id=ORGANIZATION), timeout=5)),
    ]  # fmt: skip
    for service, call in calls:
        async with open_channel(f"127.0.0.1:{stack.ports[service]}", token=stack.internal_token) as channel:
            try:
                await call(channel)
                results.append("OK")
            except grpc.aio.AioRpcError as exc:
                results.append(f"{service}: {exc.code().name}")
    return results


@pytest.mark.timeout(180)
async def test_identity_unreachable_fails_closed_where_needed_and_the_rest_keeps_serving(stack):
    identity = psutil.Process(serving_processes(stack)["identity"])
    try:
        pids = serving_processes(stack)
        assert await worker_get_run(stack) == "NOT_FOUND/RUN_NOT_FOUND"
        assert await proxy_without_organization(stack) == 401  # identity: no such agent

        frozen_at = time.monotonic()
        identity.send_signal(signal.SIGSTOP)
        await until(
            lambda: equals(worker_get_run(stack), "UNAVAILABLE/REVOCATIONS_STALE"),
            within=5, since=frozen_at, what="worker calls refused once revocations are stale",
        )  # fmt: skip
        assert await proxy_without_organization(stack) == 503
        # The others keep serving: health, and calls that need no identity.
        assert await every_health(stack, NOT_IDENTITY) == dict.fromkeys(NOT_IDENTITY, SERVING)
        assert await internal_calls(stack) == ["OK"] * 3
        ready = await readyz(stack)
        assert ready.status_code == 503
        assert {name for name, status in ready.json()["services"].items() if status != "SERVING"} == {"identity"}

        resumed_at = time.monotonic()
        identity.send_signal(signal.SIGCONT)
        await until(
            lambda: equals(worker_get_run(stack), "NOT_FOUND/RUN_NOT_FOUND"),
            within=5, since=resumed_at, what="worker calls served again",
        )  # fmt: skip
        await until(lambda: has_status(readyz(stack), 200), within=5, since=resumed_at, what="/readyz 200")
        assert await proxy_without_organization(stack) == 401
        assert serving_processes(stack) == pids
        assert '"child_exited"' not in stack.logs()
    finally:
        if identity.is_running():
            identity.send_signal(signal.SIGCONT)  # never leave the shared stack frozen


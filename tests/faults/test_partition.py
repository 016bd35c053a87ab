"""A replica cut off from PostgreSQL while clients still reach it (a network partition, not a
crash): two interactions replicas, one reaching the database through a loopback TCP proxy that the
test cuts. That replica reports NOT_SERVING within seconds and refuses calls with UNAVAILABLE
(DATABASE_UNAVAILABLE); clients and the edge, whose channels skip replicas that do not serve, carry
on through the other one without a failed call; nothing acknowledged is lost; and when the route
returns, the same process serves again without a restart.

The test runs its own process tree (identity, the two replicas, the edge), so that one replica
alone can be given the proxy's address."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest

from switchboard.interactions.v1 import event_service_pb2, event_service_pb2_grpc
from switchboard.shared.crypto import new_key_list
from switchboard.shared.errors import reason_of
from switchboard.shared.grpc.client import open_channel
from tests.conftest import INTERNAL_TOKEN, REPO_ROOT, base_env, free_port
from tests.e2e.test_up import until_serving
from tests.faults.helpers import NOT_SERVING, SERVING, health, until
from tests.support.tcp_proxy import CuttableProxy
from tests.support.worker_keys import ISSUER, PUBLIC_KEYS_SETTING, SIGNING_KEY_SETTING

ORGANIZATION = "0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11"
AGENT = "2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33"
STREAM = f"agents/{AGENT}"
OPERATOR = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)


@dataclass
class Tree:
    """The test's processes: their ports and the proxy on replica B's route."""

    identity: int
    a: int
    b: int
    edge: int
    proxy: CuttableProxy
    processes: dict[str, asyncio.subprocess.Process]

    @property
    def replicas(self) -> str:
        return f"ipv4:127.0.0.1:{self.a},127.0.0.1:{self.b}"


def server_of(dsn: str) -> str | tuple[str, int]:
    """Where the server of ``dsn`` listens: the embedded server's Unix socket
    (postgresql://user@/db?host=<dir>), or a host and port."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    if "host" in query and query["host"][0].startswith("/"):
        return f"{query['host'][0]}/.s.PGSQL.{query.get('port', [parts.port or 5432])[0]}"
    return parts.hostname or "127.0.0.1", parts.port or 5432


def through(proxy_port: int, dsn: str) -> str:
    """``dsn`` by way of the proxy (the same user, password and database)."""
    parts = urlsplit(dsn)
    credentials = parts.netloc.rpartition("@")[0]
    return f"postgresql://{credentials}@127.0.0.1:{proxy_port}{parts.path}"


@contextlib.asynccontextmanager
async def process_tree(migrated_database: str, logs: Path) -> AsyncIterator[Tree]:
    proxy = CuttableProxy(server_of(migrated_database))
    await proxy.start()
    ports = {name: free_port() for name in ("identity", "a", "b", "edge")}
    env = base_env(
        SWITCHBOARD_INTERNAL_TOKEN=INTERNAL_TOKEN,
        SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS=PUBLIC_KEYS_SETTING,
        SWITCHBOARD_CREDENTIALS_KEYS=new_key_list(),
        SWITCHBOARD_IDENTITY_TARGET=f"127.0.0.1:{ports['identity']}",
        SWITCHBOARD_INTERACTIONS_TARGET=f"ipv4:127.0.0.1:{ports['a']},127.0.0.1:{ports['b']}",
        SWITCHBOARD_SHUTDOWN_GRACE_SECONDS="2",
    )
    plan = {
        "identity": ("identity", {"DATABASE_URL": migrated_database, "SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY": SIGNING_KEY_SETTING}),
        "a": ("interactions", {"DATABASE_URL": migrated_database}),
        "b": ("interactions", {"DATABASE_URL": through(proxy.port, migrated_database)}),  # its only route
        "edge": ("edge", {}),
    }
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        with (logs / "processes.log").open("wb") as log:
            for name, (service, extra) in plan.items():
                metrics = ("--metrics-port", str(free_port())) if service != "edge" else ()
                processes[name] = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "switchboard", "serve", service, "--port", str(ports[name]), *metrics,
                    cwd=REPO_ROOT, env={**env, **extra}, stdout=asyncio.subprocess.DEVNULL, stderr=log,
                )  # fmt: skip
        async with asyncio.timeout(60):
            await asyncio.gather(*(until_serving(ports[name]) for name in ("identity", "a", "b")))
            await until(lambda: edge_answers(ports["edge"]), within=60, what="the edge listening")
        yield Tree(ports["identity"], ports["a"], ports["b"], ports["edge"], proxy, processes)
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        await proxy.stop()


async def edge_answers(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


class Publishers:
    """Publishers over both replicas, as a client with a health-checked channel: every
    acknowledged event and the outcome of every call."""

    def __init__(self, target: str):
        self._target = target
        self.acknowledged: dict[int, str] = {}
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._count = 0

    def start(self, writers: int = 2) -> None:
        self._tasks = [asyncio.create_task(self._write()) for _ in range(writers)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def failures(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome != "OK")

    async def _write(self) -> None:
        async with open_channel(self._target, token=INTERNAL_TOKEN, health_checked=True) as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            while not self._stop.is_set():
                self._count += 1
                payload = json.dumps({"n": self._count})
                try:
                    reply = await stub.Publish(
                        event_service_pb2.PublishRequest(stream=STREAM, organization_id=ORGANIZATION, type="t", payload_json=payload),
                        timeout=5,
                    )
                except grpc.aio.AioRpcError as exc:
                    self.outcomes[f"{exc.code().name}/{reason_of(exc)}"] += 1
                    await asyncio.sleep(0.02)  # a client backing off a little, as RetryInfo asks
                else:
                    self.outcomes["OK"] += 1
                    self.acknowledged[reply.sequence] = payload


async def publish_directly(port: int) -> str:
    """One Publish on the replica at ``port`` alone: OK, or the failed call's code and reason."""
    async with open_channel(f"127.0.0.1:{port}", token=INTERNAL_TOKEN) as channel:
        try:
            await event_service_pb2_grpc.EventServiceStub(channel).Publish(
                event_service_pb2.PublishRequest(stream="faults/direct", organization_id=ORGANIZATION, type="t", payload_json="{}"),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}/{reason_of(exc)}"
    return "OK"


async def sse_through_the_edge(port: int, token: str) -> tuple[int, str]:
    """One SSE request through the edge: its status and the first event's id."""
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream(
            "GET", f"http://127.0.0.1:{port}/v1/streams/{STREAM}/events",
            headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "0"},
        ) as response:  # fmt: skip
            if response.status_code != 200:
                return response.status_code, ""
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    return 200, line[3:].strip()
    return 0, ""


async def equals(actual, expected) -> bool:
    return await actual == expected


async def at_least(count: Callable[[], int], target: int) -> bool:
    return count() >= target


@pytest.mark.timeout(120)
async def test_a_replica_cut_off_from_postgres_stops_serving_and_the_other_carries_on(migrated_database, tmp_path):
    async with process_tree(migrated_database, tmp_path) as tree:
        assert tree.proxy.connections > 0  # replica B's pool and probe use the route
        token = ISSUER.issue(organization_id=ORGANIZATION, agent_id=AGENT, connection_id=None, ttl=timedelta(minutes=10)).token
        publishers = Publishers(tree.replicas)
        publishers.start()
        try:
            await until(lambda: at_least(lambda: len(publishers.acknowledged), 20), within=30, what="the first writes")
            assert await publish_directly(tree.b) == "OK"

            # The route of replica B to PostgreSQL is gone; clients still reach B.
            cut_at = time.monotonic()
            await tree.proxy.cut()
            took = await until(lambda: equals(health(tree.b), NOT_SERVING), within=5, since=cut_at, what="B NOT_SERVING")
            assert await health(tree.a) == SERVING
            assert await publish_directly(tree.b) == "UNAVAILABLE/DATABASE_UNAVAILABLE"
            # The publishers' channel skips B from now on: once it has seen B's health, not one call fails.
            acked = len(publishers.acknowledged)
            await until(lambda: at_least(lambda: len(publishers.acknowledged), acked + 5), within=10, what="writes via A")
            failures, acked = publishers.failures(), len(publishers.acknowledged)
            await until(lambda: at_least(lambda: len(publishers.acknowledged), acked + 30), within=10, what="more writes via A")
            assert publishers.failures() == failures, publishers.outcomes
            # The edge routes streams to A: every request succeeds (B would answer 503).
            for _ in range(6):
                assert await sse_through_the_edge(tree.edge, token) == (200, "1")
            assert await health(tree.b) == NOT_SERVING and await publish_directly(tree.b) == "UNAVAILABLE/DATABASE_UNAVAILABLE"

            # The route returns: the same process serves again, without a restart.
            pid = tree.processes["b"].pid
            restored_at = time.monotonic()
            await tree.proxy.restore()
            await until(lambda: equals(health(tree.b), SERVING), within=5, since=restored_at, what="B SERVING again")
            await until(lambda: equals(publish_directly(tree.b), "OK"), within=5, since=restored_at, what="B answering")
            assert tree.processes["b"].returncode is None and tree.processes["b"].pid == pid
            acked = len(publishers.acknowledged)
            await until(lambda: at_least(lambda: len(publishers.acknowledged), acked + 20), within=10, what="writes after")
        finally:
            await publishers.stop()

        # Every call answered OK, or UNAVAILABLE for the database before the channel saw B's health.
        assert set(publishers.outcomes) <= {"OK", "UNAVAILABLE/DATABASE_UNAVAILABLE"}, publishers.outcomes
        # Nothing acknowledged is lost: the stream holds every acknowledged event, as acknowledged.
        stored: dict[int, str] = {}
        async with open_channel(f"127.0.0.1:{tree.a}", token=INTERNAL_TOKEN) as channel:
            replies = event_service_pb2_grpc.EventServiceStub(channel).Subscribe(
                event_service_pb2.SubscribeRequest(stream=STREAM, organization_id=ORGANIZATION, after_sequence=0),
                timeout=30,
                metadata=OPERATOR,
            )
            async for reply in replies:
                stored[reply.event.sequence] = reply.event.payload_json
                if reply.event.sequence >= max(publishers.acknowledged):
                    replies.cancel()
                    break
        assert {seq: stored.get(seq) for seq in publishers.acknowledged} == publishers.acknowledged
        print(f"B NOT_SERVING {took:.2f} s after the cut; outcomes {dict(publishers.outcomes)}")
    logs = (tmp_path / "processes.log").read_text()
    assert '"rpc_unexpected_error"' not in logs and '"database_unreachable"' in logs and '"database_reachable"' in logs

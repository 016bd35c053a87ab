"""`switchboard up` as an operator runs it: a real process tree on an embedded PostgreSQL, driven
with grpcurl (the client operators use) and real gRPC/HTTP clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.shared.auth import WorkerTokenIssuer
from switchboard.shared.config import SERVICES
from switchboard.shared.grpc.client import open_channel
from switchboard.shared.worker_keys import parse_signing_key
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc
from switchboard.supervisor import REPLICA_PORT_STRIDE
from tests.support.worker_keys import PUBLIC_KEYS_SETTING
from tests.conftest import REPO_ROOT, base_env

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
PROTO_SERVICES = {
    "identity": ["switchboard.identity.v1.AgentService", "switchboard.identity.v1.IdentityService"],
    "interactions": ["switchboard.interactions.v1.EventService", "switchboard.interactions.v1.InteractionService"],
    "secretproxy": ["switchboard.secretproxy.v1.SecretProxyService"],
    "runs": ["switchboard.runs.v1.RunService"],
}


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_base_ports(count: int, replicas: int) -> list[int]:
    """``count`` ports p such that p + 100·i (replicas) and their metrics ports (+1000) are free."""
    chosen: list[int] = []
    candidate = 20000 + (os.getpid() % 200) * 40
    while len(chosen) < count:
        candidate += 1
        needed = [candidate + REPLICA_PORT_STRIDE * i + extra for i in range(replicas) for extra in (0, 1000)]
        if all(_is_free(p) for p in needed) and not any(abs(candidate - c) < 2 for c in chosen):
            chosen.append(candidate)
    return chosen


LAYOUT: Any = None
"""Where the stacks of the current test keep their data: a tests/e2e/conftest.py Layout, whose
``stack_env()`` gives the environment (None, or empty: the stack embeds its own PostgreSQL)."""


@dataclass
class Stack:
    process: asyncio.subprocess.Process
    ports: dict[str, int]
    data_dir: Path
    stderr_path: Path
    internal_token: str
    worker_key: str  # the private key of worker tokens that `up` generated (identity's)

    @property
    def tokens(self) -> WorkerTokenIssuer:
        """Mints worker tokens as the stack's identity service does."""
        return WorkerTokenIssuer(parse_signing_key(self.worker_key))

    def logs(self) -> str:
        return self.stderr_path.read_text()

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


async def start_stack(tmp_path: Path, replicas: int = 1, extra_env: dict[str, str] | None = None) -> Stack:
    ports = dict(zip([*SERVICES, "edge"], free_base_ports(5, replicas), strict=True))
    data_dir = tmp_path / "data"
    database_env = await LAYOUT.stack_env() if LAYOUT is not None else {}
    env = base_env(
        SWITCHBOARD_DATA_DIR=str(data_dir), SWITCHBOARD_SHUTDOWN_GRACE_SECONDS="5", **database_env, **(extra_env or {})
    )
    for name, port in ports.items():
        env[f"SWITCHBOARD_{name.upper()}_PORT"] = str(port)
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard", "up", "--replicas", str(replicas),
            cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    table = []
    async with asyncio.timeout(60):
        while not table or not table[-1].startswith("internal token:"):
            line = await process.stdout.readline()
            assert line, f"`switchboard up` exited early:\n{stderr_path.read_text()[-3000:]}"
            table.append(line.decode().rstrip())
    secrets = json.loads((data_dir / "secrets.json").read_text())
    assert table[-1] == f"internal token: {secrets['internal_token']}"
    return Stack(process, ports, data_dir, stderr_path, secrets["internal_token"], secrets["worker_token_signing_key"])


async def stop_stack(stack: Stack) -> int:
    if stack.process.returncode is None:
        stack.process.send_signal(signal.SIGINT)
    async with asyncio.timeout(60):
        return await stack.process.wait()


@pytest.fixture
async def stack(tmp_path) -> AsyncIterator[Stack]:
    stack = await start_stack(tmp_path)
    yield stack
    await stop_stack(stack)


async def until_serving(port: int) -> None:
    """Wait (watching health, no polling) until the process on ``port`` reports SERVING."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30)
        async for reply in watch:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                watch.cancel()
                return


def grpcurl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30)


def test_grpcurl_is_installed_by_the_test_extras():
    assert grpcurl("-version").returncode == 0 or "grpcurl" in grpcurl("-version").stderr


@pytest.mark.database_layouts("pgbouncer", "four_databases")
async def test_every_service_lists_its_api_health_and_reflection_with_grpcurl(stack):
    for service, names in PROTO_SERVICES.items():
        port = stack.ports[service]
        listed = await asyncio.to_thread(grpcurl, f"localhost:{port}", "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == sorted([*names, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"])
        health = await asyncio.to_thread(grpcurl, f"localhost:{port}", "grpc.health.v1.Health/Check")
        assert json.loads(health.stdout) == {"status": "SERVING"}
    ready = httpx.get(f"http://127.0.0.1:{stack.ports['edge']}/readyz")
    assert ready.status_code == 200 and set(ready.json()["services"].values()) == {"SERVING"}


async def test_calls_are_authenticated_and_no_token_reaches_the_logs(stack):
    tokens = stack.tokens
    good = tokens.issue(organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", agent_id="2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", connection_id=None, ttl=timedelta(minutes=5)).token
    expired = tokens.issue(
        organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", agent_id="2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", connection_id=None, ttl=timedelta(seconds=1),
        now=datetime.now(UTC) - timedelta(hours=1),
    ).token  # fmt: skip
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    target = f"localhost:{stack.ports['runs']}"
    method = "switchboard.runs.v1.RunService/GetRun"
    body = json.dumps({"run_id": "6f1b2c9e-8a44-4c1e-9d1a-0b7d4f3e2a11"})

    async def call(*headers: str) -> subprocess.CompletedProcess:
        flags = [arg for header in headers for arg in ("-H", header)]
        return await asyncio.to_thread(grpcurl, *flags, "-d", body, target, method)

    assert "Code: Unauthenticated" in (await call()).stderr
    assert "Code: Unauthenticated" in (await call(f"authorization: Bearer {tampered}")).stderr
    expired_reply = await call(f"authorization: Bearer {expired}")
    assert "Code: Unauthenticated" in expired_reply.stderr and "expired" in expired_reply.stderr
    # Past authentication, the call reaches the handler: that run does not exist.
    assert "Code: NotFound" in (await call(f"authorization: Bearer {stack.internal_token}")).stderr
    assert "Code: NotFound" in (await call(f"authorization: Bearer {good}")).stderr

    await stop_stack(stack)  # flushes every process's last lines
    logs = stack.logs()
    refusals = [json.loads(l) for l in logs.splitlines() if '"rpc_finished"' in l and "UNAUTHENTICATED" in l]
    assert len(refusals) == 3
    for secret in (good, expired, tampered, stack.internal_token, stack.worker_key):
        for part in secret.split("."):
            assert part not in logs


async def test_ctrl_c_turns_health_not_serving_then_stops_everything(stack):
    children = psutil.Process(stack.process.pid).children(recursive=True)
    serving = [c for c in children if "serve" in c.cmdline()]
    assert len(serving) == 5  # four services and the edge
    postmaster = stack.postmaster_pid()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.ports['identity']}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stack.process.send_signal(signal.SIGINT)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert await stop_stack(stack) == 0

    for child in serving:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
    assert not (stack.data_dir / "pgdata" / "postmaster.pid").exists()
    for port in stack.ports.values():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    logs = stack.logs()
    assert '"stack_stopped"' in logs and '"edge_stopped"' in logs
    assert logs.count('"service_stopped"') == 4


async def test_a_stop_signal_during_start_up_still_stops_the_database(tmp_path):
    data_dir = tmp_path / "data"
    ports = free_base_ports(5, 1)
    env = base_env(SWITCHBOARD_DATA_DIR=str(data_dir))
    for name, port in zip([*SERVICES, "edge"], ports, strict=True):
        env[f"SWITCHBOARD_{name.upper()}_PORT"] = str(port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "up", cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        while b'"embedded_postgres_started"' not in (line := await process.stderr.readline()):
            assert line, "up exited before starting the database"
        postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
        process.send_signal(signal.SIGTERM)
        rest = await process.stderr.read()
        assert await process.wait() == 0
    assert b'"during": "start-up"' in rest or b'"during":"start-up"' in rest
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


async def test_replicas_are_balanced_and_a_dead_one_is_replaced(tmp_path):
    stack = await start_stack(tmp_path, replicas=2)
    try:
        runs_ports = [stack.ports["runs"] + REPLICA_PORT_STRIDE * i for i in range(2)]
        target = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in runs_ports)
        async with open_channel(target, token=stack.internal_token) as channel, httpx.AsyncClient() as http:
            stub = run_service_pb2_grpc.RunServiceStub(channel)

            async def handled() -> list[float]:
                counts = []
                for port in runs_ports:
                    text = (await http.get(f"http://127.0.0.1:{port + 1000}/metrics")).text
                    lines = [l for l in text.splitlines() if l.startswith("switchboard_grpc_server_handled_total") and "GetRun" in l]
                    counts.append(sum(float(l.rsplit(" ", 1)[1]) for l in lines))
                return counts

            async def call_get_run(times: int) -> None:
                for _ in range(times):
                    with pytest.raises(grpc.aio.AioRpcError):
                        await stub.GetRun(run_service_pb2.GetRunRequest())

            # Round robin starts on the first replica that connects; the calls after a warm-up
            # (every subchannel connected by then) must be spread over both, not all on one.
            await call_get_run(10)
            before = await handled()
            await call_get_run(20)
            per_replica = [after - was for after, was in zip(await handled(), before)]
        assert sum(per_replica) == 20 and min(per_replica) >= 5, per_replica  # round robin, not all on one

        # Kill one identity replica hard: the edge keeps answering through the other, and the
        # supervisor starts a new one on the same port.
        victim_port = stack.ports["identity"] + REPLICA_PORT_STRIDE
        victim = next(
            c for c in psutil.Process(stack.process.pid).children()
            if "serve" in c.cmdline() and str(victim_port) in c.cmdline()
        )  # fmt: skip
        victim.kill()
        victim.wait(10)
        ready = httpx.get(f"http://127.0.0.1:{stack.ports['edge']}/readyz")
        assert ready.status_code == 200
        await until_serving(victim_port)
        assert '"child_exited"' in stack.logs()
    finally:
        assert await stop_stack(stack) == 0


# -- `up` owns its database or refuses -------------------------------------------------------------


def stack_env(stack: Stack, **extra: str) -> dict[str, str]:
    """The environment that started ``stack``: the same data directory and ports."""
    env = base_env(SWITCHBOARD_DATA_DIR=str(stack.data_dir), **extra)
    for name, port in stack.ports.items():
        env[f"SWITCHBOARD_{name.upper()}_PORT"] = str(port)
    return env


async def run_up(env: dict[str, str], timeout: float = 20) -> tuple[int, str, str]:
    """Run `switchboard up` to its end; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "up", cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # it did not refuse: do not leave a stack behind
            process.send_signal(signal.SIGINT)
            await process.wait()
    return process.returncode, stdout.decode(), stderr.decode()


async def test_a_second_up_on_a_data_directory_in_use_refuses_in_one_line_and_harms_nothing(stack):
    postmaster = stack.postmaster_pid()
    children = sorted(c.pid for c in psutil.Process(stack.process.pid).children())

    code, stdout, stderr = await run_up(stack_env(stack))

    assert code == 1
    assert stdout == ""  # no endpoint table: nothing of it serves
    assert stderr.splitlines() == [
        f"switchboard: {stack.data_dir} is in use by another `switchboard up` (pid {stack.process.pid}): "
        "stop it first, or set SWITCHBOARD_DATA_DIR to another directory"
    ]
    # Below the lock, the embedded database itself never stops a server it did not start: what a
    # second `up` without the lock did (it attached, and stopped the first stack's database).
    guest = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from switchboard.shared.embedded_pg import EmbeddedPostgres; "
         "pg = EmbeddedPostgres(Path(sys.argv[1])); pg.start(); print(pg.started_here); pg.stop()",
         str(stack.data_dir / "pgdata")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert guest.returncode == 0 and guest.stdout.split() == ["False"], guest.stderr
    # The first stack is untouched: the same database and children, and calls reach the database.
    assert stack.postmaster_pid() == postmaster and psutil.pid_exists(postmaster)
    assert sorted(c.pid for c in psutil.Process(stack.process.pid).children()) == children
    async with open_channel(f"127.0.0.1:{stack.ports['runs']}", token=stack.internal_token) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await run_service_pb2_grpc.RunServiceStub(channel).GetRun(
                run_service_pb2.GetRunRequest(run_id="6f1b2c9e-8a44-4c1e-9d1a-0b7d4f3e2a11")
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND  # answered from the database
    ready = httpx.get(f"http://127.0.0.1:{stack.ports['edge']}/readyz")
    assert ready.status_code == 200
    assert '"child_exited"' not in stack.logs()


async def test_a_port_in_use_is_one_line_naming_its_variable_and_nothing_is_started(tmp_path):
    ports = dict(zip([*SERVICES, "edge"], free_base_ports(5, 1), strict=True))
    data_dir = tmp_path / "data"
    env = base_env(SWITCHBOARD_DATA_DIR=str(data_dir))
    for name, port in ports.items():
        env[f"SWITCHBOARD_{name.upper()}_PORT"] = str(port)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["runs"]))
        squatter.listen()
        code, stdout, stderr = await run_up(env)
    assert code == 1 and stdout == ""
    assert stderr.splitlines() == [
        f"switchboard: port in use on 127.0.0.1: {ports['runs']} (SWITCHBOARD_RUNS_PORT); "
        "set the variable named to free ports, or stop what listens there"
    ]
    assert not data_dir.exists()  # no database made, no secrets written


@pytest.mark.parametrize("service", ["runs", "edge"])
def test_serve_on_a_port_in_use_is_one_line_naming_its_variable(service, postgres_dsn):
    env = base_env(
        DATABASE_URL=postgres_dsn,
        SWITCHBOARD_INTERNAL_TOKEN="t" * 40,
        SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS=PUBLIC_KEYS_SETTING,
    )
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env[f"SWITCHBOARD_{service.upper()}_PORT"] = str(port)
        done = subprocess.run(
            [sys.executable, "-m", "switchboard", "serve", service],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"switchboard: port {port} on 127.0.0.1 is in use by another process: "
        f"set SWITCHBOARD_{service.upper()}_PORT to a free port"
    ]


async def test_up_gives_the_worker_token_private_key_to_identity_only(tmp_path):
    # A data directory of the HS256 days: its shared key is dropped and a key pair made instead.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secrets.json").write_text(json.dumps({"internal_token": "i" * 43, "worker_token_key": "w" * 64}))
    stack = await start_stack(tmp_path)
    try:
        signing_key = stack.worker_key.partition(":")[2]
        holders = {}
        for child in psutil.Process(stack.process.pid).children():
            if "serve" in child.cmdline():
                service = child.cmdline()[child.cmdline().index("serve") + 1]
                environ = child.environ()
                assert environ["SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS"] == parse_signing_key(stack.worker_key).public_setting()
                holders[service] = signing_key in environ.get("SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY", "")
        assert holders == {"identity": True, "interactions": False, "secretproxy": False, "runs": False, "edge": False}
        assert "worker_token_key" not in json.loads((stack.data_dir / "secrets.json").read_text())
        # A token of that key is accepted by a service that holds only the public key.
        token = stack.tokens.issue(organization_id=str(uuid.uuid4()), agent_id=str(uuid.uuid4()), connection_id=None, ttl=timedelta(minutes=5))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.ports['runs']}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await run_service_pb2_grpc.RunServiceStub(channel).GetRun(
                    run_service_pb2.GetRunRequest(run_id=str(uuid.uuid4())), metadata=(("authorization", f"Bearer {token.token}"),)
                )
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        assert await stop_stack(stack) == 0

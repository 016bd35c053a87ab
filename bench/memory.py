"""Memory: resident memory of every process of `switchboard up`, idle and under a mixed load.

The stack is started as a person would (`switchboard up`, embedded PostgreSQL, production log
level); its processes are found from the supervisor's children and the database's pid that it
logs. The load, a few seconds from the benchmark process, touches every process: runs claimed
and completed, events published to gRPC and SSE subscribers (through the edge), sign-ups, secret
listings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
import psutil

from bench.common import Measurement, Row
from bench.runs_throughput import TOKEN, WORKER_KEY, WORKER_TOKENS
from bench.startup import SERVICES, launch_up
from switchboard.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from switchboard.interactions.v1 import event_service_pb2, event_service_pb2_grpc
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc
from switchboard.secretproxy.v1 import secret_proxy_service_pb2, secret_proxy_service_pb2_grpc

KINDS = (*SERVICES, "postgres")
IDLE_SECONDS = 2.0  # after SERVING: background loops have run once, nothing else
LOAD_SECONDS = 5.0
SAMPLES_UNDER_LOAD = 4
METADATA = (("authorization", f"Bearer {TOKEN}"),)
MIB = 1024 * 1024


def _resident(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """MiB per kind: RSS of each Switchboard process; for PostgreSQL, the PSS summed over the
    postmaster and its backends (PSS splits shared buffers among the processes mapping them, so
    the sum counts them once, where an RSS sum would count them once per backend)."""
    found = {}
    for kind, members in processes.items():
        if kind == "postgres":
            members = [members[0], *members[0].children(recursive=True)]
        total = 0
        for process in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_full_info().pss if kind == "postgres" else process.memory_info().rss
        found[kind] = total / MIB
    return found


def _processes(supervisor: int, postgres: int) -> dict[str, list[psutil.Process]]:
    found: dict[str, list[psutil.Process]] = {kind: [] for kind in KINDS}
    for child in psutil.Process(supervisor).children():
        arguments = child.cmdline()
        if "serve" in arguments:
            found[arguments[arguments.index("serve") + 1]].append(child)
    found["postgres"] = [psutil.Process(postgres)]
    return found


async def _load(ports: dict[str, int], seconds: float) -> dict[str, int]:
    """Every process busy for ``seconds``: runs, events (gRPC and SSE), sign-ups, secret listings.
    Returns how many of each were done (events: as received by the subscribers)."""
    org, stream = str(uuid.uuid4()), "memory"
    done = dict.fromkeys(("runs", "published", "grpc_received", "sse_received", "sign_ups", "listings", "healthz"), 0)
    tokens = WORKER_TOKENS

    def worker_token() -> str:
        issued = tokens.issue(organization_id=org, agent_id=str(uuid.uuid4()), connection_id=None, ttl=timedelta(hours=1))
        return issued.token

    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    channels = {s: grpc.aio.insecure_channel(f"127.0.0.1:{ports[s]}") for s in ("identity", "interactions", "secretproxy", "runs")}
    runs = run_service_pb2_grpc.RunServiceStub(channels["runs"])
    events = event_service_pb2_grpc.EventServiceStub(channels["interactions"])
    identity = identity_service_pb2_grpc.IdentityServiceStub(channels["identity"])
    secrets = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(channels["secretproxy"])

    async def repeatedly(call: Callable[[], Awaitable[object]], counter: str) -> None:
        while loop.time() < until:
            await call()
            done[counter] += 1

    async def run_once(worker: str = "w") -> None:
        await runs.EnqueueRun(
            run_service_pb2.EnqueueRunRequest(organization_id=org, lane=run_service_pb2.LANE_ACTION, subject_id="s", payload_json="{}"),
            metadata=METADATA,
        )
        claimed = await runs.ClaimRun(run_service_pb2.ClaimRunRequest(worker_id=worker, lanes=[run_service_pb2.LANE_ACTION]), metadata=METADATA)
        if claimed.HasField("run"):
            run = claimed.run
            await runs.Heartbeat(run_service_pb2.HeartbeatRequest(run_id=run.id, worker_id=worker, attempt=run.attempt), metadata=METADATA)
            await runs.CompleteRun(
                run_service_pb2.CompleteRunRequest(run_id=run.id, worker_id=worker, attempt=run.attempt, result_json="{}"), metadata=METADATA
            )

    async def publish() -> None:
        request = event_service_pb2.PublishRequest(stream=stream, organization_id=org, type="memory", payload_json='{"n": 1}')
        await events.Publish(request, metadata=METADATA)

    async def sign_up() -> None:
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        await identity.SignUp(identity_service_pb2.SignUpRequest(email=email, display_name="Memory Bench"), metadata=METADATA)

    async def list_secrets() -> None:
        await secrets.ListSecrets(secret_proxy_service_pb2.ListSecretsRequest(organization_id=org), metadata=METADATA)

    async def grpc_subscriber() -> None:
        call = events.Subscribe(
            event_service_pb2.SubscribeRequest(stream=stream, organization_id=org), metadata=(("authorization", f"Bearer {worker_token()}"),)
        )
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            async for _ in call:
                done["grpc_received"] += 1

    async def sse_subscriber(http: httpx.AsyncClient) -> None:
        headers = {"authorization": f"Bearer {worker_token()}"}
        async with http.stream("GET", f"/v1/streams/{stream}/events", headers=headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                done["sse_received"] += line.startswith("data:")

    async def healthz(http: httpx.AsyncClient) -> None:
        (await http.get("/healthz")).raise_for_status()

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['edge']}", timeout=30) as http:
        listeners = [asyncio.create_task(grpc_subscriber()) for _ in range(20)]
        listeners += [asyncio.create_task(sse_subscriber(http)) for _ in range(10)]
        try:
            await asyncio.gather(
                *(repeatedly(lambda i=i: run_once(f"w{i}"), "runs") for i in range(8)),
                *(repeatedly(publish, "published") for _ in range(4)),
                *(repeatedly(sign_up, "sign_ups") for _ in range(2)),
                *(repeatedly(list_secrets, "listings") for _ in range(2)),
                *(repeatedly(lambda: healthz(http), "healthz") for _ in range(2)),
            )
            await asyncio.sleep(0.5)  # the last events reach the subscribers
        finally:
            for listener in listeners:
                listener.cancel()
            outcomes = await asyncio.gather(*listeners, return_exceptions=True)
            for channel in channels.values():
                await channel.close()
    failed = [o for o in outcomes if isinstance(o, Exception)]
    if failed or not done["grpc_received"] or not done["sse_received"]:
        raise RuntimeError(f"the subscribers did not receive the load's events: {failed[:1]!r}")
    return done


async def _measure_once(data_dir: Path) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """(idle, peak under load) MiB per kind, and what the load did, from one `switchboard up`."""
    process, ports = await launch_up(data_dir, SWITCHBOARD_INTERNAL_TOKEN=TOKEN, SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY=WORKER_KEY.setting())
    assert process.stderr is not None
    postgres, drain = None, None
    try:
        async with asyncio.timeout(60):
            while True:
                line = await process.stderr.readline()
                if not line:
                    raise RuntimeError("switchboard up exited before serving")
                if b'"embedded_postgres_started"' in line:
                    postgres = json.loads(line)["pid"]
                if b'"stack_serving"' in line:
                    break
        # The children log every call to the same pipe: keep reading it, or they block on it.
        drain = asyncio.create_task(_discard(process.stderr))
        assert postgres is not None
        processes = _processes(process.pid, postgres)
        await asyncio.sleep(IDLE_SECONDS)
        idle = _resident(processes)
        load = asyncio.create_task(_load(ports, LOAD_SECONDS))
        peak = dict.fromkeys(KINDS, 0.0)
        for _ in range(SAMPLES_UNDER_LOAD):
            await asyncio.sleep(LOAD_SECONDS / (SAMPLES_UNDER_LOAD + 1))
            peak = {kind: max(peak[kind], mib) for kind, mib in _resident(processes).items()}
        done = await load
    finally:
        process.send_signal(signal.SIGINT)
        await process.wait()
        if drain is not None:
            drain.cancel()
    return idle, peak, done


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(1 << 16):
        pass


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    idle: dict[str, list[float]] = {kind: [] for kind in KINDS}
    loaded: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="switchboard-memory-") as scratch:
        data_dir = Path(scratch) / "data"
        await _measure_once(data_dir)  # warm-up: initdb, migrations, byte-compiled imports
        for _ in range(repetitions):
            quiet, busy, done = await _measure_once(data_dir)
            for kind in KINDS:
                idle[kind].append(quiet[kind])
                loaded[kind].append(busy[kind])
    rows = []
    for kind in KINDS:
        what = "PostgreSQL, all processes (PSS)" if kind == "postgres" else f"{kind} process (RSS)"
        rows.append(Row(f"memory: {what}, idle", "MiB", Measurement(idle[kind]), "(no peer)", None, higher_is_better=False))
        rows.append(Row(f"memory: {what}, under load", "MiB", Measurement(loaded[kind]), "(no peer)", None, higher_is_better=False))
    note = (
        f"Memory: `switchboard up` on an existing data directory (embedded PostgreSQL, log level info), one process per "
        f"service. Idle: {IDLE_SECONDS:g} s after every process is SERVING. Under load: the highest of "
        f"{SAMPLES_UNDER_LOAD} samples during {LOAD_SECONDS:g} s of 8 run workers (enqueue, claim, heartbeat, complete), "
        "4 publishers to one stream read by 20 gRPC and 10 SSE subscribers (through the edge), 2 sign-up loops, 2 "
        f"ListSecrets loops and 2 /healthz loops (last repetition: {done['runs']} runs, {done['published']} events "
        f"published, {done['grpc_received']} received over gRPC and {done['sse_received']} over SSE, {done['sign_ups']} "
        f"sign-ups, {done['listings']} listings, {done['healthz']} health checks). PostgreSQL: proportional set size summed over the postmaster and its "
        "backends (shared buffers counted once)."
    )
    return rows, [note]

"""Runs through the worker library (``switchboard.worker.Worker``: one WorkSession per worker,
runs leased in batches, completions acknowledged once committed) against pgqueuer (as it ships,
and with ``batch_size=1``) and procrastinate on the same PostgreSQL: runs/s at 1, 4 and 16
workers, enqueue → handler start latency with idle workers, and CPU per run in each process."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
import uuid
from urllib.parse import parse_qs, urlparse

import asyncpg
import grpc
import psutil

from bench.common import Measurement, Row, fresh_database, percentile, repeat
from bench.runs_throughput import TOKEN, start_services
from switchboard.runs.v1 import run_service_pb2 as pb
from switchboard.runs.v1 import run_service_pb2_grpc
from switchboard.shared.migrate import migrate
from switchboard.worker import Worker

WORKERS = (1, 4, 16)
JOBS = 5000
CONCURRENCY = 10  # runs each worker holds at once: pgqueuer's default batch
LATENCY_SAMPLES = 200
IDLE_WORKERS = 4
PEERS = (
    ("bench.peers.pgqueuer_jobs", {"BATCH_SIZE": 10}, ""),
    ("bench.peers.pgqueuer_jobs", {"BATCH_SIZE": 1}, " (batch_size=1)"),
    ("bench.peers.procrastinate_jobs", {}, ""),
)


async def _fill(pool: asyncpg.Pool, jobs: int) -> None:
    organization_id = str(uuid.uuid4())
    await pool.execute("TRUNCATE runs.runs")
    await pool.executemany(
        "INSERT INTO runs.runs (id, organization_id, lane, subject_id, payload_json) VALUES ($1, $2, 'action', $3, $4)",
        [(str(uuid.uuid4()), organization_id, f"s{i}", '{"n": %d}' % i) for i in range(jobs)],
    )
    await pool.execute("ANALYZE runs.runs")


async def _library_drain(target: str, pool: asyncpg.Pool, workers: int, cpu=None) -> float:
    """``workers`` Workers in this process work through JOBS runs; seconds until every completion
    is acknowledged (committed) and every worker has returned."""
    await _fill(pool, JOBS)
    done = 0
    fleet: list[Worker] = []

    async def handler(ctx) -> None:
        nonlocal done
        done += 1
        if done == JOBS:
            for worker in fleet:
                worker.stop()  # returns once its outcomes are acknowledged

    fleet.extend(Worker(target, TOKEN, ["action"], CONCURRENCY, handler, grace_seconds=30) for _ in range(workers))
    if cpu is not None:
        cpu.start()
    started = time.perf_counter()
    await asyncio.gather(*(worker.run() for worker in fleet))
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.stop()
    completed = await pool.fetchval("SELECT count(*) FROM runs.runs WHERE status = 'completed'")
    if completed != JOBS:
        raise RuntimeError(f"the library completed {completed} of {JOBS} runs")
    return elapsed


async def _library_latency(target: str, pool: asyncpg.Pool) -> list[float]:
    """Seconds from EnqueueRun's call to the handler's start, one run at a time, IDLE_WORKERS idle."""
    await pool.execute("TRUNCATE runs.runs")
    started: dict[str, float] = {}
    arrived: dict[str, asyncio.Event] = {}

    async def handler(ctx) -> None:
        started[ctx.run.subject_id] = time.perf_counter()
        arrived[ctx.run.subject_id].set()

    fleet = [Worker(target, TOKEN, ["action"], CONCURRENCY, handler) for _ in range(IDLE_WORKERS)]
    running = [asyncio.create_task(worker.run()) for worker in fleet]
    samples = []
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = run_service_pb2_grpc.RunServiceStub(channel)
            metadata = (("authorization", f"Bearer {TOKEN}"),)
            organization_id = str(uuid.uuid4())
            await asyncio.sleep(1.0)  # every session open and idle
            for i in range(LATENCY_SAMPLES + 10):
                subject = f"l{i}"
                arrived[subject] = asyncio.Event()
                enqueued = time.perf_counter()
                await stub.EnqueueRun(pb.EnqueueRunRequest(organization_id=organization_id, lane=pb.LANE_ACTION, subject_id=subject), metadata=metadata)
                await asyncio.wait_for(arrived[subject].wait(), 10)
                if i >= 10:  # the first ones warm up
                    samples.append(started[subject] - enqueued)
                await asyncio.sleep(0.01)  # idle again
    finally:
        for worker in fleet:
            worker.stop()
        await asyncio.gather(*running, return_exceptions=True)
    return samples


async def _pgqueuer_latency(dsn: str) -> list[float]:
    """The same with pgqueuer: Queries.enqueue to the entrypoint's start, IDLE_WORKERS managers."""
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries

    setup = await asyncpg.connect(dsn)
    await Queries(AsyncpgDriver(setup)).install()
    conns = [await asyncpg.connect(dsn) for _ in range(IDLE_WORKERS)]
    managers = [QueueManager(Queries(AsyncpgDriver(conn))) for conn in conns]
    started: dict[int, float] = {}
    arrived: dict[int, asyncio.Event] = {}
    for qm in managers:

        @qm.entrypoint("latency")
        async def handler(job, started=started) -> None:
            seq = int(job.payload)
            started[seq] = time.perf_counter()
            arrived[seq].set()

    running = [asyncio.create_task(qm.run()) for qm in managers]
    samples = []
    try:
        queries = Queries(AsyncpgDriver(setup))
        await asyncio.sleep(1.0)
        for i in range(LATENCY_SAMPLES + 10):
            arrived[i] = asyncio.Event()
            enqueued = time.perf_counter()
            await queries.enqueue(["latency"], [str(i).encode()], [0])
            await asyncio.wait_for(arrived[i].wait(), 10)
            if i >= 10:
                samples.append(started[i] - enqueued)
            await asyncio.sleep(0.01)
    finally:
        for qm in managers:
            qm.shutdown.set()
        await asyncio.gather(*running, return_exceptions=True)
        for conn in (setup, *conns):
            await conn.close()
    return samples


class _Cpu:
    """User+system CPU seconds of named groups of processes over a window. A group is a process
    and its descendants; the time of descendants that ended meanwhile (PostgreSQL's backends of
    closed connections) is counted through the parent's reaped-children times."""

    def __init__(self, roots: dict[str, psutil.Process]):
        self._roots = roots
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        totals = {}
        for name, root in self._roots.items():
            times = root.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child_times = child.cpu_times()
                    total += child_times.user + child_times.system
            totals[name] = total
        return totals

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> None:
        after = self._now()
        self.used = {name: after[name] - self._before[name] for name in after}


def _postmaster(admin_dsn: str) -> psutil.Process:
    """The benchmark's own PostgreSQL: the postmaster serving on its socket directory."""
    socket_dir = parse_qs(urlparse(admin_dsn).query).get("host", [""])[0]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if socket_dir and socket_dir in cmdline and "-D" in cmdline:
            return process
    raise RuntimeError(f"no postmaster found for {socket_dir}")


class _OwnCpu:
    """This process's own CPU seconds (its threads; not its children) over a window."""

    used = 0.0

    def start(self) -> None:
        self._before = sum(psutil.Process().cpu_times()[:2])

    def stop(self) -> None:
        self.used = sum(psutil.Process().cpu_times()[:2]) - self._before


class _Both:
    def __init__(self, *meters):
        self._meters = meters

    def start(self) -> None:
        for meter in self._meters:
            meter.start()

    def stop(self) -> None:
        for meter in self._meters:
            meter.stop()


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    dsn = await fresh_database(admin_dsn)
    await migrate(dsn)
    processes, ports = await start_services(dsn, "runs")
    target = f"127.0.0.1:{ports['runs']}"
    rows: list[Row] = []
    notes: list[str] = []
    load = []
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        peers = []
        for name, overrides, label in PEERS:
            try:
                peers.append((importlib.import_module(name), overrides, label))
            except ImportError as exc:
                notes.append(f"{name} skipped: {exc}")

        def peer_once(peer, overrides, workers: int, cpu: _Cpu | None = None):
            async def once() -> float:
                for attribute, value in overrides.items():
                    setattr(peer, attribute, value)
                peer_dsn = await fresh_database(admin_dsn)
                await peer.prepare(peer_dsn, JOBS)
                if cpu is not None:
                    cpu.start()
                elapsed = await peer.drain(peer_dsn, workers, JOBS)
                if cpu is not None:
                    cpu.stop()
                return JOBS / elapsed

            return once

        for workers in WORKERS:
            load.append(psutil.getloadavg()[0])
            ours = await repeat(repetitions, lambda: _rate(_library_drain(target, pool, workers)))
            for peer, overrides, label in peers:
                theirs = await repeat(repetitions, peer_once(peer, overrides, workers))
                name = peer.NAME + label
                is_goal = name.startswith("pgqueuer") and "batch_size" not in name and workers > 1
                rows.append(
                    Row(
                        f"runs through the worker library, {workers} worker{'s' if workers > 1 else ''}",
                        "runs/s",
                        ours,
                        name,
                        theirs,
                        goal="≥ 1.5× pgqueuer" if is_goal else "",
                    )
                )

        # Latency, idle workers.
        ours_latency = await _library_latency(target, pool)
        peer_latency = await _pgqueuer_latency(await fresh_database(admin_dsn)) if peers else []
        for p in (50, 99):
            rows.append(
                Row(
                    f"enqueue → handler start, {IDLE_WORKERS} idle workers, p{p}",
                    "ms",
                    Measurement([percentile(ours_latency, p) * 1000]),
                    f"{peers[0][0].NAME}" if peers else "(no peer)",
                    Measurement([percentile(peer_latency, p) * 1000]) if peer_latency else None,
                    higher_is_better=False,
                )
            )

        # CPU per run, 4 workers.
        postmaster = _postmaster(admin_dsn)
        # (The benchmark process's own group would hold the services it started: count it alone.)
        runs_process = psutil.Process(processes[-1].pid)
        cpu = _Cpu({"runs service": runs_process, "PostgreSQL": postmaster})
        own = _OwnCpu()
        await _library_drain(target, pool, 4, _Both(cpu, own))
        ours_cpu = {**cpu.used, "worker process": own.used}
        if peers:
            peer, overrides, _ = peers[0]
            peer_cpu = _Cpu({"PostgreSQL": postmaster})
            peer_own = _OwnCpu()
            await peer_once(peer, overrides, 4, _Both(peer_cpu, peer_own))()
            peer_cpu.used["worker process"] = peer_own.used
            for name in ("worker process", "PostgreSQL", "total"):
                mine = sum(ours_cpu.values()) if name == "total" else ours_cpu[name]
                theirs = sum(peer_cpu.used.values()) if name == "total" else peer_cpu.used[name]
                rows.append(
                    Row(f"CPU per run, 4 workers: {name}", "µs", Measurement([mine / JOBS * 1e6]), peer.NAME, Measurement([theirs / JOBS * 1e6]), higher_is_better=False)
                )
        rows.append(Row("CPU per run, 4 workers: runs service", "µs", Measurement([ours_cpu["runs service"] / JOBS * 1e6]), "(pgqueuer has none)", None, higher_is_better=False))
        await pool.close()
    finally:
        for process in processes:
            process.terminate()
            await process.wait()
    notes.append(
        f"Worker library: {JOBS} runs per repetition; N `Worker`s (the library, concurrency {CONCURRENCY} each, a no-op "
        "handler) in the benchmark process, each with one WorkSession to a `switchboard serve runs` process; the time "
        "runs until every completion is acknowledged (committed) and every worker has returned. pgqueuer: N QueueManagers "
        "(dequeue batch 10, completions buffered and flushed every 10 jobs or 0.1 s: acknowledged before they are durable), "
        "or batch_size=1; procrastinate: one worker with concurrency N. All on the same embedded PostgreSQL. "
        f"Latency: {LATENCY_SAMPLES} runs enqueued one at a time (EnqueueRun over gRPC; pgqueuer's Queries.enqueue) to "
        f"{IDLE_WORKERS} idle workers, from the enqueue call to the handler's start. CPU: user+system seconds of each "
        "process over a 4-worker drain, per run. Load average (1 min) when each worker count started: "
        + ", ".join(f"{w}: {l:.1f}" for w, l in zip(WORKERS, load))
        + "."
    )
    return rows, notes


async def _rate(drain) -> float:
    return JOBS / await drain

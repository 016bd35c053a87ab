"""pgqueuer as a benchmark peer: W QueueManagers, each on its own asyncpg connection.

This is the shape of pgqueuer's own drain benchmark (``tools/benchmark.py --strategy drain``):
one ``QueueManager`` per "dequeue task", each over an ``AsyncpgDriver`` wrapping one connection,
``run(batch_size=10)``. A manager runs the jobs it dequeues as asyncio tasks, so one manager is
already concurrent; W managers give W independent dequeue loops (and W connections), which is
the closest match to W workers that each claim, heartbeat and finish runs.

Per job pgqueuer does: a batched dequeue (``FOR UPDATE SKIP LOCKED``, up to ``BATCH_SIZE`` jobs
per round trip, stamping status/heartbeat), the handler, and a batched completion
(``JobStatusLogBuffer``: DELETE from the queue + INSERT into the log, flushed every
``BATCH_SIZE`` jobs or 0.1 s). Its own per-job heartbeat is a timer at ``heartbeat_timeout / 2``
(15 s by default), so an instant job never sends one; to match a worker that heartbeats each
job once, the handler calls the library's ``Queries.update_heartbeat`` for its job (one
UPDATE round trip on the manager's connection) when ``HEARTBEAT_EACH_JOB`` is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from importlib.metadata import version

import asyncpg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

NAME = f"pgqueuer {version('pgqueuer')}"

ENTRYPOINT = "bench_noop"
# pgqueuer's default for QueueManager.run and for its own benchmark.
BATCH_SIZE = 10
# Send one explicit heartbeat per job (see the module docstring).
HEARTBEAT_EACH_JOB = True
# Jobs per INSERT when enqueueing (one multi-row INSERT per chunk).
ENQUEUE_CHUNK = 10_000

logging.getLogger("pgqueuer").setLevel(logging.WARNING)


def _payload(seq: int) -> bytes:
    return json.dumps({"seq": seq, "tenant": "bench", "kind": "noop"}).encode()


async def prepare(dsn: str, jobs: int) -> None:
    """Install pgqueuer's schema, enqueue ``jobs`` jobs with batch enqueues, and ANALYZE."""
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        for start in range(0, jobs, ENQUEUE_CHUNK):
            count = min(ENQUEUE_CHUNK, jobs - start)
            await queries.enqueue(
                [ENTRYPOINT] * count,
                [_payload(start + i) for i in range(count)],
                [0] * count,
            )
        # Planner statistics, as a live database has them (autovacuum analyzes after a bulk load).
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def drain(dsn: str, workers: int, jobs: int) -> float:
    """Run ``workers`` QueueManagers until ``jobs`` jobs are done; return elapsed seconds."""
    conns = [await asyncpg.connect(dsn) for _ in range(workers)]
    try:
        managers = [QueueManager(Queries(AsyncpgDriver(conn))) for conn in conns]
        done = 0
        all_done = asyncio.Event()

        for qm in managers:
            queries = qm.queries

            # Default arguments bind this manager's queries (closures would see the last one).
            @qm.entrypoint(ENTRYPOINT)
            async def handler(job: Job, queries: Queries = queries) -> None:
                nonlocal done
                if HEARTBEAT_EACH_JOB:
                    await queries.update_heartbeat([job.id])
                done += 1
                if done >= jobs:
                    all_done.set()

        async def stop_when_done() -> None:
            await all_done.wait()
            for qm in managers:
                qm.shutdown.set()

        started = time.perf_counter()
        stopper = asyncio.create_task(stop_when_done())
        try:
            # run() returns after its completion buffer's final flush, so every job is logged.
            await asyncio.gather(*(qm.run(batch_size=BATCH_SIZE) for qm in managers))
        finally:
            stopper.cancel()
            for qm in managers:
                qm.shutdown.set()
        elapsed = time.perf_counter() - started
        settings = managers[0].queries.qbe.settings
        logged = await conns[0].fetchval(
            f"SELECT count(*) FROM {settings.queue_table_log} WHERE status = 'successful'"
        )
        left = await conns[0].fetchval(f"SELECT count(*) FROM {settings.queue_table}")
        if done != jobs or logged != jobs or left != 0:
            raise RuntimeError(
                f"pgqueuer ran {done}, logged {logged} of {jobs} jobs; {left} left in the queue"
            )
        return elapsed
    finally:
        for conn in conns:
            await conn.close()

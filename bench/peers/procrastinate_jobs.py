"""procrastinate as a benchmark peer: one worker with ``concurrency=W`` on a PsycopgConnector.

This is procrastinate's documented way to run W jobs at once in one process
(``app.run_worker_async(concurrency=W)``, "sub-workers"); ``wait=False`` makes the worker stop
once the queue is empty and its running jobs are finished. The worker fetches jobs one at a time
(``procrastinate_fetch_job``, one round trip each, serialised inside the worker) and each
sub-worker finishes its own job (``procrastinate_finish_job``, one round trip); each query also
costs the pool's liveness check and a COMMIT, which procrastinate's connector always does. The
connector's psycopg pool is sized so that the W sub-workers, the fetch loop and the LISTEN
connection never wait for a connection (the pool's default of 4 measured the same here, though).

procrastinate has no per-job heartbeat: a worker row carries one heartbeat, updated every 10 s by
a side task, so nothing is sent per job. Finished jobs are kept with status ``succeeded``
(the default ``delete_jobs="never"``).
"""

from __future__ import annotations

import logging
import time
from importlib.metadata import version

from procrastinate import App, PsycopgConnector

NAME = f"procrastinate {version('procrastinate')}"

# Jobs per batch_defer call (one INSERT per call).
DEFER_CHUNK = 10_000
# Pool connections beyond one per sub-worker: the fetch loop and the LISTEN connection.
EXTRA_POOL_CONNECTIONS = 2

logging.getLogger("procrastinate").setLevel(logging.WARNING)


def _app(dsn: str, pool_size: int) -> App:
    # libpq reads the URI form with an empty host and ``?host=/socket/dir`` as it is.
    app = App(connector=PsycopgConnector(conninfo=dsn, min_size=pool_size, max_size=pool_size))

    @app.task(name="bench_noop")
    async def bench_noop(**payload: object) -> None:
        return None

    return app


async def prepare(dsn: str, jobs: int) -> None:
    """Apply procrastinate's schema, defer ``jobs`` jobs with ``batch_defer_async``, ANALYZE."""
    app = _app(dsn, pool_size=1)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        task = app.tasks["bench_noop"]
        for start in range(0, jobs, DEFER_CHUNK):
            count = min(DEFER_CHUNK, jobs - start)
            await task.batch_defer_async(
                *({"seq": start + i, "tenant": "bench", "kind": "noop"} for i in range(count))
            )
        # Planner statistics, as a live database has them (autovacuum analyzes after a bulk load).
        # Without them procrastinate_fetch_job_v2 costs ~9x more server time per call here
        # (1.7 ms against 0.19 ms), which halves the drain rate.
        await app.connector.execute_query_async("ANALYZE")


async def drain(dsn: str, workers: int, jobs: int) -> float:
    """Run one worker with ``concurrency=workers`` until the queue is empty; return seconds."""
    app = _app(dsn, pool_size=workers + EXTRA_POOL_CONNECTIONS)
    async with app.open_async():
        started = time.perf_counter()
        await app.run_worker_async(
            concurrency=workers, wait=False, install_signal_handlers=False
        )
        elapsed = time.perf_counter() - started
        finished = await app.connector.execute_query_one_async(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
    if finished["n"] != jobs:
        raise RuntimeError(f"procrastinate finished {finished['n']} of {jobs} jobs")
    return elapsed

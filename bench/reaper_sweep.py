"""Reaper: the time to reap 10 k stale runs among 1 M, with the partial index and without it."""

from __future__ import annotations

import time

import asyncpg

from bench.common import Measurement, Row, fresh_database
from switchboard.services.runs.reaper import Reaper
from switchboard.shared.migrate import migrate

TOTAL = 1_000_000
STALE = 10_000
BATCH = 1000


async def _seed_stale(pool: asyncpg.Pool) -> None:
    await pool.execute(
        f"""INSERT INTO runs.runs (id, organization_id, lane, subject_id, status, attempt, claimed_by, claimed_at,
                                   last_heartbeat_at)
            SELECT gen_random_uuid(), gen_random_uuid(), CASE WHEN g % 2 = 0 THEN 'sync' ELSE 'action' END,
                   'subject-' || g, 'running', 1, 'dead', now() - interval '1 hour', now() - interval '1 hour'
            FROM generate_series(1, {STALE}) g"""
    )


async def _sweep_all(pool: asyncpg.Pool) -> float:
    """Seconds to reap every stale run, one bounded sweep after another."""
    reaper = Reaper(pool, interval_seconds=30, stale_after_seconds=120, batch_size=BATCH)
    started = time.perf_counter()
    reaped = 0
    while reaped < STALE:
        sweep = await reaper.run_once()
        reaped += sweep.reaped
        if sweep.reaped == 0:
            raise RuntimeError(f"the reaper stopped at {reaped} of {STALE}")
    return time.perf_counter() - started


async def _measure(pool: asyncpg.Pool, repetitions: int) -> Measurement:
    samples = []
    for _ in range(repetitions + 1):  # the first is a warm-up
        await pool.execute("DELETE FROM runs.runs WHERE status IN ('running', 'timeout') OR lane = 'sync' AND status = 'pending'")
        await _seed_stale(pool)
        await pool.execute("ANALYZE runs.runs")
        samples.append(await _sweep_all(pool))
    return Measurement(samples[1:])


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    dsn = await fresh_database(admin_dsn)
    await migrate(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"search_path": "runs"})
    try:
        await pool.execute(
            f"""INSERT INTO runs.runs (id, organization_id, lane, subject_id, status, finished_at, created_at)
                SELECT gen_random_uuid(), gen_random_uuid(), 'action', 's' || g, 'completed', now(), now()
                FROM generate_series(1, {TOTAL - STALE}) g"""
        )
        with_index = await _measure(pool, repetitions)
        await pool.execute("DROP INDEX runs.runs_reapable")
        without_index = await _measure(pool, repetitions)
    finally:
        await pool.close()
    row = Row(
        "reaper: reap 10 k stale runs among 1 M",
        "s",
        with_index,
        "same sweep without the partial index",
        without_index,
        higher_is_better=False,
        goal="< 1 s",
    )
    note = (
        f"Reaper: {TOTAL:,} runs of which {STALE:,} running with a stale heartbeat (half of them sync, each "
        f"retried), reaped in sweeps of {BATCH}; the time covers every sweep until none is left."
    )
    return [row], [note]

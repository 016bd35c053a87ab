"""The reaper: one maintenance loop that times out runs whose worker stopped heartbeating.

Every interval, each replica tries the reaper's advisory lock; the one that gets it sweeps a
bounded batch and the others skip. The sweep is one statement (see store.run_reap_stale), so a run
is reaped at most once and its retry created at most once, whoever runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from switchboard.services.runs import store
from switchboard.services.runs.domain import (
    RETRY_BACKOFF_BASE_SECONDS,
    RETRY_BACKOFF_MAX_SECONDS,
    WATCHER_SILENT_SECONDS,
    WATCHER_UNSTARTED_SECONDS,
)
from switchboard.services.runs.metrics import RunMetrics
from switchboard.shared.logs import get_logger
from switchboard.shared.lifecycle import BatchLoop

log = get_logger(__name__)


@dataclass(frozen=True)
class Sweep:
    acquired: bool
    reaped: int = 0
    retries_created: int = 0


class Reaper(BatchLoop):
    name = "runs-reaper"
    # run_once logs what it reaped, with the retries it created.
    done_event, failed_event, logger = None, "reaper_sweep_failed", log

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval_seconds: float,
        stale_after_seconds: float,
        batch_size: int,
        metrics: RunMetrics | None = None,
    ):
        self._pool = pool
        self._interval = interval_seconds
        self._stale_after = stale_after_seconds
        self._batch = batch_size
        self._metrics = metrics

    async def run_once(self) -> Sweep:
        """One sweep if this replica gets the lock; Sweep(acquired=False) otherwise."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store.try_reaper_lock(conn):
                sweep = Sweep(acquired=False)
            else:
                reaped, retries = await store.run_reap_stale(
                    conn,
                    stale_after_seconds=self._stale_after,
                    watcher_unstarted_seconds=WATCHER_UNSTARTED_SECONDS,
                    watcher_silent_seconds=WATCHER_SILENT_SECONDS,
                    limit=self._batch,
                    backoff_base_seconds=RETRY_BACKOFF_BASE_SECONDS,
                    backoff_max_seconds=RETRY_BACKOFF_MAX_SECONDS,
                )
                sweep = Sweep(acquired=True, reaped=reaped, retries_created=retries)
        if self._metrics is not None:
            self._metrics.sweeps.labels(str(sweep.acquired).lower()).inc()
            if sweep.reaped:
                self._metrics.reaped.inc(sweep.reaped)
        if sweep.reaped:
            log.info("runs_reaped", reaped=sweep.reaped, retries_created=sweep.retries_created)
        return sweep

    async def _refresh_active_gauge(self) -> None:
        if self._metrics is None:
            return
        self._metrics.active.clear()
        for row in await store.run_count_active(self._pool):
            self._metrics.active.labels(row["lane"], row["status"]).set(row["n"])

    async def _run_batch(self) -> int | None:
        sweep = await self.run_once()
        if not sweep.acquired:
            return None
        await self._refresh_active_gauge()
        return sweep.reaped

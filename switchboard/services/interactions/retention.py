"""Retention of event streams: one maintenance loop that trims, on one replica at a time, the
events beyond each stream's last N and older than T, in bounded batches."""

from __future__ import annotations

import asyncpg

from switchboard.services.interactions import store
from switchboard.shared.logs import get_logger
from switchboard.shared.lifecycle import BatchLoop

log = get_logger(__name__)


class Retention(BatchLoop):
    name = "events-retention"
    done_event, failed_event, logger = "events_trimmed", "events_trim_failed", log

    def __init__(self, pool: asyncpg.Pool, *, keep_last: int, max_age_seconds: float, interval_seconds: float = 60.0, batch: int = 5000):
        self._pool = pool
        self._keep_last = keep_last
        self._max_age = max_age_seconds
        self._interval = interval_seconds
        self._batch = batch

    async def run_once(self) -> int | None:
        """Trim one batch if this replica holds the lock; how many events went (None: skipped)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store.retention_try_lock(conn):
                return None
            return await store.events_trim(conn, self._keep_last, self._max_age, self._batch)

    async def _run_batch(self) -> int | None:
        return await self.run_once()

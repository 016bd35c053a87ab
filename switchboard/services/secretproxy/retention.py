"""Retention of the proxy's own records: audit records older than the configured time, and
expired failed-lookup windows; on one replica at a time, in bounded batches."""

from __future__ import annotations

import asyncpg

from switchboard.services.secretproxy import store
from switchboard.shared.logs import get_logger
from switchboard.shared.lifecycle import BatchLoop

log = get_logger(__name__)


class Retention(BatchLoop):
    name = "secretproxy-retention"
    done_event, failed_event, logger = "audit_records_trimmed", "audit_trim_failed", log

    def __init__(
        self, pool: asyncpg.Pool, *, audit_retention_seconds: float, lookup_window_seconds: float,
        interval_seconds: float = 60.0, batch: int = 5000,
    ):
        self._pool = pool
        self._audit_retention = audit_retention_seconds
        self._lookup_window = lookup_window_seconds
        self._interval = interval_seconds
        self._batch = batch

    async def run_once(self) -> int | None:
        """Trim one batch if this replica holds the lock: how many audit records went (None: skipped)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store.try_maintenance_lock(conn):
                return None
            await store.failed_lookups_trim(conn, self._lookup_window)
            return await store.audit_trim(conn, self._audit_retention, self._batch)

    async def _run_batch(self) -> int | None:
        return await self.run_once()

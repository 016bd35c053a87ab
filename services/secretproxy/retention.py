"""Retention of the proxy's own records: audit records older than the configured time, and
expired failed-lookup windows; on one replica at a time, in bounded batches."""

from __future__ import annotations

import asyncio

import asyncpg

from services.secretproxy import store
from shared.logs import get_logger
from shared.maintenance import BackgroundLoop

log = get_logger(__name__)


class Retention(BackgroundLoop):
    loop_name = "secretproxy-retention"

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

    async def _loop(self) -> None:
        while True:
            try:
                trimmed = await self.run_once()
                if trimmed:
                    log.info("audit_records_trimmed", count=trimmed)
                if trimmed and trimmed >= self._batch:
                    continue  # more is waiting
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch's failure
                log.warning("audit_trim_failed", error=type(exc).__name__)
            await asyncio.sleep(self._interval)

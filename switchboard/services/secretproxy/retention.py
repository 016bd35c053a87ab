"""Retention of the proxy's own records: audit records older than the configured time, and
expired failed-lookup windows; on one replica at a time, in bounded batches."""

from __future__ import annotations

import asyncpg

from switchboard.services.secretproxy import store
from switchboard.shared.lifecycle import ExclusiveBatchLoop
from switchboard.shared.logs import get_logger

log = get_logger(__name__)


class Retention(ExclusiveBatchLoop):
    name = "secretproxy-retention"
    done_event, failed_event, logger = "audit_records_trimmed", "audit_trim_failed", log

    def __init__(
        self, pool: asyncpg.Pool, *, audit_retention_seconds: float, lookup_window_seconds: float,
        interval_seconds: float = 60.0, batch: int = 5000,
    ):
        super().__init__(pool, store.try_maintenance_lock, interval_seconds=interval_seconds, batch=batch)
        self._audit_retention = audit_retention_seconds
        self._lookup_window = lookup_window_seconds

    async def _batch_in(self, conn: asyncpg.Connection) -> int:
        """How many audit records went (expired failed-lookup windows go too, uncounted)."""
        await store.failed_lookups_trim(conn, self._lookup_window)
        return await store.audit_trim(conn, self._audit_retention, self._batch)

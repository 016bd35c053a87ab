"""Retention of event streams: one maintenance loop that trims, on one replica at a time, the
events beyond each stream's last N and older than T, in bounded batches."""

from __future__ import annotations

import asyncpg

from switchboard.services.interactions import store
from switchboard.shared.lifecycle import ExclusiveBatchLoop
from switchboard.shared.logs import get_logger

log = get_logger(__name__)


class Retention(ExclusiveBatchLoop):
    name = "events-retention"
    done_event, failed_event, logger = "events_trimmed", "events_trim_failed", log

    def __init__(self, pool: asyncpg.Pool, *, keep_last: int, max_age_seconds: float, interval_seconds: float = 60.0, batch: int = 5000):
        super().__init__(pool, store.try_retention_lock, interval_seconds=interval_seconds, batch=batch)
        self._keep_last = keep_last
        self._max_age = max_age_seconds

    async def _batch_in(self, conn: asyncpg.Connection) -> int:
        """How many events went."""
        return await store.events_trim(conn, self._keep_last, self._max_age, self._batch)

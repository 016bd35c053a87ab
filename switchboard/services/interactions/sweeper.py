"""The sweep of stale pending questions: one maintenance loop, one replica at a time."""

from __future__ import annotations

import asyncpg

from switchboard.services.interactions import store
from switchboard.shared.logs import get_logger
from switchboard.shared.lifecycle import BatchLoop

log = get_logger(__name__)


class QuestionSweeper(BatchLoop):
    name = "question-sweeper"
    done_event, failed_event, logger = "pending_questions_swept", "pending_questions_sweep_failed", log

    def __init__(self, pool: asyncpg.Pool, *, max_age_seconds: float = 24 * 3600.0, limit: int = 1000, interval_seconds: float = 300.0):
        self._pool = pool
        self._max_age = max_age_seconds
        self._batch = limit
        self._interval = interval_seconds

    async def run_once(self) -> list[str] | None:
        """One bounded sweep if this replica holds the lock; the deleted ids (None: skipped)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store.sweep_try_lock(conn):
                return None
            return await store.questions_sweep(conn, self._max_age, self._batch)

    async def _run_batch(self) -> int | None:
        deleted = await self.run_once()
        return None if deleted is None else len(deleted)

"""The sweep of stale pending questions: one maintenance loop, one replica at a time."""

from __future__ import annotations

import asyncio

import asyncpg

from services.interactions import store
from shared.logs import get_logger
from shared.maintenance import BackgroundLoop

log = get_logger(__name__)


class QuestionSweeper(BackgroundLoop):
    loop_name = "question-sweeper"

    def __init__(self, pool: asyncpg.Pool, *, max_age_seconds: float = 24 * 3600.0, limit: int = 1000, interval_seconds: float = 300.0):
        self._pool = pool
        self._max_age = max_age_seconds
        self._limit = limit
        self._interval = interval_seconds

    async def run_once(self) -> list[str] | None:
        """One bounded sweep if this replica holds the lock; the deleted ids (None: skipped)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store.sweep_try_lock(conn):
                return None
            return await store.questions_sweep(conn, self._max_age, self._limit)

    async def _loop(self) -> None:
        while True:
            try:
                deleted = await self.run_once()
                if deleted:
                    log.info("pending_questions_swept", count=len(deleted))
                if deleted and len(deleted) >= self._limit:
                    continue  # more is waiting
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one sweep's failure
                log.warning("pending_questions_sweep_failed", error=type(exc).__name__)
            await asyncio.sleep(self._interval)

"""The sweep of stale pending questions: one maintenance loop, one replica at a time."""

from __future__ import annotations

import asyncpg

from switchboard.services.interactions import store
from switchboard.shared.lifecycle import ExclusiveBatchLoop
from switchboard.shared.logs import get_logger

log = get_logger(__name__)


class QuestionSweeper(ExclusiveBatchLoop):
    name = "question-sweeper"
    done_event, failed_event, logger = "pending_questions_swept", "pending_questions_sweep_failed", log

    def __init__(self, pool: asyncpg.Pool, *, max_age_seconds: float = 24 * 3600.0, limit: int = 1000, interval_seconds: float = 300.0):
        super().__init__(pool, store.try_sweep_lock, interval_seconds=interval_seconds, batch=limit)
        self._max_age = max_age_seconds

    async def _batch_in(self, conn: asyncpg.Connection) -> list[str]:
        """The ids of the questions deleted."""
        return await store.questions_sweep(conn, self._max_age, self._batch)

    def _count(self, done: list[str]) -> int:
        return len(done)

"""Editing answered cards in the background: retried with backoff, bounded, never in the way of
the answer (which is committed before any edit is tried)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from switchboard.shared.lifecycle import Component
from switchboard.shared.logs import get_logger

log = get_logger(__name__)
ATTEMPTS = 5
FIRST_PAUSE_SECONDS = 0.5
MAX_PENDING = 1000


class CardEdits(Component):
    """Runs card edits as background tasks; a failed edit is retried, then given up (logged)."""

    name = "card-edits"

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def submit(self, edit: Callable[[], Awaitable[None]], *, question_id: str) -> None:
        if len(self._tasks) >= MAX_PENDING:
            log.warning("card_edit_dropped", question_id=question_id, reason="too many edits pending")
            return
        task = asyncio.create_task(self._run(edit, question_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, edit: Callable[[], Awaitable[None]], question_id: str) -> None:
        pause = FIRST_PAUSE_SECONDS
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await edit()
                return
            except Exception as exc:  # noqa: BLE001 - any failure is retried, then logged
                log.warning("card_edit_failed", question_id=question_id, attempt=attempt, error=str(exc)[:200])
            await asyncio.sleep(pause)
            pause *= 2
        log.error("card_edit_given_up", question_id=question_id)

    async def stop(self, timeout: float = 5.0) -> None:
        """Give pending edits a moment to finish, then cancel the rest (at shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in set(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

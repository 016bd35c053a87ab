"""One start/stop protocol for everything a service runs beside its servicers (the reaper,
retention, sweeps, the stream hub, the audit writer, revocation refresh, the database probe),
driven in one order by switchboard/shared/service.py: ``start`` once the server is bound and the
process may serve; ``drain`` when stopping begins, before the server waits for calls in flight;
``stop`` after the server stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    import asyncpg


class Component:
    """A background part of a service. ``start`` schedules its work and returns at once;
    ``drain`` ends long-lived work early (streams held open by clients) without waiting, so that
    it does not hold up the server's stop for the whole grace period; ``stop`` waits for its end.
    The defaults do nothing."""

    name = "component"

    def start(self) -> None:
        return None

    def drain(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def cancel_and_wait(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel ``tasks`` and wait for each to end (a component's stop)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class BackgroundLoop(Component):
    """A component that is one task: subclasses implement ``_loop``; ``start`` runs it as a task
    named after the component, ``stop`` cancels it and waits for its end, then calls
    ``_after_stop`` (to flush or close what the loop held)."""

    name = "maintenance"
    _task: asyncio.Task | None = None

    async def _loop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        await self._after_stop()

    async def _after_stop(self) -> None:
        return None


class BatchLoop(BackgroundLoop):
    """A maintenance loop of bounded batches (reaper, retention, sweeps): one batch every
    ``_interval`` seconds, the next at once when a batch was full (more is waiting). A failed batch
    is logged and the loop goes on. Subclasses set ``_interval`` and ``_batch``, the two event
    names (``done_event`` None: the batch logs itself) and their ``logger``, and implement
    ``_run_batch``."""

    _interval: float
    _batch: int
    done_event: str | None = "batch_done"
    failed_event = "batch_failed"
    logger: structlog.stdlib.BoundLogger

    async def _run_batch(self) -> int | None:
        """Do one batch; how many items it handled (None: another replica holds the lock)."""
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            try:
                count = await self._run_batch()
                if count and self.done_event:
                    self.logger.info(self.done_event, count=count)
                if count and count >= self._batch:
                    continue  # more is waiting
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch's failure
                self.logger.warning(self.failed_event, error=type(exc).__name__, detail=str(exc)[:200])
            await asyncio.sleep(self._interval)


class ExclusiveBatchLoop(BatchLoop):
    """A BatchLoop whose every batch runs in one transaction on one replica at a time: the replica
    whose ``try_lock`` (the store's transaction-scoped advisory lock) succeeds does the batch, the
    others skip the round. Subclasses implement ``_batch_in`` (and ``_count`` when the batch
    returns more than a count)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        try_lock: Callable[[asyncpg.Connection], Awaitable[bool]],
        *,
        interval_seconds: float,
        batch: int,
    ):
        self._pool = pool
        self._try_lock = try_lock
        self._interval = interval_seconds
        self._batch = batch

    async def _batch_in(self, conn: asyncpg.Connection) -> Any:
        """One batch, inside the locked transaction."""
        raise NotImplementedError

    def _count(self, done: Any) -> int:
        return int(done)

    async def run_once(self) -> Any:
        """One batch if this replica gets the lock: what the batch returned (None: skipped)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await self._try_lock(conn):
                return None
            return await self._batch_in(conn)

    async def _run_batch(self) -> int | None:
        done = await self.run_once()
        return None if done is None else self._count(done)

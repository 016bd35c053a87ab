"""The lifecycle every maintenance loop shares (reaper, retention, sweeps, revocation refresh):
started once the server serves, cancelled when the process stops."""

from __future__ import annotations

import asyncio
import contextlib

import structlog


class BackgroundLoop:
    """Subclasses implement ``_loop``; ``start`` runs it as a named task, ``stop`` cancels it."""

    loop_name = "maintenance"
    _task: asyncio.Task | None = None

    async def _loop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.loop_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class BatchLoop(BackgroundLoop):
    """A maintenance loop of bounded batches (retention, sweeps): one batch every ``_interval``
    seconds, the next at once when a batch was full (more is waiting). A failed batch is logged
    and the loop goes on. Subclasses set ``_interval`` and ``_batch``, the two event names and
    their ``logger``, and implement ``_run_batch``."""

    _interval: float
    _batch: int
    done_event = "batch_done"
    failed_event = "batch_failed"
    logger: structlog.stdlib.BoundLogger

    async def _run_batch(self) -> int | None:
        """Do one batch; how many items it handled (None: another replica holds the lock)."""
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            try:
                count = await self._run_batch()
                if count:
                    self.logger.info(self.done_event, count=count)
                if count and count >= self._batch:
                    continue  # more is waiting
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch's failure
                self.logger.warning(self.failed_event, error=type(exc).__name__)
            await asyncio.sleep(self._interval)

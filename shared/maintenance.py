"""The lifecycle every maintenance loop shares (reaper, retention, sweeps, revocation refresh):
started once the server serves, cancelled when the process stops."""

from __future__ import annotations

import asyncio
import contextlib


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

"""Claims of every worker session of this replica, coalesced.

A session whose capacity frees asks for runs; a claimer takes every request waiting and, for each
group of requests that see the same runs (same lanes and scope), claims them all in ONE statement
(store.run_claim_slots): one slot per run asked, dealt round-robin between the requests so that a
short supply is shared, each run claimed for the worker of its slot. While a claim waits for the
database the next requests gather, so claims grow with the load and add no latency when it is
light. A run claimed for a request whose session went away meanwhile is handed back at once
(through the OutcomeFlusher), not left to the reaper.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from switchboard.services.runs import store
from switchboard.services.runs.outcomes import OutcomeFlusher
from switchboard.shared.lifecycle import cancel_and_wait
from switchboard.shared.logs import get_logger

log = get_logger(__name__)


@dataclass
class _Request:
    worker_id: str
    count: int
    future: asyncio.Future
    rows: list = field(default_factory=list)


class Claimer:
    """One per replica: coalesces the sessions' claims into one statement per group of requests."""

    def __init__(self, pool: asyncpg.Pool, flusher: OutcomeFlusher, *, concurrency: int = 2):
        self._pool = pool
        self._flusher = flusher
        self._concurrency = concurrency
        self._waiting: dict[tuple[tuple[str, ...], store.Scope], list[_Request]] = {}
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.statements = 0
        """Claim statements run so far (for tests and benchmarks)."""

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(), name=f"runs-claims-{i}") for i in range(self._concurrency)]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def claim(self, worker_id: str, lanes: list[str], scope: store.Scope, count: int) -> list[asyncpg.Record]:
        """Up to ``count`` runs claimed for ``worker_id``, in the claim order. Raises what the
        statement raised."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((tuple(lanes), scope), []).append(_Request(worker_id, count, future))
        self._ready.set()
        return await future

    async def _loop(self) -> None:
        while True:
            if not self._waiting:
                self._ready.clear()
                await self._ready.wait()
                continue
            key = next(iter(self._waiting))
            requests = self._waiting.pop(key)
            await self._claim(list(key[0]), key[1], requests)

    async def _claim(self, lanes: list[str], scope: store.Scope, requests: list[_Request]) -> None:
        slots: list[_Request] = []
        for turn in range(max(request.count for request in requests)):
            slots.extend(request for request in requests if request.count > turn)
        try:
            rows = await store.run_claim_slots(self._pool, [request.worker_id for request in slots], lanes, scope)
            self.statements += 1
        except Exception as exc:  # noqa: BLE001 - every request gets the answer
            for request in requests:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        for row in rows:
            slots[row["slot"] - 1].rows.append(row)
        for request in requests:
            if not request.future.done():
                request.future.set_result(request.rows)
            elif request.rows:  # its session went away while the statement ran
                self._hand_back(request, scope)

    def _hand_back(self, request: _Request, scope: store.Scope) -> None:
        for row in request.rows:
            outcome = store.Outcome("release", str(row["id"]), row["attempt"], request.worker_id, scope)
            self._flusher.submit(outcome, _ignore)
        log.info("runs_claim_handed_back", runs=len(request.rows), worker_id=request.worker_id)


def _ignore(outcome: store.Outcome, ack: object) -> None:
    return None


"""Outcomes (complete, fail, release) of every worker session of this replica, coalesced.

Sessions submit outcomes as they arrive; a flusher takes everything waiting (at most one outcome
per run per flush, the rest wait for the next) and applies it in ONE statement
(store.run_finish_many, an ``UPDATE … FROM unnest(…)``), fenced and scoped per outcome as the
unary calls are. Only once that statement has returned, i.e. committed, is each outcome's ``done``
called with its Ack: an acknowledgement never precedes durability. An outcome whose fence did not
hold is looked up: a repeat of an outcome that committed before (same run, attempt and worker,
the run in the state that outcome leaves) is acknowledged again and changes nothing; anything
else is refused with the status the unary call would have answered.

While one flush waits for the database the next batch gathers, and ``concurrency`` flushes may be
in flight at once: batches grow with the load, with no timer adding latency when it is light.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from grpc import StatusCode

from switchboard.services.runs import domain, store
from switchboard.services.runs.metrics import RunMetrics
from switchboard.shared.db import database_unavailable
from switchboard.shared.lifecycle import cancel_and_wait
from switchboard.shared.logs import get_logger

log = get_logger(__name__)

MAX_FLUSH = 1000
"""Outcomes per statement at most: a bound on one statement's size and time."""

# The states each kind of outcome leaves a run in: a run found in one of them, at the outcome's
# attempt and worker, is the outcome's own earlier commit (a repeat).
_LEAVES = {
    "complete": frozenset({"completed"}),
    "fail": frozenset({"failed", "cancelled", "pending"}),
    "release": frozenset({"pending", "cancelled"}),
}


@dataclass(frozen=True)
class Ack:
    """What became of an outcome: code 0 and the run's status once committed; otherwise the
    google.rpc code and message of the refusal."""

    code: int
    message: str = ""
    status: str = ""


Done = Callable[[store.Outcome, Ack], None]


def _code(status: StatusCode) -> int:
    return status.value[0]


class OutcomeFlusher:
    """One per replica: coalesces the outcomes of all its sessions into one statement per flush."""

    def __init__(self, pool: asyncpg.Pool, metrics: RunMetrics, *, concurrency: int = 2, max_batch: int = MAX_FLUSH):
        self._pool = pool
        self._metrics = metrics
        self._concurrency = concurrency
        self._max_batch = max_batch
        self._waiting: collections.deque[tuple[store.Outcome, Done]] = collections.deque()
        self._ready = asyncio.Event()
        self._flying: set[str] = set()  # runs with an outcome in a flush not yet done
        self._tasks: list[asyncio.Task] = []
        self.flushes = 0
        """Statements run so far (for tests and benchmarks: how well outcomes coalesce)."""

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(), name=f"runs-outcomes-{i}") for i in range(self._concurrency)]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    def submit(self, outcome: store.Outcome, done: Done) -> None:
        """Queue an outcome; ``done`` is called once with its Ack, after the flush committed."""
        self._waiting.append((outcome, done))
        self._ready.set()

    async def _loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                self._ready.clear()
                await self._ready.wait()
                continue
            try:
                await self._flush(batch)
            finally:
                self._flying.difference_update(outcome.run_id for outcome, _ in batch)
                if self._waiting:
                    self._ready.set()  # outcomes held back for these runs may go now

    def _take(self) -> list[tuple[store.Outcome, Done]]:
        """The next batch: up to max_batch outcomes, at most one per run and none for a run whose
        outcome is in a flush still in flight, so that a run's outcomes apply in the order they
        came (two for one run in one UPDATE … FROM would apply just one, unpredictably)."""
        batch: list[tuple[store.Outcome, Done]] = []
        later: list[tuple[store.Outcome, Done]] = []
        while self._waiting and len(batch) < self._max_batch:
            item = self._waiting.popleft()
            if item[0].run_id in self._flying:
                later.append(item)
            else:
                self._flying.add(item[0].run_id)
                batch.append(item)
        self._waiting.extendleft(reversed(later))
        return batch

    async def _flush(self, batch: list[tuple[store.Outcome, Done]]) -> None:
        outcomes = [outcome for outcome, _ in batch]
        try:
            rows = await store.run_finish_many(
                self._pool, outcomes, domain.RETRY_BACKOFF_BASE_SECONDS, domain.RETRY_BACKOFF_MAX_SECONDS
            )
            self.flushes += 1
            self._metrics.outcome_flushes.inc()
            changed = {(str(row["id"]), row["attempt"]): row for row in rows}
            unchanged = [o for o in outcomes if (o.run_id, o.attempt) not in changed]
            current = {}
            if unchanged:
                found = await store.run_get_many(self._pool, [o.run_id for o in unchanged], [o.scope for o in unchanged])
                current = {str(row["id"]): row for row in found}
        except Exception as exc:  # noqa: BLE001 - every waiting outcome gets an answer, whatever failed
            self._refuse_all(batch, exc)
            return
        kinds = collections.Counter(outcome.kind for outcome in outcomes)
        for kind, count in kinds.items():
            self._metrics.outcomes.labels(kind).inc(count)
        for (lane, status), count in collections.Counter((row["lane"], row["status"]) for row in rows).items():
            self._metrics.entered(lane, status, count)
        for outcome, done in batch:
            row = changed.get((outcome.run_id, outcome.attempt))
            if row is not None:
                ack = Ack(0, status=row["status"])
            else:
                ack = _unchanged(outcome, current.get(outcome.run_id))
            try:
                done(outcome, ack)
            except Exception:  # noqa: BLE001 - one session's trouble must not cost the others their acks
                log.exception("runs_outcome_callback_failed")

    def _refuse_all(self, batch: list[tuple[store.Outcome, Done]], exc: Exception) -> None:
        """Nothing is known to have committed: every outcome is answered UNAVAILABLE (the worker
        sends it again; a repeat of what did commit is acknowledged then)."""
        unreachable = database_unavailable(exc)
        if unreachable is None:
            log.error("runs_outcome_flush_failed", exc_info=exc)
        else:
            log.warning("runs_outcome_flush_database_unavailable", error=type(exc).__name__)
        ack = Ack(_code(StatusCode.UNAVAILABLE), "the outcome could not be recorded right now; send it again")
        for outcome, done in batch:
            with contextlib.suppress(Exception):
                done(outcome, ack)


def _unchanged(outcome: store.Outcome, row: asyncpg.Record | None) -> Ack:
    """The Ack of an outcome whose fence did not hold: a repeat, or the unary call's refusal."""
    if row is None:
        return Ack(_code(StatusCode.NOT_FOUND), f"run {outcome.run_id} does not exist")
    if row["attempt"] == outcome.attempt and row["claimed_by"] == outcome.worker_id and row["status"] in _LEAVES[outcome.kind]:
        return Ack(0, status=row["status"])
    refusal = domain.claim_not_current(outcome.run_id, row, outcome.worker_id, outcome.attempt)
    return Ack(_code(refusal.code), refusal.message)

"""The audit trail: one record per Forward decision, written in batches off the request path.

Requests append a record and go on; a background task writes what accumulated with one COPY per
batch (every ``flush_interval`` or as soon as ``batch_size`` records wait), so auditing costs a
request no database round trip. Stopping the service flushes what is left. A record holds ids,
names, numbers and reasons only: never a secret value, a placeholder, a header or a query string.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from switchboard.services.secretproxy import store
from switchboard.shared.lifecycle import BackgroundLoop
from switchboard.shared.logs import get_logger

log = get_logger(__name__)


@dataclass
class AuditRecord:
    organization_id: str | None
    agent_id: str | None
    upstream: str
    method: str
    path: str
    decision: str = "denied"  # "allowed" once the upstream was called
    reason: str = ""
    status_code: int | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    duration_ms: float = 0.0
    secret_ids: Sequence[uuid.UUID] = field(default_factory=tuple)
    credential_id: uuid.UUID | None = None
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> tuple:
        clean = _printable
        return (
            self.recorded_at,
            uuid.UUID(self.organization_id) if self.organization_id else None,
            uuid.UUID(self.agent_id) if self.agent_id else None,
            clean(self.upstream[:64]),
            clean(self.method[:16]),
            clean(self.path[:2048]),
            self.decision,
            clean(self.reason),
            self.status_code,
            self.request_bytes,
            self.response_bytes,
            self.duration_ms,
            list(self.secret_ids),
            self.credential_id,
        )


def _printable(text: str) -> str:
    """Text as PostgreSQL stores it: a NUL (which a worker can put in a path) would fail the batch."""
    return text.replace("\x00", "\\x00")


class AuditLog(BackgroundLoop):
    name = "secretproxy-audit"

    def __init__(self, pool: asyncpg.Pool, *, batch_size: int = 500, flush_interval: float = 0.2, max_pending: int = 100_000):
        self._pool = pool
        self._batch_size = batch_size
        self._interval = flush_interval
        self._max_pending = max_pending
        self._pending: list[tuple] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._count = 0
        self._counted = asyncio.Event()

    def record(self, record: AuditRecord) -> None:
        if len(self._pending) >= self._max_pending:
            # The database has been unreachable for long: keep the newest decisions, say so.
            del self._pending[: self._batch_size]
            log.error("audit_records_dropped", count=self._batch_size)
        self._pending.append(record.row())
        self._count += 1
        self._counted.set()
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def recorded(self, count: int) -> None:
        """Return once ``count`` records have been recorded since start (for tests and drains)."""
        while True:
            self._counted.clear()
            if self._count >= count:
                return
            await self._counted.wait()

    async def flush(self) -> None:
        """Write everything recorded so far (also what arrives while writing)."""
        async with self._lock:
            while self._pending:
                batch, self._pending = self._pending[: self._batch_size], self._pending[self._batch_size :]
                try:
                    await store.audit_insert(self._pool, batch)
                except asyncpg.DataError:
                    await self._insert_one_by_one(batch)  # keep the good rows; a bad one must not block the rest
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    self._pending[:0] = batch  # the database is away: retried on the next flush
                    log.warning("audit_flush_failed", error=type(exc).__name__, pending=len(self._pending))
                    return

    async def _insert_one_by_one(self, batch: list[tuple]) -> None:
        for row in batch:
            try:
                await store.audit_insert(self._pool, [row])
            except asyncpg.DataError as exc:
                log.error("audit_record_dropped", error=type(exc).__name__)

    async def _after_stop(self) -> None:
        await self.flush()  # what was recorded before the stop is written, not lost

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one failure
                log.error("audit_flush_crashed", error=type(exc).__name__)

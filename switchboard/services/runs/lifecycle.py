"""Run transitions that take more than one statement: enqueue (insert, else the active run that
holds the slot, again on a race) and cancel (and why a cancel changed nothing). Plain functions
over the store; the servicer parses, authorises, records metrics and encodes."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from switchboard.services.runs import store
from switchboard.shared.errors import FailedPrecondition, NotFound

# Each retry follows an active run that finished between our insert and our read: three in a row
# means the subject (or key) is churning, and the caller is better told to retry later.
ENQUEUE_ATTEMPTS = 3


async def enqueue(
    conn: store.Connection,
    *,
    organization_id: str,
    lane: str,
    subject_id: str,
    payload_json: str,
    priority: int,
    run_after: datetime | None,
    idempotency_key: str | None,
    max_attempts: int,
    agent_id: str | None,
) -> tuple[store.Record, bool]:
    """A new pending run, or the active run that already holds the subject's sync slot or the
    idempotency key: (run, created). Raises FailedPrecondition CONTENDED when the slot kept
    changing hands."""
    for _ in range(ENQUEUE_ATTEMPTS):
        row = await store.run_insert(
            conn,
            organization_id=organization_id,
            lane=lane,
            subject_id=subject_id,
            payload_json=payload_json,
            priority=priority,
            run_after=run_after,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts,
            agent_id=agent_id,
        )
        if row is not None:
            return row, True
        existing = await store.run_get_active_match(conn, organization_id, lane, subject_id, idempotency_key, agent_id)
        if existing is not None:
            return existing, False
        # The active run that blocked the insert finished in between: try again.
    raise FailedPrecondition("the run's subject or idempotency key is contended; retry", reason="CONTENDED")


class Cancel(enum.Enum):
    CANCELLED = "cancelled"  # was pending: cancelled now
    REQUESTED = "requested"  # is running: its worker sees cancel_requested on its next heartbeat
    ALREADY_CANCELLED = "already_cancelled"  # cancelled before: cancelling again is a no-op


@dataclass(frozen=True)
class Cancelled:
    run: store.Record
    outcome: Cancel


async def cancel(conn: store.Connection, run_id: str, scope: store.Scope) -> Cancelled:
    """Cancel a run in scope. Raises NotFound when there is no such run in scope, and
    FailedPrecondition RUN_FINISHED when it finished otherwise than cancelled."""
    row = await store.run_cancel(conn, run_id, scope)
    if row is not None:
        return Cancelled(row, Cancel.CANCELLED if row["status"] == "cancelled" else Cancel.REQUESTED)
    row = await store.run_get(conn, run_id, scope)
    if row is None:
        raise NotFound(f"run {run_id} does not exist", reason="RUN_NOT_FOUND")
    if row["status"] != "cancelled":
        raise FailedPrecondition(f"run {run_id} already finished as {row['status']}", reason="RUN_FINISHED")
    return Cancelled(row, Cancel.ALREADY_CANCELLED)

"""Every SQL statement of the runs service, named run_<verb>, as plain asyncpg calls.

Transitions are single guarded statements: the WHERE clause is the precondition (status, and for
a worker's calls the fencing pair claimed_by + attempt), so two replicas can never both move the
same run, and a stale worker's call changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from switchboard.shared import locks

Connection = asyncpg.Connection | asyncpg.Pool
Record = asyncpg.Record

# A worker's calls are fenced by claim and attempt, and scoped: $4 organisation and $5 agent (NULL
# for internal callers, who are not confined).
_FENCED = (
    "id = $1 AND claimed_by = $2 AND attempt = $3 AND status = 'running'"
    " AND ($4::uuid IS NULL OR organization_id = $4) AND ($5::uuid IS NULL OR agent_id = $5)"
)


@dataclass(frozen=True)
class Scope:
    """Whose runs a call may touch: an organisation (None: any) and, for a worker, its agent."""

    organization_id: str | None = None
    agent_id: str | None = None


async def run_insert(
    conn: Connection,
    *,
    organization_id: str,
    lane: str,
    subject_id: str,
    payload_json: str,
    priority: int,
    run_after: datetime | None,
    idempotency_key: str | None,
    max_attempts: int,
    agent_id: str | None = None,
) -> Record | None:
    """Insert a pending run; None when an active run already holds the subject's sync slot or the
    idempotency key (the partial unique indexes decide, after any concurrent insert commits)."""
    return await conn.fetchrow(
        """INSERT INTO runs.runs (id, organization_id, lane, subject_id, payload_json, priority, run_after,
                             idempotency_key, max_attempts, agent_id)
           VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), $8, $9, $10)
           ON CONFLICT DO NOTHING
           RETURNING *""",
        str(uuid.uuid4()),
        organization_id,
        lane,
        subject_id,
        payload_json,
        priority,
        run_after,
        idempotency_key,
        max_attempts,
        agent_id,
    )


async def run_get_active_match(
    conn: Connection, organization_id: str, lane: str, subject_id: str, idempotency_key: str | None, agent_id: str | None = None
) -> Record | None:
    """The active run that made run_insert do nothing: same idempotency key, or same sync subject,
    of the same agent (or of no agent, for ``agent_id`` None)."""
    return await conn.fetchrow(
        """SELECT * FROM runs.runs
           WHERE organization_id = $1 AND agent_id IS NOT DISTINCT FROM $5::uuid AND status IN ('pending', 'running')
             AND (($4::text IS NOT NULL AND idempotency_key = $4) OR ($2 = 'sync' AND lane = 'sync' AND subject_id = $3))
           LIMIT 1""",
        organization_id,
        lane,
        subject_id,
        idempotency_key,
        agent_id,
    )


async def run_claim(conn: Connection, worker_id: str, lanes: list[str], scope: Scope) -> Record | None:
    """Claim the next runnable run: auth lane first, then priority, then age. Locked rows are
    skipped, so concurrent claimers never wait for each other nor take the same run."""
    return await conn.fetchrow(
        """WITH next AS (
               SELECT id FROM runs.runs
               WHERE status = 'pending' AND run_after <= now() AND lane = ANY($2::text[])
                 AND ($3::uuid IS NULL OR organization_id = $3) AND ($4::uuid IS NULL OR agent_id = $4)
               ORDER BY (lane = 'auth') DESC, priority DESC, created_at, id
               LIMIT 1
               FOR UPDATE SKIP LOCKED
           )
           UPDATE runs.runs AS r
           SET status = 'running', claimed_by = $1, attempt = r.attempt + 1, claimed_at = now(),
               last_heartbeat_at = now(), heartbeats = 0, cancel_requested = false, updated_at = now()
           FROM next WHERE r.id = next.id
           RETURNING r.*""",
        worker_id,
        lanes,
        scope.organization_id,
        scope.agent_id,
    )


async def run_heartbeat(conn: Connection, run_id: str, worker_id: str, attempt: int, scope: Scope) -> bool | None:
    """Record a heartbeat of the current claim; cancel_requested, or None when fenced out."""
    return await conn.fetchval(
        f"""UPDATE runs.runs SET last_heartbeat_at = now(), heartbeats = heartbeats + 1, updated_at = now()
            WHERE {_FENCED} RETURNING cancel_requested""",
        run_id,
        worker_id,
        attempt,
        scope.organization_id,
        scope.agent_id,
    )


async def run_complete(
    conn: Connection, run_id: str, worker_id: str, attempt: int, scope: Scope, result_json: str
) -> Record | None:
    return await conn.fetchrow(
        f"""UPDATE runs.runs SET status = 'completed', result_json = $6, finished_at = now(), updated_at = now()
            WHERE {_FENCED} RETURNING *""",
        run_id,
        worker_id,
        attempt,
        scope.organization_id,
        scope.agent_id,
        result_json,
    )


async def run_fail(
    conn: Connection,
    run_id: str,
    worker_id: str,
    attempt: int,
    scope: Scope,
    error_message: str,
    retryable: bool,
    backoff_base_seconds: float,
    backoff_max_seconds: float,
) -> Record | None:
    """End the current claim with an error: cancelled when cancellation was requested, back to
    pending after an exponential backoff with jitter while attempts remain and the error is
    retryable, failed for good otherwise."""
    # One statement whose WHERE is the fence: the CASEs read the row as it is when the fence holds.
    return await conn.fetchrow(
        f"""UPDATE runs.runs
            SET status = CASE WHEN cancel_requested THEN 'cancelled'
                              WHEN $7 AND attempt < max_attempts THEN 'pending'
                              ELSE 'failed' END,
                error_message = $6,
                -- "equal jitter": half the backoff fixed, half random, so retries spread out.
                run_after = CASE WHEN NOT cancel_requested AND $7 AND attempt < max_attempts
                                 THEN now() + make_interval(secs => least($8 * power(2, attempt - 1), $9) * (0.5 + random() / 2))
                                 ELSE run_after END,
                finished_at = CASE WHEN NOT cancel_requested AND $7 AND attempt < max_attempts THEN NULL ELSE now() END,
                updated_at = now()
            WHERE {_FENCED}
            RETURNING *""",
        run_id,
        worker_id,
        attempt,
        scope.organization_id,
        scope.agent_id,
        error_message,
        retryable,
        backoff_base_seconds,
        backoff_max_seconds,
    )


async def run_cancel(conn: Connection, run_id: str, scope: Scope) -> Record | None:
    """Pending → cancelled at once; running → cancel_requested. None when the run is not active."""
    return await conn.fetchrow(
        """UPDATE runs.runs
           SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,
               cancel_requested = (status = 'running'),
               finished_at = CASE WHEN status = 'pending' THEN now() ELSE finished_at END,
               updated_at = now()
           WHERE id = $1 AND status IN ('pending', 'running')
             AND ($2::uuid IS NULL OR organization_id = $2) AND ($3::uuid IS NULL OR agent_id = $3)
           RETURNING *""",
        run_id,
        scope.organization_id,
        scope.agent_id,
    )


async def run_get(conn: Connection, run_id: str, scope: Scope) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM runs.runs WHERE id = $1 AND ($2::uuid IS NULL OR organization_id = $2) AND ($3::uuid IS NULL OR agent_id = $3)",
        run_id,
        scope.organization_id,
        scope.agent_id,
    )


async def run_organization(conn: Connection, run_id: str) -> str | None:
    """The organisation a run belongs to (to authorise an acting user), or None."""
    found = await conn.fetchval("SELECT organization_id FROM runs.runs WHERE id = $1", run_id)
    return str(found) if found else None


async def run_list(
    conn: Connection,
    organization_id: str,
    *,
    lanes: list[str] | None,
    statuses: list[str] | None,
    subject_id: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
    agent_id: str | None = None,
) -> list[Record]:
    """An organisation's runs, newest first, after the given position."""
    return await conn.fetch(
        """SELECT * FROM runs.runs
           WHERE organization_id = $1
             AND ($2::text[] IS NULL OR lane = ANY($2))
             AND ($3::text[] IS NULL OR status = ANY($3))
             AND ($4::text IS NULL OR subject_id = $4)
             AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
             AND ($8::uuid IS NULL OR agent_id = $8)
           ORDER BY created_at DESC, id DESC
           LIMIT $7""",
        organization_id,
        lanes,
        statuses,
        subject_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
        agent_id,
    )


# The reaper's sweep: $1 stale-after seconds, $2 and $3 the watcher lane's thresholds, $4 the batch,
# $5 and $6 the retry backoff base and cap. A constant so that tests can EXPLAIN the real statement.
REAP_STALE_SQL = """WITH stale_workers AS (
               SELECT id FROM runs.runs
               WHERE status = 'running' AND lane IN ('sync', 'action', 'embed_backfill', 'auth')
                 AND last_heartbeat_at < now() - make_interval(secs => $1)
               ORDER BY last_heartbeat_at
               LIMIT $4
               FOR UPDATE SKIP LOCKED
           ),
           stale_watchers AS (
               SELECT id FROM runs.runs
               WHERE status = 'running' AND lane = 'watcher'
                 AND ((heartbeats = 0 AND last_heartbeat_at < now() - make_interval(secs => $2))
                      OR (heartbeats > 0 AND last_heartbeat_at < now() - make_interval(secs => $3)))
               ORDER BY last_heartbeat_at
               LIMIT $4
               FOR UPDATE SKIP LOCKED
           ),
           stale AS (SELECT id FROM stale_workers UNION ALL SELECT id FROM stale_watchers),
           reaped AS (
               UPDATE runs.runs AS r
               SET status = 'timeout', error_message = 'worker_heartbeat_lost', finished_at = now(), updated_at = now()
               FROM stale WHERE r.id = stale.id AND r.status = 'running'
               RETURNING r.organization_id, r.agent_id, r.lane, r.subject_id, r.payload_json, r.priority, r.attempt,
                         r.max_attempts, r.cancel_requested
           ),
           retries AS (
               -- The retry carries the attempt count on (the next claim makes it attempt + 1), so a
               -- subject whose workers keep dying stops at max_attempts; a cancelled run is not
               -- retried; the backoff grows as for a retryable failure.
               INSERT INTO runs.runs (id, organization_id, agent_id, lane, subject_id, payload_json, priority, attempt, max_attempts,
                                 run_after, error_message)
               SELECT gen_random_uuid(), organization_id, agent_id, lane, subject_id, payload_json, priority, attempt, max_attempts,
                      now() + make_interval(secs => least($5 * power(2, attempt - 1), $6) * (0.5 + random() / 2)),
                      'worker_heartbeat_lost'
               FROM reaped WHERE lane = 'sync' AND NOT cancel_requested AND attempt < max_attempts
               ON CONFLICT DO NOTHING
               RETURNING 1
           )
           SELECT (SELECT count(*) FROM reaped) AS reaped, (SELECT count(*) FROM retries) AS retries"""


async def run_reap_stale(
    conn: asyncpg.Connection,
    *,
    stale_after_seconds: float,
    watcher_unstarted_seconds: float,
    watcher_silent_seconds: float,
    limit: int,
    backoff_base_seconds: float,
    backoff_max_seconds: float,
) -> tuple[int, int]:
    """One bounded sweep, in one statement: stale running runs become 'timeout' with
    worker_heartbeat_lost, and each reaped sync run gets one new pending run for its subject
    unless one is active already, it was cancelled, or it is out of attempts. Returns (reaped,
    retries created)."""
    row = await conn.fetchrow(
        REAP_STALE_SQL,
        stale_after_seconds,
        watcher_unstarted_seconds,
        watcher_silent_seconds,
        limit,
        backoff_base_seconds,
        backoff_max_seconds,
    )
    return int(row["reaped"]), int(row["retries"])


async def try_reaper_lock(conn: asyncpg.Connection) -> bool:
    """Take the reaper's lock for the current transaction, or return False at once."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", locks.RUNS_REAPER))


async def run_count_active(conn: Connection) -> list[Record]:
    """Active runs by lane and status (served by the partial indexes: cost follows active runs)."""
    return await conn.fetch(
        "SELECT lane, status, count(*) AS n FROM runs.runs WHERE status IN ('pending', 'running') GROUP BY lane, status"
    )

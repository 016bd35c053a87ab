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


# NOTIFY channels: a run was enqueued (payload: its agent, or '' for a run without one), and the
# cancellation of a running run was requested (payload: "<run id> <attempt>"). Wake-ups only: a
# missed one is made up for by the sessions' poll and heartbeat.
ENQUEUED_CHANNEL = "runs_enqueued"
CANCELLED_CHANNEL = "runs_cancelled"

# The enqueuing organisation's next turn (a CTE named clock; $2 is the organisation): one past its
# last turn, and never before the turn being served now: the head of the claim order, or when
# nothing is pending, the latest turn any organisation took (so that an organisation idle while
# the others were served banks no credit, even across an empty queue).
_NEXT_TURN = """now_serving AS (
               SELECT coalesce(
                   (SELECT turn FROM runs.runs WHERE status = 'pending'
                    ORDER BY (lane = 'auth') DESC, priority DESC, turn, created_at, id LIMIT 1),
                   (SELECT max(last_turn) FROM runs.organization_turns),
                   0) AS turn
           ),
           clock AS (
               INSERT INTO runs.organization_turns AS t (organization_id, last_turn)
               VALUES ($2, (SELECT turn FROM now_serving))
               ON CONFLICT (organization_id) DO UPDATE SET last_turn = greatest(t.last_turn + 1, EXCLUDED.last_turn)
               RETURNING last_turn
           )"""


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
    """Insert a pending run at its organisation's next turn, and wake idle sessions (NOTIFY, with
    the run's agent or '' as payload); None when an active run already holds the subject's sync
    slot or the idempotency key (the partial unique indexes decide, after any concurrent insert
    commits)."""
    return await conn.fetchrow(
        f"""WITH {_NEXT_TURN}
           INSERT INTO runs.runs (id, organization_id, lane, subject_id, payload_json, priority, run_after,
                             idempotency_key, max_attempts, agent_id, turn)
           VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), $8, $9, $10, (SELECT last_turn FROM clock))
           ON CONFLICT DO NOTHING
           RETURNING *, pg_notify('{ENQUEUED_CHANNEL}', coalesce($10::text, ''))""",
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


# The claim order: LANE_AUTH first, then priority, then the fair turn (see the migration
# 0004_fair_turns_and_handbacks.sql), then age. Both claim statements follow it on their index.
CLAIM_ORDER = "(lane = 'auth') DESC, priority DESC, turn, created_at, id"

# $1 the claiming worker of each slot to fill (its length is how many runs), $2 lanes; the agent
# variant adds $3 organisation and $4 agent. Two statements rather than one with "$4 IS NULL OR …",
# so that each is planned on its own index. The runs picked are numbered in the claim order and go
# to the slot of the same number; RETURNING names the slot.
_CLAIM = """WITH next AS (
               SELECT id, row_number() OVER () AS slot FROM (
                   SELECT id FROM runs.runs
                   WHERE status = 'pending' AND run_after <= now() AND lane = ANY($2::text[]) {scope}
                   ORDER BY {order}
                   LIMIT cardinality($1::text[])
                   FOR UPDATE SKIP LOCKED
               ) AS picked
           )
           UPDATE runs.runs AS r
           SET status = 'running', claimed_by = s.worker, attempt = r.attempt + 1, claimed_at = now(),
               last_heartbeat_at = now(), heartbeats = 0, cancel_requested = false, updated_at = now()
           FROM next JOIN unnest($1::text[]) WITH ORDINALITY AS s(worker, slot) USING (slot)
           WHERE r.id = next.id
           RETURNING r.*, next.slot"""
CLAIM_ANY_SQL = _CLAIM.format(scope="", order=CLAIM_ORDER)
CLAIM_AGENT_SQL = _CLAIM.format(scope="AND agent_id = $4 AND organization_id = $3", order=CLAIM_ORDER)


async def run_claim_slots(conn: Connection, slots: list[str], lanes: list[str], scope: Scope) -> list[Record]:
    """Claim up to ``len(slots)`` runnable runs in the claim order, in one statement, each for the
    worker of its slot (``slot``, 1-based, in the answer). Locked rows are skipped, so concurrent
    claimers never wait for each other nor take the same run. A worker's claim (a scope with an
    agent) sees only its agent's runs; an operator's sees every run."""
    if scope.agent_id is None and scope.organization_id is None:
        return await conn.fetch(CLAIM_ANY_SQL, slots, lanes)
    if scope.agent_id is None:  # no caller is scoped to an organisation without an agent
        raise ValueError("a scoped claim needs the worker's agent")
    return await conn.fetch(CLAIM_AGENT_SQL, slots, lanes, scope.organization_id, scope.agent_id)


async def run_claim_many(conn: Connection, worker_id: str, lanes: list[str], scope: Scope, limit: int) -> list[Record]:
    """Claim up to ``limit`` runnable runs for one worker (see run_claim_slots)."""
    return await run_claim_slots(conn, [worker_id] * limit, lanes, scope)


async def run_claim(conn: Connection, worker_id: str, lanes: list[str], scope: Scope) -> Record | None:
    """Claim the next runnable run (see run_claim_many), or None."""
    rows = await run_claim_many(conn, worker_id, lanes, scope, 1)
    return rows[0] if rows else None


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
    pending after an exponential backoff with jitter while attempts remain (hand-backs do not
    count) and the error is retryable, failed for good otherwise."""
    # One statement whose WHERE is the fence: the CASEs read the row as it is when the fence holds.
    return await conn.fetchrow(
        f"""UPDATE runs.runs
            SET status = CASE WHEN cancel_requested THEN 'cancelled'
                              WHEN $7 AND attempt - handbacks < max_attempts THEN 'pending'
                              ELSE 'failed' END,
                error_message = $6,
                -- "equal jitter": half the backoff fixed, half random, so retries spread out.
                run_after = CASE WHEN NOT cancel_requested AND $7 AND attempt - handbacks < max_attempts
                                 THEN now() + make_interval(secs => least($8 * power(2, attempt - handbacks - 1), $9) * (0.5 + random() / 2))
                                 ELSE run_after END,
                finished_at = CASE WHEN NOT cancel_requested AND $7 AND attempt - handbacks < max_attempts THEN NULL ELSE now() END,
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
    """Pending → cancelled at once; running → cancel_requested, and the session holding it is
    told (NOTIFY). None when the run is not active."""
    return await conn.fetchrow(
        f"""UPDATE runs.runs
           SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,
               cancel_requested = (status = 'running'),
               finished_at = CASE WHEN status = 'pending' THEN now() ELSE finished_at END,
               updated_at = now()
           WHERE id = $1 AND status IN ('pending', 'running')
             AND ($2::uuid IS NULL OR organization_id = $2) AND ($3::uuid IS NULL OR agent_id = $3)
           RETURNING *, CASE WHEN status = 'running' THEN pg_notify('{CANCELLED_CHANNEL}', id::text || ' ' || attempt) END""",
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
                         r.max_attempts, r.cancel_requested, r.handbacks, r.turn
           ),
           retries AS (
               -- The retry carries the attempt count on (the next claim makes it attempt + 1), so a
               -- subject whose workers keep dying stops at max_attempts; a cancelled run is not
               -- retried; the backoff grows as for a retryable failure.
               INSERT INTO runs.runs (id, organization_id, agent_id, lane, subject_id, payload_json, priority, attempt, max_attempts,
                                 run_after, error_message, handbacks, turn)
               SELECT gen_random_uuid(), organization_id, agent_id, lane, subject_id, payload_json, priority, attempt, max_attempts,
                      now() + make_interval(secs => least($5 * power(2, attempt - handbacks - 1), $6) * (0.5 + random() / 2)),
                      'worker_heartbeat_lost', handbacks, turn
               FROM reaped WHERE lane = 'sync' AND NOT cancel_requested AND attempt - handbacks < max_attempts
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


# -- worker sessions: statements over many runs at once (switchboard/services/runs/sessions.py) ----


# Every outcome of a flush, across sessions, in one statement. Each row of the unnest is one
# outcome, fenced exactly as the unary calls (run, attempt, claimed_by, running) and scoped by its
# own session's organisation and agent (NULL for operators). A complete sets 'completed'; a fail
# as FailRun does; a release puts the run back to pending at once, keeping its attempt (the
# fencing token only grows) and counting a hand-back so that max_attempts is unaffected; on a run
# whose cancellation was requested, a fail or a release ends it as 'cancelled'. A release wakes
# idle sessions (NOTIFY), like an enqueue.
FINISH_MANY_SQL = f"""UPDATE runs.runs AS r
           SET status = CASE WHEN o.kind = 'complete' THEN 'completed'
                             WHEN r.cancel_requested THEN 'cancelled'
                             WHEN o.kind = 'release' THEN 'pending'
                             WHEN o.retryable AND r.attempt - r.handbacks < r.max_attempts THEN 'pending'
                             ELSE 'failed' END,
               result_json = CASE WHEN o.kind = 'complete' THEN o.result ELSE r.result_json END,
               error_message = CASE WHEN o.kind = 'fail' THEN o.error ELSE r.error_message END,
               handbacks = r.handbacks + (o.kind = 'release' AND NOT r.cancel_requested)::int,
               run_after = CASE WHEN o.kind = 'release' AND NOT r.cancel_requested THEN now()
                                WHEN o.kind = 'fail' AND NOT r.cancel_requested AND o.retryable
                                     AND r.attempt - r.handbacks < r.max_attempts
                                -- "equal jitter", as FailRun
                                THEN now() + make_interval(secs => least($10 * power(2, r.attempt - r.handbacks - 1), $11)
                                                                   * (0.5 + random() / 2))
                                ELSE r.run_after END,
               finished_at = CASE WHEN NOT r.cancel_requested
                                       AND (o.kind = 'release'
                                            OR (o.kind = 'fail' AND o.retryable AND r.attempt - r.handbacks < r.max_attempts))
                                  THEN NULL ELSE now() END,
               updated_at = now()
           FROM unnest($1::text[], $2::uuid[], $3::int[], $4::text[], $5::uuid[], $6::uuid[], $7::text[], $8::text[], $9::bool[])
                AS o(kind, id, attempt, worker, org, agent, result, error, retryable)
           WHERE r.id = o.id AND r.attempt = o.attempt AND r.claimed_by = o.worker AND r.status = 'running'
             AND (o.org IS NULL OR r.organization_id = o.org) AND (o.agent IS NULL OR r.agent_id = o.agent)
           RETURNING r.id, r.attempt, r.status, r.lane,
                     CASE WHEN o.kind = 'release' THEN pg_notify('{ENQUEUED_CHANNEL}', coalesce(r.agent_id::text, '')) END"""


@dataclass(frozen=True)
class Outcome:
    """One worker's report on one run: kind 'complete', 'fail' or 'release', fenced by (run_id,
    attempt, worker_id) and scoped by the reporting session's organisation and agent."""

    kind: str
    run_id: str
    attempt: int
    worker_id: str
    scope: Scope
    result_json: str | None = None
    error_message: str | None = None
    retryable: bool = False


async def run_finish_many(
    conn: Connection, outcomes: list[Outcome], backoff_base_seconds: float, backoff_max_seconds: float
) -> list[Record]:
    """Apply the outcomes in one statement (at most one per run: the caller deduplicates); the
    rows that changed (id, attempt, new status, lane). An outcome whose fence did not hold changed
    nothing and is not among them."""
    return await conn.fetch(
        FINISH_MANY_SQL,
        [o.kind for o in outcomes],
        [o.run_id for o in outcomes],
        [o.attempt for o in outcomes],
        [o.worker_id for o in outcomes],
        [o.scope.organization_id for o in outcomes],
        [o.scope.agent_id for o in outcomes],
        [o.result_json for o in outcomes],
        [o.error_message for o in outcomes],
        [o.retryable for o in outcomes],
        backoff_base_seconds,
        backoff_max_seconds,
    )


async def run_get_many(conn: Connection, run_ids: list[str], scopes: list[Scope]) -> list[Record]:
    """The current (id, status, attempt, claimed_by) of the runs, each within its own scope: why
    outcomes changed nothing (a repeat, fenced out, or not found)."""
    return await conn.fetch(
        """SELECT r.id, r.status, r.attempt, r.claimed_by
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS s(id, org, agent)
           JOIN runs.runs AS r ON r.id = s.id
            AND (s.org IS NULL OR r.organization_id = s.org) AND (s.agent IS NULL OR r.agent_id = s.agent)""",
        run_ids,
        [s.organization_id for s in scopes],
        [s.agent_id for s in scopes],
    )


@dataclass(frozen=True)
class HeldRun:
    """A run a session holds: its fencing triple and the session's scope."""

    run_id: str
    attempt: int
    worker_id: str
    scope: Scope


async def run_heartbeat_many(conn: Connection, held: list[HeldRun]) -> list[Record]:
    """Heartbeat every run held, in one statement, each fenced and scoped as Heartbeat is; the runs
    still held (id, attempt, cancel_requested). Runs missing from the answer are no longer their
    worker's (reaped, or finished)."""
    return await conn.fetch(
        """UPDATE runs.runs AS r SET last_heartbeat_at = now(), heartbeats = r.heartbeats + 1, updated_at = now()
           FROM unnest($1::uuid[], $2::int[], $3::text[], $4::uuid[], $5::uuid[]) AS h(id, attempt, worker, org, agent)
           WHERE r.id = h.id AND r.attempt = h.attempt AND r.claimed_by = h.worker AND r.status = 'running'
             AND (h.org IS NULL OR r.organization_id = h.org) AND (h.agent IS NULL OR r.agent_id = h.agent)
           RETURNING r.id, r.attempt, r.cancel_requested""",
        [h.run_id for h in held],
        [h.attempt for h in held],
        [h.worker_id for h in held],
        [h.scope.organization_id for h in held],
        [h.scope.agent_id for h in held],
    )

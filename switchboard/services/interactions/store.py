"""Every SQL statement of the interactions service, named noun_verb, as plain asyncpg calls."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from switchboard.shared import locks
from switchboard.shared.errors import AlreadyExists, NotFound

Connection = asyncpg.Connection | asyncpg.Pool
Record = asyncpg.Record

EVENTS_CHANNEL = "switchboard_events"


async def events_append(
    conn: asyncpg.Connection, organization_id: str, stream: str, events: list[tuple[str, str]]
) -> tuple[list[int], datetime]:
    """Append events to a stream in one transaction; their sequences and the time stored.

    The upsert on the stream's row takes its lock until commit: concurrent publishers of one stream
    take turns, so sequences are gapless and become visible in order. The NOTIFY is delivered at
    commit and carries only the stream's key: listeners read the events from the table.
    """
    # One statement, so one round trip (it commits on its own, or joins the caller's transaction):
    # the upsert's row lock is held to the end, the events take the sequences it handed out, and
    # pg_notify queues "<organization> <stream> <last sequence>" (a space never appears in a
    # stream name) for delivery at commit.
    row = await conn.fetchrow(
        """WITH head AS (
               INSERT INTO interactions.streams (organization_id, name, last_sequence) VALUES ($1, $2, $3)
               ON CONFLICT (organization_id, name) DO UPDATE SET last_sequence = streams.last_sequence + $3
               RETURNING organization_id, name, last_sequence
           ), stored AS (
               INSERT INTO interactions.events (organization_id, stream, sequence, type, payload_json)
               SELECT $1, $2, head.last_sequence - $3 + e.i, e.t, e.p
               FROM head, unnest($4::text[], $5::text[]) WITH ORDINALITY AS e(t, p, i)
               RETURNING created_at
           )
           SELECT head.last_sequence AS last, (SELECT min(created_at) FROM stored) AS created_at,
                  pg_notify($6, head.organization_id::text || ' ' || head.name || ' ' || head.last_sequence::text)
           FROM head""",
        organization_id,
        stream,
        len(events),
        [t for t, _ in events],
        [p for _, p in events],
        EVENTS_CHANNEL,
    )
    last, created_at = row["last"], row["created_at"]
    first = last - len(events) + 1
    return list(range(first, last + 1)), created_at


async def events_after(
    conn: Connection, organization_id: str, stream: str, after: int, limit: int, max_bytes: int
) -> list[Record]:
    """Stored events of a stream after a sequence, in order: at most ``limit`` of them and, past
    the first, no more than ``max_bytes`` of payload (a page's memory is bounded either way)."""
    return await conn.fetch(
        """SELECT sequence, type, payload_json, created_at FROM (
               SELECT sequence, type, payload_json, created_at,
                      sum(octet_length(payload_json)) OVER (ORDER BY sequence) - octet_length(payload_json) AS before
               FROM interactions.events
               WHERE organization_id = $1 AND stream = $2 AND sequence > $3
               ORDER BY sequence LIMIT $4
           ) page
           WHERE before < $5
           ORDER BY sequence""",
        organization_id,
        stream,
        after,
        limit,
        max_bytes,
    )


async def stream_bounds(conn: Connection, organization_id: str, stream: str) -> tuple[int, int]:
    """(first stored sequence, last sequence) of a stream; (1, 0) for one that never had an event.
    When every event was trimmed, the first stored is last + 1."""
    row = await conn.fetchrow(
        """SELECT s.last_sequence,
                  coalesce((SELECT min(sequence) FROM interactions.events e WHERE e.organization_id = s.organization_id AND e.stream = s.name),
                           s.last_sequence + 1) AS first_sequence
           FROM interactions.streams s WHERE s.organization_id = $1 AND s.name = $2""",
        organization_id,
        stream,
    )
    if row is None:
        return 1, 0
    return int(row["first_sequence"]), int(row["last_sequence"])


async def events_trim(conn: asyncpg.Connection, keep_last: int, max_age_seconds: float, batch: int) -> int:
    """Delete one bounded batch of events beyond a stream's last ``keep_last`` or older than
    ``max_age_seconds``; how many were deleted."""
    status = await conn.execute(
        """DELETE FROM interactions.events WHERE ctid IN (
               SELECT e.ctid FROM interactions.events e JOIN interactions.streams s ON s.organization_id = e.organization_id AND s.name = e.stream
               WHERE e.sequence <= s.last_sequence - $1 OR e.created_at < now() - make_interval(secs => $2)
               LIMIT $3)""",
        keep_last,
        max_age_seconds,
        batch,
    )
    return int(status.split()[-1])


async def try_retention_lock(conn: asyncpg.Connection) -> bool:
    """Take retention's lock for the current transaction, or return False at once."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", locks.INTERACTIONS_RETENTION))


# -- connections -------------------------------------------------------------------------------

_CONNECTION_COLUMNS = "id, organization_id, platform, external_id, api_base_url, created_at, updated_at"


async def connection_upsert(
    conn: Connection,
    connection_id: str,
    organization_id: str,
    platform: str,
    external_id: str,
    api_base_url: str,
    key_id: str,
    sealed: bytes,
) -> tuple[Record | None, bool]:
    """Insert a connection, or replace the credentials of the organisation's existing one for the
    same platform and external id. (None, False) when another organisation holds that id."""
    row = await conn.fetchrow(
        f"""INSERT INTO interactions.connections (id, organization_id, platform, external_id, api_base_url, key_id, credentials)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT ON CONSTRAINT connections_external_key DO UPDATE
                SET api_base_url = excluded.api_base_url, key_id = excluded.key_id,
                    credentials = excluded.credentials, updated_at = now()
                WHERE connections.organization_id = excluded.organization_id
            RETURNING {_CONNECTION_COLUMNS}, (xmax = 0) AS created""",
        connection_id,
        organization_id,
        platform,
        external_id,
        api_base_url,
        key_id,
        sealed,
    )
    if row is None:
        return None, False
    return row, bool(row["created"])


async def connection_get(
    conn: Connection, connection_id: str, organization_id: str | None = None, only_connection: str | None = None
) -> Record | None:
    """The connection, within the caller's scope: its organisation (None: any) and, for a worker
    bound to one connection, that connection only."""
    return await conn.fetchrow(
        f"""SELECT {_CONNECTION_COLUMNS} FROM interactions.connections
            WHERE id = $1 AND ($2::uuid IS NULL OR organization_id = $2) AND ($3::uuid IS NULL OR id = $3)""",
        connection_id,
        organization_id,
        only_connection,
    )


async def connection_organization(conn: Connection, connection_id: str) -> str | None:
    """The organisation a connection belongs to (to authorise an acting user), or None."""
    found = await conn.fetchval("SELECT organization_id FROM interactions.connections WHERE id = $1", connection_id)
    return str(found) if found else None


async def connection_credentials(conn: Connection, connection_id: str) -> Record | None:
    """The connection with its sealed credentials (for the service's own use, never returned)."""
    return await conn.fetchrow(f"SELECT {_CONNECTION_COLUMNS}, key_id, credentials FROM interactions.connections WHERE id = $1", connection_id)


async def connection_list(
    conn: Connection,
    organization_id: str,
    platform: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
    only_connection: str | None = None,
) -> list[Record]:
    return await conn.fetch(
        f"""SELECT {_CONNECTION_COLUMNS} FROM interactions.connections
            WHERE organization_id = $1 AND ($2::text IS NULL OR platform = $2)
              AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))
              AND ($6::uuid IS NULL OR id = $6)
            ORDER BY created_at, id LIMIT $5""",
        organization_id,
        platform,
        after[0] if after else None,
        after[1] if after else None,
        limit,
        only_connection,
    )


async def connection_delete(conn: asyncpg.Connection, connection_id: str, organization_id: str) -> int | None:
    """Delete a connection and its pending questions; how many questions went, None when there was
    no such connection. One statement: the questions are deleted first (the CTE), so the count is
    exactly the rows removed (an aggregate cannot take FOR UPDATE, which is why no count is read
    before), and the connection's delete sees no question left for its cascade."""
    row = await conn.fetchrow(
        """WITH questions AS (
               DELETE FROM interactions.pending_questions WHERE connection_id = $1 AND organization_id = $2
               AND EXISTS (SELECT 1 FROM interactions.connections WHERE id = $1 AND organization_id = $2)
               RETURNING 1),
           deleted AS (DELETE FROM interactions.connections WHERE id = $1 AND organization_id = $2 RETURNING 1)
           SELECT (SELECT count(*) FROM questions) AS questions, (SELECT count(*) FROM deleted) AS connections""",
        connection_id,
        organization_id,
    )
    return int(row["questions"]) if row["connections"] else None


# -- pending questions -------------------------------------------------------------------------
# Every statement is predicated on the full scope: id, organisation, connection, expected user;
# and, for a worker, its agent (``agent_id`` None means an internal caller, not confined to one).


async def question_insert(
    conn: Connection,
    question_id: str,
    organization_id: str,
    connection_id: str,
    agent_id: str,
    expected_user_id: str,
    channel_id: str,
    text: str,
    options_json: str,
    payload_json: str,
) -> None:
    """Raises NotFound when the connection went away since the caller read it (a concurrent delete)."""
    try:
        await conn.execute(
            """INSERT INTO interactions.pending_questions (id, organization_id, connection_id, agent_id, expected_user_id, channel_id,
                                              question_text, options_json, payload_json)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            question_id,
            organization_id,
            connection_id,
            agent_id,
            expected_user_id,
            channel_id,
            text,
            options_json,
            payload_json,
        )
    except asyncpg.ForeignKeyViolationError:
        raise NotFound(f"connection {connection_id} does not exist", reason="CONNECTION_NOT_FOUND") from None


async def question_set_message(
    conn: Connection, question_id: str, organization_id: str, connection_id: str, channel_id: str, message_id: str
) -> None:
    await conn.execute(
        """UPDATE interactions.pending_questions SET message_channel_id = $4, message_id = $5
           WHERE id = $1 AND organization_id = $2 AND connection_id = $3""",
        question_id,
        organization_id,
        connection_id,
        channel_id,
        message_id,
    )


async def question_claim(
    conn: Connection, question_id: str, organization_id: str, connection_id: str, user_id: str, agent_id: str | None = None
) -> Record | None:
    """The one atomic claim: the row when this call won it; None for a wrong scope or a row
    already claimed (nothing consumed either way)."""
    return await conn.fetchrow(
        """UPDATE interactions.pending_questions SET claimed_at = now()
           WHERE id = $1 AND organization_id = $2 AND connection_id = $3 AND expected_user_id = $4
             AND ($5::uuid IS NULL OR agent_id = $5) AND claimed_at IS NULL
           RETURNING *""",
        question_id,
        organization_id,
        connection_id,
        user_id,
        agent_id,
    )


async def question_store(
    conn: Connection,
    question_id: str,
    organization_id: str,
    connection_id: str,
    agent_id: str,
    expected_user_id: str,
    channel_id: str,
    message_channel_id: str | None,
    message_id: str | None,
    payload_json: str,
) -> Record | None:
    """Insert a pending question, or re-stash the same one (same scope): payload replaced, claim
    reset, created_at kept so that retries cannot extend its life. None when the id exists with
    another scope. Raises AlreadyExists when the message reference is another question's card, and
    NotFound when the connection went away meanwhile."""
    try:
        return await conn.fetchrow(
            """INSERT INTO interactions.pending_questions (id, organization_id, connection_id, agent_id, expected_user_id, channel_id,
                                              message_channel_id, message_id, payload_json)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (id) DO UPDATE
                   SET payload_json = excluded.payload_json, claimed_at = NULL,
                       message_channel_id = coalesce(excluded.message_channel_id, pending_questions.message_channel_id),
                       message_id = coalesce(excluded.message_id, pending_questions.message_id)
                   WHERE pending_questions.organization_id = excluded.organization_id
                     AND pending_questions.connection_id = excluded.connection_id
                     AND pending_questions.agent_id = excluded.agent_id
                     AND pending_questions.expected_user_id = excluded.expected_user_id
               RETURNING created_at, (xmax = 0) AS created""",
            question_id,
            organization_id,
            connection_id,
            agent_id,
            expected_user_id,
            channel_id,
            message_channel_id,
            message_id,
            payload_json,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != "pending_questions_one_card":
            raise
        raise AlreadyExists("message_ref is the card of another question", reason="CARD_TAKEN") from None
    except asyncpg.ForeignKeyViolationError:
        raise NotFound(f"connection {connection_id} does not exist", reason="CONNECTION_NOT_FOUND") from None


async def question_delete(
    conn: Connection, question_id: str, organization_id: str, connection_id: str, user_id: str, agent_id: str | None = None
) -> bool:
    return bool(
        await conn.fetchval(
            """DELETE FROM interactions.pending_questions
               WHERE id = $1 AND organization_id = $2 AND connection_id = $3 AND expected_user_id = $4
                 AND ($5::uuid IS NULL OR agent_id = $5)
               RETURNING 1""",
            question_id,
            organization_id,
            connection_id,
            user_id,
            agent_id,
        )
    )


async def question_delete_unscoped_by_service(conn: Connection, question_id: str) -> None:
    """Undo the service's own insert when posting the card failed (the row was never visible to
    a caller under another scope)."""
    await conn.execute("DELETE FROM interactions.pending_questions WHERE id = $1", question_id)


async def questions_sweep(conn: Connection, max_age_seconds: float, limit: int) -> list[str]:
    """Delete up to ``limit`` questions older than ``max_age_seconds``, oldest first; their ids."""
    rows = await conn.fetch(
        """DELETE FROM interactions.pending_questions WHERE id IN (
               SELECT id FROM interactions.pending_questions WHERE created_at < now() - make_interval(secs => $1)
               ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING id, created_at""",
        max_age_seconds,
        limit,
    )
    return [str(r["id"]) for r in sorted(rows, key=lambda r: (r["created_at"], str(r["id"])))]


async def try_sweep_lock(conn: asyncpg.Connection) -> bool:
    """Take the question sweep's lock for the current transaction, or return False at once."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", locks.INTERACTIONS_SWEEP))


async def question_get(
    conn: Connection, question_id: str, organization_id: str, connection_id: str, agent_id: str | None = None
) -> Record | None:
    return await conn.fetchrow(
        """SELECT * FROM interactions.pending_questions
           WHERE id = $1 AND organization_id = $2 AND connection_id = $3 AND ($4::uuid IS NULL OR agent_id = $4)""",
        question_id,
        organization_id,
        connection_id,
        agent_id,
    )


async def question_record_answer(conn: Connection, question_id: str, option_id: str) -> None:
    await conn.execute(
        "UPDATE interactions.pending_questions SET answered_option_id = $2, answered_at = now() WHERE id = $1", question_id, option_id
    )


async def connection_by_external_id(conn: Connection, platform: str, external_id: str) -> Record | None:
    return await conn.fetchrow(
        f"SELECT {_CONNECTION_COLUMNS}, key_id, credentials FROM interactions.connections WHERE platform = $1 AND external_id = $2",
        platform,
        external_id,
    )

"""Every SQL statement of the interactions service, named noun_verb, as plain asyncpg calls."""

from __future__ import annotations

from datetime import datetime

import asyncpg

Connection = asyncpg.Connection | asyncpg.Pool
Record = asyncpg.Record

EVENTS_CHANNEL = "switchboard_events"
RETENTION_LOCK_KEY = 0x5357_5245_544E  # "SWRETN"


async def events_append(
    conn: asyncpg.Connection, organization_id: str, stream: str, events: list[tuple[str, str]]
) -> tuple[list[int], datetime]:
    """Append events to a stream in one transaction; their sequences and the time stored.

    The upsert on the stream's row takes its lock until commit: concurrent publishers of one stream
    take turns, so sequences are gapless and become visible in order. The NOTIFY is delivered at
    commit and carries only the stream's key: listeners read the events from the table.
    """
    async with conn.transaction():
        last = await conn.fetchval(
            """INSERT INTO streams (organization_id, name, last_sequence) VALUES ($1, $2, $3)
               ON CONFLICT (organization_id, name) DO UPDATE SET last_sequence = streams.last_sequence + $3
               RETURNING last_sequence""",
            organization_id,
            stream,
            len(events),
        )
        first = last - len(events) + 1
        created_at = await conn.fetchval(
            """INSERT INTO events (organization_id, stream, sequence, type, payload_json)
               SELECT $1, $2, $3 + i - 1, t, p FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS e(t, p, i)
               RETURNING created_at""",
            organization_id,
            stream,
            first,
            [t for t, _ in events],
            [p for _, p in events],
        )
        # "<organization> <stream> <last sequence>": a space never appears in a stream name.
        await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, f"{organization_id} {stream} {last}")
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
               FROM events
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
                  coalesce((SELECT min(sequence) FROM events e WHERE e.organization_id = s.organization_id AND e.stream = s.name),
                           s.last_sequence + 1) AS first_sequence
           FROM streams s WHERE s.organization_id = $1 AND s.name = $2""",
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
        """DELETE FROM events WHERE ctid IN (
               SELECT e.ctid FROM events e JOIN streams s ON s.organization_id = e.organization_id AND s.name = e.stream
               WHERE e.sequence <= s.last_sequence - $1 OR e.created_at < now() - make_interval(secs => $2)
               LIMIT $3)""",
        keep_last,
        max_age_seconds,
        batch,
    )
    return int(status.split()[-1])


async def retention_try_lock(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK_KEY))

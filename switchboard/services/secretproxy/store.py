"""Every SQL statement of the secretproxy service (schema ``secretproxy``).

Reads that return metadata never select sealed values or placeholder hashes; the only statement
that reads sealed values is ``forward_snapshot``, scoped to the caller's organisation for
credentials and matched on exact placeholder hashes for secrets (whose organisation the caller
then checks before opening anything).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from switchboard.shared import locks
from switchboard.shared.errors import AlreadyExists

Connection = asyncpg.Connection | asyncpg.Pool
Record = asyncpg.Record

_SECRET_COLUMNS = "id, organization_id, agent_id, name, key_id, created_at, rotated_at"
_CREDENTIAL_COLUMNS = "id, organization_id, provider, priority, key_id, created_at"

# -- secrets --------------------------------------------------------------------------------------


async def secret_insert(
    conn: Connection,
    *,
    secret_id: uuid.UUID,
    organization_id: str,
    agent_id: str | None,
    name: str,
    placeholder_hash: bytes,
    key_id: str,
    sealed_value: bytes,
) -> Record:
    """Raises AlreadyExists SECRET_EXISTS when the name is taken in that scope."""
    try:
        return await conn.fetchrow(
            f"""
            INSERT INTO secretproxy.secrets (id, organization_id, agent_id, name, placeholder_hash, key_id, sealed_value)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING {_SECRET_COLUMNS}
            """,
            secret_id, organization_id, agent_id, name, placeholder_hash, key_id, sealed_value,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != "secrets_name_per_scope":
            raise
        raise AlreadyExists(
            f"the organisation already has a secret named {name!r} in this scope; use RotateSecret to change it",
            reason="SECRET_EXISTS",
        ) from None


async def secret_get(conn: Connection, secret_id: str) -> Record | None:
    return await conn.fetchrow(f"SELECT {_SECRET_COLUMNS} FROM secretproxy.secrets WHERE id = $1", secret_id)


async def secret_rotate(conn: Connection, secret_id: str, organization_id: str, key_id: str, sealed_value: bytes) -> Record | None:
    """None when the secret is gone or is not the organisation's (checked in the same statement,
    so a secret cannot change hands between the caller's check and the write)."""
    return await conn.fetchrow(
        f"""
        UPDATE secretproxy.secrets SET key_id = $3, sealed_value = $4, rotated_at = now()
        WHERE id = $1 AND organization_id = $2
        RETURNING {_SECRET_COLUMNS}
        """,
        secret_id, organization_id, key_id, sealed_value,
    )


async def secret_delete(conn: Connection, secret_id: str, organization_id: str) -> Record | None:
    return await conn.fetchrow(
        f"DELETE FROM secretproxy.secrets WHERE id = $1 AND organization_id = $2 RETURNING {_SECRET_COLUMNS}",
        secret_id, organization_id,
    )


async def secret_list(
    conn: Connection, organization_id: str, agent_id: str | None, *, after: tuple[str, str] | None, limit: int
) -> list[Record]:
    """Ordered by name, then id; ``after`` is the (name, id) of the last row of the previous page."""
    return await conn.fetch(
        f"""
        SELECT {_SECRET_COLUMNS} FROM secretproxy.secrets
        WHERE organization_id = $1
          AND ($2::uuid IS NULL OR agent_id = $2)
          AND ($3::text IS NULL OR (name, id) > ($3, $4::uuid))
        ORDER BY name, id
        LIMIT $5
        """,
        organization_id, agent_id, after[0] if after else None, after[1] if after else None, limit,
    )


# -- provider credentials -------------------------------------------------------------------------


async def credential_insert(
    conn: Connection,
    *,
    credential_id: uuid.UUID,
    organization_id: str,
    provider: str,
    priority: int,
    key_id: str,
    sealed_value: bytes,
) -> Record:
    return await conn.fetchrow(
        f"""
        INSERT INTO secretproxy.provider_credentials (id, organization_id, provider, priority, key_id, sealed_value)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {_CREDENTIAL_COLUMNS}
        """,
        credential_id, organization_id, provider, priority, key_id, sealed_value,
    )


async def credential_get(conn: Connection, credential_id: str) -> Record | None:
    return await conn.fetchrow(f"SELECT {_CREDENTIAL_COLUMNS} FROM secretproxy.provider_credentials WHERE id = $1", credential_id)


async def credential_delete(conn: Connection, credential_id: str, organization_id: str) -> Record | None:
    return await conn.fetchrow(
        f"DELETE FROM secretproxy.provider_credentials WHERE id = $1 AND organization_id = $2 RETURNING {_CREDENTIAL_COLUMNS}",
        credential_id, organization_id,
    )


async def credential_list(
    conn: Connection, organization_id: str, provider: str | None, *, after: tuple[str, int, str] | None, limit: int
) -> list[Record]:
    """Ordered by provider, priority descending, then id; ``after`` is the last row's position."""
    return await conn.fetch(
        f"""
        SELECT {_CREDENTIAL_COLUMNS} FROM secretproxy.provider_credentials
        WHERE organization_id = $1
          AND ($2::text IS NULL OR provider = $2)
          AND ($3::text IS NULL OR (provider, -priority, id) > ($3, -$4::integer, $5::uuid))
        ORDER BY provider, priority DESC, id
        LIMIT $6
        """,
        organization_id, provider, *(after if after else (None, None, None)), limit,
    )


# -- egress policies ------------------------------------------------------------------------------


async def policy_get(conn: Connection, organization_id: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT organization_id, rules, policy_hash, updated_at FROM secretproxy.egress_policies WHERE organization_id = $1",
        organization_id,
    )


async def policy_set(conn: Connection, organization_id: str, rules: Sequence[dict[str, Any]], policy_hash: str) -> Record:
    return await conn.fetchrow(
        """
        INSERT INTO secretproxy.egress_policies (organization_id, rules, policy_hash, updated_at)
        VALUES ($1, $2::jsonb, $3, now())
        ON CONFLICT (organization_id) DO UPDATE
            SET rules = EXCLUDED.rules, policy_hash = EXCLUDED.policy_hash, updated_at = now()
        RETURNING organization_id, rules, policy_hash, updated_at
        """,
        organization_id, json.dumps(list(rules)), policy_hash,
    )


# -- forwarding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedSecret:
    placeholder_hash: bytes
    secret_id: uuid.UUID
    organization_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    key_id: str
    sealed_value: bytes


@dataclass(frozen=True)
class ForwardSnapshot:
    """What one Forward needs from the database, read in one round trip."""

    blocked: bool
    secrets: list[SealedSecret]
    credential: tuple[uuid.UUID, str, bytes] | None  # (id, key id, sealed value)
    policy_hash: str | None


_FORWARD_SNAPSHOT = """
SELECT
    EXISTS (
        SELECT 1 FROM secretproxy.failed_lookups
        WHERE source = ANY($1::text[]) AND failures >= $2
          AND window_started_at > now() - make_interval(secs => $3)
    ) AS blocked,
    s.hashes, s.ids, s.organizations, s.agents, s.key_ids, s.sealed,
    c.id AS credential_id, c.key_id AS credential_key_id, c.sealed_value AS credential_sealed,
    (SELECT policy_hash FROM secretproxy.egress_policies WHERE organization_id = $4) AS policy_hash
FROM (
    SELECT array_agg(placeholder_hash) AS hashes, array_agg(id) AS ids, array_agg(organization_id) AS organizations,
           array_agg(agent_id) AS agents, array_agg(key_id) AS key_ids, array_agg(sealed_value) AS sealed
    FROM secretproxy.secrets WHERE placeholder_hash = ANY($5::bytea[])
) AS s
LEFT JOIN LATERAL (
    SELECT id, key_id, sealed_value FROM secretproxy.provider_credentials
    WHERE organization_id = $4 AND provider = $6
    ORDER BY priority DESC, created_at DESC, id DESC
    LIMIT 1
) AS c ON $7
"""


async def forward_snapshot(
    conn: Connection,
    *,
    sources: Sequence[str],
    failed_lookup_limit: int,
    window_seconds: float,
    organization_id: str,
    placeholder_hashes: Sequence[bytes],
    provider: str,
    want_credential: bool,
) -> ForwardSnapshot:
    """The throttle state of the sources, the secrets whose placeholders were sent (of any
    organisation: the caller refuses foreign ones and counts them as failures), the organisation's
    best credential for the provider (only when wanted) and its policy hash."""
    row = await conn.fetchrow(
        _FORWARD_SNAPSHOT,
        list(sources), failed_lookup_limit, window_seconds, organization_id,
        list(placeholder_hashes), provider, want_credential,
    )
    secrets = [
        SealedSecret(*fields)
        for fields in zip(
            row["hashes"] or (), row["ids"] or (), row["organizations"] or (), row["agents"] or (),
            row["key_ids"] or (), row["sealed"] or (), strict=True,
        )
    ]
    credential = (row["credential_id"], row["credential_key_id"], row["credential_sealed"]) if row["credential_id"] else None
    return ForwardSnapshot(row["blocked"], secrets, credential, row["policy_hash"])


async def record_failed_lookups(conn: Connection, sources: Sequence[str], window_seconds: float) -> None:
    """Count one failed lookup for each source, in fixed windows that restart once expired."""
    await conn.execute(
        """
        INSERT INTO secretproxy.failed_lookups AS f (source, window_started_at, failures)
        SELECT unnest($1::text[]), now(), 1
        ON CONFLICT (source) DO UPDATE SET
            failures = CASE WHEN f.window_started_at <= now() - make_interval(secs => $2) THEN 1 ELSE f.failures + 1 END,
            window_started_at = CASE WHEN f.window_started_at <= now() - make_interval(secs => $2)
                                     THEN now() ELSE f.window_started_at END
        """,
        list(sources), window_seconds,
    )


# -- audit ----------------------------------------------------------------------------------------

AUDIT_COLUMNS = (
    "recorded_at", "organization_id", "agent_id", "upstream", "method", "path", "decision", "reason",
    "status_code", "request_bytes", "response_bytes", "duration_ms", "secret_ids", "credential_id",
)


async def audit_insert(pool: asyncpg.Pool, records: Sequence[tuple]) -> None:
    """Write audit records (tuples in AUDIT_COLUMNS order) with COPY: one round trip per batch."""
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("audit_records", schema_name="secretproxy", columns=AUDIT_COLUMNS, records=records)


async def audit_trim(conn: Connection, retention_seconds: float, batch_size: int) -> int:
    """Delete up to ``batch_size`` of the oldest records older than the retention; the count."""
    result = await conn.execute(
        """
        DELETE FROM secretproxy.audit_records WHERE id IN (
            SELECT id FROM secretproxy.audit_records
            WHERE recorded_at < now() - make_interval(secs => $1)
            ORDER BY recorded_at LIMIT $2
        )
        """,
        retention_seconds, batch_size,
    )
    return int(result.split()[-1])


async def failed_lookups_trim(conn: Connection, window_seconds: float) -> int:
    result = await conn.execute(
        "DELETE FROM secretproxy.failed_lookups WHERE window_started_at <= now() - make_interval(secs => $1)",
        window_seconds,
    )
    return int(result.split()[-1])


async def try_maintenance_lock(conn: asyncpg.Connection) -> bool:
    """Take the maintenance lock (audit and failed-lookup trims) for the current transaction, or
    return False at once."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", locks.SECRETPROXY_MAINTENANCE))

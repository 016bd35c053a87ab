"""Every SQL statement of the identity service, named noun_verb, as plain asyncpg calls.

Constraint violations that callers act on are turned into domain errors here, by constraint name.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from shared.errors import AlreadyExists, FailedPrecondition, NotFound

Connection = asyncpg.Connection | asyncpg.Pool
Record = asyncpg.Record

_ORGANIZATION_COLUMNS = "id, name, slug, visibility, personal_owner_id IS NOT NULL AS personal, created_at"
_MEMBERSHIP_COLUMNS = "organization_id, user_id, role, is_bot, created_at, updated_at"
_AGENT_COLUMNS = "id, organization_id, name, created_at, updated_at"


# -- users -------------------------------------------------------------------------------------


async def user_insert_if_absent(conn: Connection, user_id: str, email: str, display_name: str) -> Record | None:
    """Insert a user unless the email is taken; None when it was (the other insert committed)."""
    return await conn.fetchrow(
        """INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)
           ON CONFLICT (email) DO NOTHING
           RETURNING id, email, display_name, created_at""",
        user_id,
        email,
        display_name,
    )


async def user_insert(conn: Connection, user_id: str, email: str, display_name: str) -> Record:
    return await conn.fetchrow(
        "INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3) RETURNING id, email, display_name, created_at",
        user_id,
        email,
        display_name,
    )


async def user_get_by_email(conn: Connection, email: str) -> Record | None:
    return await conn.fetchrow("SELECT id, email, display_name, created_at FROM users WHERE email = $1", email)


async def user_exists(conn: Connection, user_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id))


# -- organisations -----------------------------------------------------------------------------


async def organization_slugs_like(conn: Connection, base: str) -> list[str]:
    """Slugs equal to ``base`` or ``base-<n>``: what a new slug derived from ``base`` must avoid."""
    rows = await conn.fetch(
        "SELECT slug FROM organizations WHERE slug = $1 OR slug ~ ('^' || $1 || '-[0-9]+$')",
        base,
    )
    return [row["slug"] for row in rows]


async def organization_insert(
    conn: Connection, organization_id: str, name: str, slug: str, visibility: str, personal_owner_id: str | None
) -> Record:
    """Insert an organisation. Raises AlreadyExists when the slug is taken."""
    try:
        return await conn.fetchrow(
            f"""INSERT INTO organizations (id, name, slug, visibility, personal_owner_id)
                VALUES ($1, $2, $3, $4, $5) RETURNING {_ORGANIZATION_COLUMNS}""",
            organization_id,
            name,
            slug,
            visibility,
            personal_owner_id,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "organizations_slug_key":
            raise AlreadyExists(f"the slug {slug!r} is taken", reason="SLUG_TAKEN", metadata={"slug": slug}) from None
        raise


async def organization_get(conn: Connection, organization_id: str, *, for_update: bool = False) -> Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1{lock}", organization_id)


async def organization_get_personal(conn: Connection, user_id: str) -> Record | None:
    return await conn.fetchrow(f"SELECT {_ORGANIZATION_COLUMNS} FROM organizations WHERE personal_owner_id = $1", user_id)


# -- memberships -------------------------------------------------------------------------------


async def membership_insert(conn: Connection, organization_id: str, user_id: str, role: str) -> Record:
    """Insert a (human) membership. Raises AlreadyExists when the user is already a member."""
    try:
        return await conn.fetchrow(
            f"""INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)
                RETURNING {_MEMBERSHIP_COLUMNS}""",
            organization_id,
            user_id,
            role,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "memberships_pkey":
            raise AlreadyExists(
                f"user {user_id} is already a member of organization {organization_id}; use ChangeRole",
                reason="ALREADY_A_MEMBER",
            ) from None
        raise


async def membership_get(conn: Connection, organization_id: str, user_id: str) -> Record | None:
    return await conn.fetchrow(
        f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships WHERE organization_id = $1 AND user_id = $2",
        organization_id,
        user_id,
    )


async def membership_role(conn: Connection, organization_id: str, user_id: str) -> str | None:
    return await conn.fetchval(
        "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2", organization_id, user_id
    )


async def membership_count_owners(conn: Connection, organization_id: str) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM memberships WHERE organization_id = $1 AND role = 'owner'", organization_id
    )


async def membership_delete(conn: Connection, organization_id: str, user_id: str) -> Record | None:
    return await conn.fetchrow(
        f"DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2 RETURNING {_MEMBERSHIP_COLUMNS}",
        organization_id,
        user_id,
    )


async def membership_set_role(conn: Connection, organization_id: str, user_id: str, role: str) -> Record | None:
    try:
        return await conn.fetchrow(
            f"""UPDATE memberships SET role = $3, updated_at = now()
                WHERE organization_id = $1 AND user_id = $2 RETURNING {_MEMBERSHIP_COLUMNS}""",
            organization_id,
            user_id,
            role,
        )
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == "memberships_bot_is_member":
            raise FailedPrecondition("a support bot's role is always member", reason="BOT_ROLE_FIXED") from None
        raise


async def membership_list(
    conn: Connection,
    organization_id: str,
    *,
    include_bots: bool,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Record]:
    """Memberships in (created_at, user_id) order, after the given position."""
    return await conn.fetch(
        f"""SELECT {_MEMBERSHIP_COLUMNS} FROM memberships
            WHERE organization_id = $1
              AND ($2 OR NOT is_bot)
              AND ($3::timestamptz IS NULL OR (created_at, user_id) > ($3, $4::uuid))
            ORDER BY created_at, user_id
            LIMIT $5""",
        organization_id,
        include_bots,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


# -- support bots ------------------------------------------------------------------------------


async def bot_get(conn: Connection, organization_id: str) -> str | None:
    """The organisation's bot user id, if it has a bot."""
    value = await conn.fetchval(
        "SELECT user_id FROM memberships WHERE organization_id = $1 AND is_bot", organization_id
    )
    return str(value) if value else None


async def bot_membership_insert_if_absent(conn: Connection, organization_id: str, user_id: str) -> bool:
    """Insert the bot membership unless the organisation has a bot already (the partial unique
    index decides, waiting for a concurrent insert to commit or roll back). True when inserted.
    Raises NotFound when the organisation was deleted meanwhile."""
    try:
        inserted = await conn.fetchval(
            """INSERT INTO memberships (organization_id, user_id, role, is_bot) VALUES ($1, $2, 'member', true)
               ON CONFLICT (organization_id) WHERE is_bot DO NOTHING
               RETURNING true""",
            organization_id,
            user_id,
        )
    except asyncpg.ForeignKeyViolationError:
        raise NotFound(f"organization {organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND") from None
    return bool(inserted)


# -- agents ------------------------------------------------------------------------------------


async def agent_insert(conn: Connection, organization_id: str, name: str) -> Record:
    return await conn.fetchrow(
        f"INSERT INTO agents (id, organization_id, name) VALUES ($1, $2, $3) RETURNING {_AGENT_COLUMNS}",
        str(uuid.uuid4()),
        organization_id,
        name,
    )


async def agent_get(conn: Connection, agent_id: str) -> Record | None:
    return await conn.fetchrow(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = $1", agent_id)


async def agent_list(conn: Connection, organization_id: str, *, after: tuple[datetime, str] | None, limit: int) -> list[Record]:
    return await conn.fetch(
        f"""SELECT {_AGENT_COLUMNS} FROM agents
            WHERE organization_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
            ORDER BY created_at, id LIMIT $4""",
        organization_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


# -- worker tokens -----------------------------------------------------------------------------


async def worker_token_insert(
    conn: Connection,
    token_id: str,
    organization_id: str,
    agent_id: str,
    connection_id: str | None,
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO worker_tokens (id, organization_id, agent_id, connection_id, issued_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        token_id,
        organization_id,
        agent_id,
        connection_id,
        issued_at,
        expires_at,
    )


async def worker_token_get(conn: Connection, token_id: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT id, organization_id, agent_id, expires_at, revoked_at FROM worker_tokens WHERE id = $1", token_id
    )


async def worker_token_revoke(conn: Connection, token_id: str) -> datetime | None:
    """Mark an unexpired, unrevoked token revoked; its revocation time, or None if nothing changed."""
    return await conn.fetchval(
        """UPDATE worker_tokens SET revoked_at = now()
           WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()
           RETURNING revoked_at""",
        token_id,
    )


async def worker_token_list_revoked(
    conn: Connection, *, since: datetime | None, after: tuple[datetime, str] | None, limit: int
) -> list[Record]:
    """Revoked tokens that have not expired, in (revoked_at, id) order."""
    return await conn.fetch(
        """SELECT id, revoked_at, expires_at FROM worker_tokens
           WHERE revoked_at IS NOT NULL AND expires_at > now()
             AND ($1::timestamptz IS NULL OR revoked_at >= $1)
             AND ($2::timestamptz IS NULL OR (revoked_at, id) > ($2, $3::uuid))
           ORDER BY revoked_at, id LIMIT $4""",
        since,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )

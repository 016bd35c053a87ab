"""Every SQL statement of the identity service, named noun_verb, as plain asyncpg calls.

Constraint violations that callers act on are turned into domain errors here, by constraint name.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import datetime

import asyncpg

from switchboard.shared.errors import AlreadyExists, FailedPrecondition, NotFound

Connection = asyncpg.Connection | asyncpg.Pool
Record = asyncpg.Record

_ORGANIZATION_COLUMNS = "id, name, slug, visibility, personal_owner_id IS NOT NULL AS personal, created_at"
_MEMBERSHIP_COLUMNS = "organization_id, user_id, role, is_bot, created_at, updated_at"
_AGENT_COLUMNS = "id, organization_id, name, created_at, updated_at, template_agent_id, source_organization_id"


# -- users -------------------------------------------------------------------------------------


async def user_insert_if_absent(conn: Connection, user_id: str, email: str, display_name: str) -> Record | None:
    """Insert a user unless the email is taken; None when it was (the other insert committed)."""
    return await conn.fetchrow(
        """INSERT INTO identity.users (id, email, display_name) VALUES ($1, $2, $3)
           ON CONFLICT (email) DO NOTHING
           RETURNING id, email, display_name, created_at""",
        user_id,
        email,
        display_name,
    )


async def user_insert(conn: Connection, user_id: str, email: str, display_name: str) -> Record:
    return await conn.fetchrow(
        "INSERT INTO identity.users (id, email, display_name) VALUES ($1, $2, $3) RETURNING id, email, display_name, created_at",
        user_id,
        email,
        display_name,
    )


async def user_get_by_email(conn: Connection, email: str) -> Record | None:
    return await conn.fetchrow("SELECT id, email, display_name, created_at FROM identity.users WHERE email = $1", email)


async def user_exists(conn: Connection, user_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM identity.users WHERE id = $1)", user_id))


# -- organisations -----------------------------------------------------------------------------


async def organization_slugs_like(conn: Connection, base: str) -> list[str]:
    """Slugs equal to ``base`` or ``base-<n>``: what a new slug derived from ``base`` must avoid."""
    rows = await conn.fetch(
        "SELECT slug FROM identity.organizations WHERE slug = $1 OR slug ~ ('^' || $1 || '-[0-9]+$')",
        base,
    )
    return [row["slug"] for row in rows]


async def organization_insert(
    conn: Connection, organization_id: str, name: str, slug: str, visibility: str, personal_owner_id: str | None
) -> Record:
    """Insert an organisation. Raises AlreadyExists when the slug is taken."""
    try:
        return await conn.fetchrow(
            f"""INSERT INTO identity.organizations (id, name, slug, visibility, personal_owner_id)
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


async def organization_get(conn: Connection, organization_id: str) -> Record | None:
    return await conn.fetchrow(f"SELECT {_ORGANIZATION_COLUMNS} FROM identity.organizations WHERE id = $1", organization_id)


async def organization_lock(conn: Connection, organization_id: str) -> None:
    """Lock the organisation's row for the transaction. NO KEY UPDATE: foreign-key inserts that
    reference the row (agents, memberships, schema objects) are not blocked by it."""
    await conn.execute("SELECT 1 FROM identity.organizations WHERE id = $1 FOR NO KEY UPDATE", organization_id)


async def organization_get_personal(conn: Connection, user_id: str) -> Record | None:
    return await conn.fetchrow(f"SELECT {_ORGANIZATION_COLUMNS} FROM identity.organizations WHERE personal_owner_id = $1", user_id)


# -- memberships -------------------------------------------------------------------------------


async def membership_insert(conn: Connection, organization_id: str, user_id: str, role: str) -> Record:
    """Insert a (human) membership. Raises AlreadyExists when the user is already a member."""
    try:
        return await conn.fetchrow(
            f"""INSERT INTO identity.memberships (organization_id, user_id, role) VALUES ($1, $2, $3)
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
        f"SELECT {_MEMBERSHIP_COLUMNS} FROM identity.memberships WHERE organization_id = $1 AND user_id = $2",
        organization_id,
        user_id,
    )


async def membership_role(conn: Connection, organization_id: str, user_id: str) -> str | None:
    return await conn.fetchval(
        "SELECT role FROM identity.memberships WHERE organization_id = $1 AND user_id = $2", organization_id, user_id
    )


async def membership_count_owners(conn: Connection, organization_id: str) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM identity.memberships WHERE organization_id = $1 AND role = 'owner'", organization_id
    )


async def membership_delete(conn: Connection, organization_id: str, user_id: str) -> Record | None:
    return await conn.fetchrow(
        f"DELETE FROM identity.memberships WHERE organization_id = $1 AND user_id = $2 RETURNING {_MEMBERSHIP_COLUMNS}",
        organization_id,
        user_id,
    )


async def membership_set_role(conn: Connection, organization_id: str, user_id: str, role: str) -> Record | None:
    try:
        return await conn.fetchrow(
            f"""UPDATE identity.memberships SET role = $3, updated_at = now()
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
        f"""SELECT {_MEMBERSHIP_COLUMNS} FROM identity.memberships
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
        "SELECT user_id FROM identity.memberships WHERE organization_id = $1 AND is_bot", organization_id
    )
    return str(value) if value else None


async def bot_membership_insert_if_absent(conn: Connection, organization_id: str, user_id: str) -> bool:
    """Insert the bot membership unless the organisation has a bot already (the partial unique
    index decides, waiting for a concurrent insert to commit or roll back). True when inserted.
    Raises NotFound when the organisation was deleted meanwhile."""
    try:
        inserted = await conn.fetchval(
            """INSERT INTO identity.memberships (organization_id, user_id, role, is_bot) VALUES ($1, $2, 'member', true)
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
        f"INSERT INTO identity.agents (id, organization_id, name) VALUES ($1, $2, $3) RETURNING {_AGENT_COLUMNS}",
        str(uuid.uuid4()),
        organization_id,
        name,
    )


async def agent_get(conn: Connection, agent_id: str) -> Record | None:
    return await conn.fetchrow(f"SELECT {_AGENT_COLUMNS} FROM identity.agents WHERE id = $1", agent_id)


async def agent_list(conn: Connection, organization_id: str, *, after: tuple[datetime, str] | None, limit: int) -> list[Record]:
    return await conn.fetch(
        f"""SELECT {_AGENT_COLUMNS} FROM identity.agents
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
        """INSERT INTO identity.worker_tokens (id, organization_id, agent_id, connection_id, issued_at, expires_at)
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
        "SELECT id, organization_id, agent_id, expires_at, revoked_at FROM identity.worker_tokens WHERE id = $1", token_id
    )


async def worker_token_revoke(conn: Connection, token_id: str) -> datetime | None:
    """Mark an unexpired, unrevoked token revoked; its revocation time, or None if nothing changed."""
    return await conn.fetchval(
        """UPDATE identity.worker_tokens SET revoked_at = now()
           WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()
           RETURNING revoked_at""",
        token_id,
    )


async def worker_token_list_revoked(
    conn: Connection, *, since: datetime | None, after: tuple[datetime, str] | None, limit: int
) -> list[Record]:
    """Revoked tokens that have not expired, in (revoked_at, id) order."""
    return await conn.fetch(
        """SELECT id, revoked_at, expires_at FROM identity.worker_tokens
           WHERE revoked_at IS NOT NULL AND expires_at > now() - interval '1 minute'  -- verifiers' leeway
             AND ($1::timestamptz IS NULL OR revoked_at >= $1)
             AND ($2::timestamptz IS NULL OR (revoked_at, id) > ($2, $3::uuid))
           ORDER BY revoked_at, id LIMIT $4""",
        since,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


# -- installed agents --------------------------------------------------------------------------


async def agent_insert_installed(
    conn: Connection, organization_id: str, name: str, template_agent_id: str, source_organization_id: str
) -> Record | None:
    """Insert the installed copy of a template; None when the organisation has it already (the
    unique constraint decides, after a concurrent installer's transaction ends)."""
    return await conn.fetchrow(
        f"""INSERT INTO identity.agents (id, organization_id, name, template_agent_id, source_organization_id)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT ON CONSTRAINT agents_one_install_per_organization DO NOTHING
            RETURNING {_AGENT_COLUMNS}""",
        str(uuid.uuid4()),
        organization_id,
        name,
        template_agent_id,
        source_organization_id,
    )


async def agent_get_installed(conn: Connection, template_agent_id: str, organization_id: str) -> Record | None:
    return await conn.fetchrow(
        f"SELECT {_AGENT_COLUMNS} FROM identity.agents WHERE template_agent_id = $1 AND organization_id = $2",
        template_agent_id,
        organization_id,
    )


async def agent_lock(conn: Connection, agent_id: str) -> Record | None:
    """The agent, locked for the transaction (resync and uninstall of one agent take turns)."""
    return await conn.fetchrow(
        f"SELECT {_AGENT_COLUMNS} FROM identity.agents WHERE id = $1 FOR UPDATE",
        agent_id,
    )


async def worker_tokens_revoke_for_agent(conn: Connection, agent_id: str) -> int:
    """Revoke every unexpired token of an agent (it is going away); how many."""
    status = await conn.execute(
        "UPDATE identity.worker_tokens SET revoked_at = now() WHERE agent_id = $1 AND revoked_at IS NULL AND expires_at > now()",
        agent_id,
    )
    return int(status.split()[-1])


async def agent_delete(conn: Connection, agent_id: str) -> None:
    """Raises FailedPrecondition while user-authored objects still belong to the agent."""
    with _refused_while_user_objects_remain(agent_id):
        await conn.execute("DELETE FROM identity.agents WHERE id = $1", agent_id)


@contextlib.contextmanager
def _refused_while_user_objects_remain(agent_id: str) -> Iterator[None]:
    """An uninstall step refused by a foreign key: a user-authored object still needs what it deletes."""
    try:
        yield
    except asyncpg.ForeignKeyViolationError:
        raise FailedPrecondition(
            f"agent {agent_id} still has user-authored objects (or they point at its watchers); "
            "archive or move them before uninstalling",
            reason="USER_OBJECTS_REMAIN",
        ) from None


# -- schema objects ----------------------------------------------------------------------------
# Entity types, relationship types, watchers and event classifiers share their shape; the table is
# chosen from this fixed map, never from input.

OBJECT_TABLES = {
    "entity_type": "identity.entity_types",
    "relationship_type": "identity.relationship_types",
    "watcher": "identity.watchers",
    "event_classifier": "identity.event_classifiers",
}
_OBJECT_COLUMNS = {
    "entity_type": ("name", "description", "schema_json"),
    "relationship_type": ("name", "description", "schema_json"),
    "watcher": ("name", "current_version_id"),
    "event_classifier": ("name", "description", "watcher_id", "definition_json"),
}
_PROVENANCE = ("template_agent_id", "source_organization_id", "source_object_id")
_WATCHER_SELECT = """SELECT w.*, v.id AS v_id, v.version AS v_version, v.prompt AS v_prompt,
                            v.schema_json AS v_schema_json, v.reaction_script AS v_reaction_script,
                            v.template_agent_id AS v_template_agent_id,
                            v.source_organization_id AS v_source_organization_id,
                            v.source_object_id AS v_source_object_id, v.created_at AS v_created_at
                     FROM identity.watchers w LEFT JOIN identity.watcher_versions v ON v.id = w.current_version_id"""


def _select(kind: str) -> str:
    return _WATCHER_SELECT if kind == "watcher" else f"SELECT * FROM {OBJECT_TABLES[kind]} w"


async def object_get(conn: Connection, kind: str, object_id: str) -> Record | None:
    return await conn.fetchrow(f"{_select(kind)} WHERE w.id = $1", object_id)


async def object_get_by_slug(conn: Connection, kind: str, organization_id: str, slug: str) -> Record | None:
    return await conn.fetchrow(f"{_select(kind)} WHERE w.organization_id = $1 AND w.slug = $2", organization_id, slug)


async def object_list(
    conn: Connection,
    kind: str,
    organization_id: str,
    *,
    agent_id: str | None,
    include_archived: bool,
    after_slug: str | None,
    limit: int,
) -> list[Record]:
    """An organisation's objects of one kind in slug order, after the given slug."""
    return await conn.fetch(
        f"""{_select(kind)}
            WHERE w.organization_id = $1 AND ($2::uuid IS NULL OR w.agent_id = $2)
              AND ($3 OR w.status = 'active') AND ($4::text IS NULL OR w.slug > $4)
            ORDER BY w.slug LIMIT $5""",
        organization_id,
        agent_id,
        include_archived,
        after_slug,
        limit,
    )


async def object_insert_if_slug_free(conn: Connection, kind: str, values: dict[str, object]) -> str | None:
    """Insert an object; its id, or None when the organisation has that slug already (any status)."""
    allowed = {"id", "organization_id", "agent_id", "slug", *_OBJECT_COLUMNS[kind], *_PROVENANCE}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"not columns of {kind}: {sorted(unknown)}")
    columns = list(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    inserted = await conn.fetchval(
        f"""INSERT INTO {OBJECT_TABLES[kind]} ({", ".join(columns)}) VALUES ({placeholders})
            ON CONFLICT (organization_id, slug) DO NOTHING RETURNING id""",
        *values.values(),
    )
    return str(inserted) if inserted else None


async def object_update(conn: Connection, kind: str, object_id: str, changes: dict[str, object]) -> None:
    """Set the given columns (of the kind's updatable ones), and updated_at."""
    unknown = set(changes) - {*_OBJECT_COLUMNS[kind], "status"}
    if unknown:
        raise ValueError(f"not updatable columns of {kind}: {sorted(unknown)}")
    if not changes:
        return
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=2))
    await conn.execute(
        f"UPDATE {OBJECT_TABLES[kind]} SET {assignments}, updated_at = now() WHERE id = $1",
        object_id,
        *changes.values(),
    )


async def objects_of_agent(conn: Connection, kind: str, agent_id: str, *, active_only: bool) -> list[Record]:
    return await conn.fetch(
        f"{_select(kind)} WHERE w.agent_id = $1 AND (NOT $2 OR w.status = 'active') ORDER BY w.slug",
        agent_id,
        active_only,
    )


async def objects_count_managed(conn: Connection, kind: str, agent_id: str) -> int:
    return await conn.fetchval(
        f"SELECT count(*) FROM {OBJECT_TABLES[kind]} WHERE agent_id = $1 AND template_agent_id IS NOT NULL", agent_id
    )


async def objects_delete_managed(conn: Connection, kind: str, agent_id: str) -> int:
    """Delete the agent's managed objects of one kind (their watcher versions go with them).
    Raises FailedPrecondition while a user-authored object points at one of them."""
    if kind == "watcher":
        # Break the watcher → current version link first; the versions then go by cascade.
        await conn.execute(
            "UPDATE identity.watchers SET current_version_id = NULL WHERE agent_id = $1 AND template_agent_id IS NOT NULL", agent_id
        )
    with _refused_while_user_objects_remain(agent_id):
        status = await conn.execute(
            f"DELETE FROM {OBJECT_TABLES[kind]} WHERE agent_id = $1 AND template_agent_id IS NOT NULL", agent_id
        )
    return int(status.split()[-1])


# -- watcher versions --------------------------------------------------------------------------


async def watcher_version_append(
    conn: Connection,
    watcher_id: str,
    prompt: str,
    schema_json: str,
    reaction_script: str,
    provenance: tuple[str, str, str] | None = None,
) -> str:
    """Append the next version of a watcher and make it current; its id. Concurrent appends to one
    watcher are serialised by the row lock that the pointer update takes (and the unique version
    number would refuse a duplicate)."""
    version_id = str(uuid.uuid4())
    await conn.execute("SELECT 1 FROM identity.watchers WHERE id = $1 FOR UPDATE", watcher_id)
    await conn.execute(
        """INSERT INTO identity.watcher_versions (id, watcher_id, version, prompt, schema_json, reaction_script,
                                         template_agent_id, source_organization_id, source_object_id)
           SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7, $8
           FROM identity.watcher_versions WHERE watcher_id = $2""",
        version_id,
        watcher_id,
        prompt,
        schema_json,
        reaction_script,
        *(provenance or (None, None, None)),
    )
    await conn.execute("UPDATE identity.watchers SET current_version_id = $2, updated_at = now() WHERE id = $1", watcher_id, version_id)
    return version_id


async def watcher_version_get(conn: Connection, version_id: str) -> Record | None:
    return await conn.fetchrow(
        """SELECT v.*, w.organization_id FROM identity.watcher_versions v JOIN identity.watchers w ON w.id = v.watcher_id WHERE v.id = $1""",
        version_id,
    )


async def watcher_version_list(conn: Connection, watcher_id: str, *, after_version: int | None, limit: int) -> list[Record]:
    return await conn.fetch(
        """SELECT * FROM identity.watcher_versions WHERE watcher_id = $1 AND ($2::int IS NULL OR version > $2)
           ORDER BY version LIMIT $3""",
        watcher_id,
        after_version,
        limit,
    )

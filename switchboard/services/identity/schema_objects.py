"""Agents' schema objects: create, read, update, archive and list entity types, relationship
types, watchers (with their append-only versions) and event classifiers.

Objects mirrored from a template are managed: only ResyncInstalledAgent and UninstallAgent change
them. Reads are for members of the object's organisation; writes for its owners and admins. An
object the caller cannot read is NOT_FOUND, whatever the reason.
"""

from __future__ import annotations

import re
import uuid

import asyncpg

from switchboard.services.identity import access, store
from switchboard.shared.auth import Principal
from switchboard.shared.errors import AlreadyExists, FailedPrecondition, NotFound
from switchboard.shared.validation import Violations

KIND_NAMES = {
    "entity_type": "entity type",
    "relationship_type": "relationship type",
    "watcher": "watcher",
    "event_classifier": "event classifier",
}
SLUG = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
MAX_NAME = 100
MAX_DESCRIPTION = 2000
MAX_DOCUMENT = 256 * 1024
MAX_PROMPT = 100_000


def slug(v: Violations, field: str, value: str) -> str:
    if not SLUG.match(value):
        v.add(field, "must be 1 to 63 characters: a lower-case letter, then lower-case letters, digits or '_'")
    return value


def json_object(v: Violations, field: str, value: str, *, required: bool = True) -> str:
    """A JSON Schema or definition: a JSON object of at most 256 KiB."""
    return v.json_object(field, value, max_bytes=MAX_DOCUMENT, required=required)


def owner_of(row: store.Record) -> str:
    """Who owns an object, for messages: user-authored, or the template that manages it."""
    if row["template_agent_id"] is None:
        return "user-authored"
    return f"managed by template agent {row['template_agent_id']}"


def describe(kind: str, row: store.Record) -> str:
    archived = ", archived" if row["status"] == "archived" else ""
    return f"{KIND_NAMES[kind]} {row['slug']!r} ({owner_of(row)}{archived})"


async def readable(conn: store.Connection, principal: Principal, kind: str, object_id: str) -> store.Record:
    """The object, if the caller may read it; NotFound otherwise."""
    row = await store.object_get(conn, kind, object_id)
    if row is None or await access.standing(conn, principal, str(row["organization_id"])) == "none":
        raise NotFound(f"{KIND_NAMES[kind]} {object_id} does not exist", reason="OBJECT_NOT_FOUND")
    return row


async def writable(conn: store.Connection, principal: Principal, kind: str, object_id: str, *, active: bool) -> store.Record:
    """The object, if the caller may change it: an owner or admin, a user-authored object, and
    (when ``active``) not archived."""
    row = await readable(conn, principal, kind, object_id)
    await access.require_manager(conn, principal, str(row["organization_id"]))
    if row["template_agent_id"] is not None:
        raise FailedPrecondition(
            f"{describe(kind, row)} is managed by its template; it changes through ResyncInstalledAgent only",
            reason="MANAGED_OBJECT",
        )
    if active and row["status"] == "archived":
        raise FailedPrecondition(f"{describe(kind, row)} is archived", reason="ARCHIVED_OBJECT")
    return row


async def require_agent_in(conn: store.Connection, organization_id: str, agent_id: str) -> None:
    agent = await store.agent_get(conn, agent_id)
    if agent is None or str(agent["organization_id"]) != organization_id:
        raise NotFound(f"agent {agent_id} does not exist in organization {organization_id}", reason="AGENT_NOT_FOUND")


async def require_watcher_in(conn: store.Connection, organization_id: str, watcher_id: str) -> None:
    row = await store.object_get(conn, "watcher", watcher_id)
    if row is None or str(row["organization_id"]) != organization_id:
        raise NotFound(f"watcher {watcher_id} does not exist in organization {organization_id}", reason="WATCHER_NOT_FOUND")


async def create(
    pool: asyncpg.Pool,
    principal: Principal,
    kind: str,
    organization_id: str,
    agent_id: str,
    values: dict[str, object],
    first_version: tuple[str, str, str] | None = None,
) -> store.Record:
    """A new user-authored object (for a watcher, with ``first_version`` as version 1)."""
    async with pool.acquire() as conn, conn.transaction():
        if await store.organization_get(conn, organization_id) is None:
            raise NotFound(f"organization {organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND")
        await access.require_manager(conn, principal, organization_id)
        await require_agent_in(conn, organization_id, agent_id)
        if values.get("watcher_id"):
            await require_watcher_in(conn, organization_id, str(values["watcher_id"]))
        object_id = await store.object_insert_if_slug_free(
            conn, kind, {"id": str(uuid.uuid4()), "organization_id": organization_id, "agent_id": agent_id, **values}
        )
        if object_id is None:
            existing = await store.object_get_by_slug(conn, kind, organization_id, str(values["slug"]))
            assert existing is not None
            raise AlreadyExists(f"the organisation already has {describe(kind, existing)}", reason="SLUG_TAKEN")
        if first_version is not None:
            await store.watcher_version_append(conn, object_id, *first_version)
        row = await store.object_get(conn, kind, object_id)
        assert row is not None
        return row


async def update(
    pool: asyncpg.Pool, principal: Principal, kind: str, object_id: str, changes: dict[str, object]
) -> store.Record:
    async with pool.acquire() as conn, conn.transaction():
        row = await writable(conn, principal, kind, object_id, active=True)
        if changes.get("watcher_id"):
            await require_watcher_in(conn, str(row["organization_id"]), str(changes["watcher_id"]))
        await store.object_update(conn, kind, object_id, changes)
        updated = await store.object_get(conn, kind, object_id)
        assert updated is not None
        return updated


async def update_watcher(
    pool: asyncpg.Pool,
    principal: Principal,
    watcher_id: str,
    name: str | None,
    prompt: str | None,
    schema_json: str | None,
    reaction_script: str | None,
) -> tuple[store.Record, bool]:
    """Rename and/or append a version (unset parts copied from the current one); no version when
    the content would not change. Returns the watcher and whether a version was appended."""
    async with pool.acquire() as conn, conn.transaction():
        row = await writable(conn, principal, "watcher", watcher_id, active=True)
        if name is not None:
            await store.object_update(conn, "watcher", watcher_id, {"name": name})
        current = (row["v_prompt"], row["v_schema_json"], row["v_reaction_script"])
        wanted = (
            current[0] if prompt is None else prompt,
            current[1] if schema_json is None else schema_json,
            current[2] if reaction_script is None else reaction_script,
        )
        appended = wanted != current
        if appended:
            await store.watcher_version_append(conn, watcher_id, *wanted)
        updated = await store.object_get(conn, "watcher", watcher_id)
        assert updated is not None
        return updated, appended


async def archive(pool: asyncpg.Pool, principal: Principal, kind: str, object_id: str) -> store.Record:
    async with pool.acquire() as conn, conn.transaction():
        await writable(conn, principal, kind, object_id, active=False)
        await store.object_update(conn, kind, object_id, {"status": "archived"})
        archived = await store.object_get(conn, kind, object_id)
        assert archived is not None
        return archived


async def list_objects(
    pool: asyncpg.Pool,
    principal: Principal,
    kind: str,
    organization_id: str,
    *,
    agent_id: str | None,
    include_archived: bool,
    after_slug: str | None,
    limit: int,
) -> list[store.Record]:
    if await store.organization_get(pool, organization_id) is None or await access.standing(pool, principal, organization_id) == "none":
        raise NotFound(f"organization {organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND")
    return await store.object_list(
        pool, kind, organization_id, agent_id=agent_id, include_archived=include_archived, after_slug=after_slug, limit=limit
    )

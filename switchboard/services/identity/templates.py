"""Installing agents from templates by mirroring their schema objects, resyncing, uninstalling.

Install is idempotent and atomic: the unique constraint agents_one_install_per_organization makes
concurrent installs converge on one agent (the others wait for the winner's transaction and then
find its row), and the whole mirror is written in the transaction that creates the agent, so a
collision anywhere leaves nothing behind. Resync appends watcher versions, never rewrites them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from switchboard.services.identity import access, store
from switchboard.services.identity.schema_objects import KIND_NAMES, describe
from switchboard.shared.auth import Principal
from switchboard.shared.errors import FailedPrecondition, NotFound

# Watchers before classifiers: a mirrored classifier points at the mirrored watcher.
KINDS = ("entity_type", "relationship_type", "watcher", "event_classifier")
_FIELDS = {
    "entity_type": ("name", "description", "schema_json"),
    "relationship_type": ("name", "description", "schema_json"),
    "watcher": ("name",),
    "event_classifier": ("name", "description", "definition_json"),
}


@dataclass
class ResyncReport:
    created: Counter = field(default_factory=Counter)
    updated: Counter = field(default_factory=Counter)
    archived: Counter = field(default_factory=Counter)
    watcher_versions_created: int = 0


async def install(
    pool: asyncpg.Pool, principal: Principal, template_agent_id: str, target_organization_id: str
) -> tuple[store.Record, bool, dict[str, int]]:
    """The installed agent, whether this call created it, and the managed objects per kind."""
    template = await store.agent_get(pool, template_agent_id)
    if template is None:
        raise NotFound(f"template agent {template_agent_id} does not exist", reason="TEMPLATE_NOT_FOUND")
    source_organization_id = str(template["organization_id"])
    source = await store.organization_get(pool, source_organization_id)
    private = source is None or source["visibility"] != "public"
    if private and await access.standing(pool, principal, source_organization_id) == "none":
        # A private organisation's agent is none of an outsider's business: as if it were not there.
        raise NotFound(f"template agent {template_agent_id} does not exist", reason="TEMPLATE_NOT_FOUND")
    if template["template_agent_id"] is not None:
        raise FailedPrecondition(
            f"agent {template_agent_id} is itself installed from template {template['template_agent_id']}; install that one",
            reason="TEMPLATE_IS_A_COPY",
        )
    if private:
        raise FailedPrecondition(
            f"agent {template_agent_id} is not a template: its organisation is not public", reason="TEMPLATE_NOT_PUBLIC"
        )
    if await store.organization_get(pool, target_organization_id) is None:
        raise NotFound(f"organization {target_organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND")
    if target_organization_id == source_organization_id:
        raise FailedPrecondition("a template cannot be installed into its own organisation", reason="SAME_ORGANIZATION")
    await access.require_manager(pool, principal, target_organization_id)

    existing = await store.agent_get_installed(pool, template_agent_id, target_organization_id)
    if existing is None:
        async with pool.acquire() as conn, conn.transaction():
            agent = await store.agent_insert_installed(
                conn, target_organization_id, template["name"], template_agent_id, source_organization_id
            )
            if agent is not None:
                watchers: dict[str, str | None] = {}
                for kind in KINDS:
                    for row in await store.objects_of_agent(conn, kind, template_agent_id, active_only=True):
                        mirrored = await _mirror(conn, kind, agent, row, watchers)
                        if kind == "watcher":
                            watchers[str(row["id"])] = mirrored
        if agent is not None:
            return agent, True, await managed_counts(pool, str(agent["id"]))
        # Another install won the race; its transaction has committed (or we would still wait).
        existing = await store.agent_get_installed(pool, template_agent_id, target_organization_id)
        assert existing is not None
    return existing, False, await managed_counts(pool, str(existing["id"]))


async def _mirror(
    conn: asyncpg.Connection, kind: str, agent: store.Record, source: store.Record, watchers: dict[str, str | None]
) -> str:
    """Copy one template object into the installed agent's organisation, tagged with provenance.
    Raises FailedPrecondition (rolling the whole install or resync back) on a slug that the
    organisation already uses for a user-authored object or another template's."""
    values: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "organization_id": str(agent["organization_id"]),
        "agent_id": str(agent["id"]),
        "slug": source["slug"],
        "template_agent_id": str(agent["template_agent_id"]),
        "source_organization_id": str(agent["source_organization_id"]),
        "source_object_id": str(source["id"]),
        **{name: source[name] for name in _FIELDS[kind]},
    }
    if kind == "event_classifier":
        values["watcher_id"] = watchers.get(str(source["watcher_id"])) if source["watcher_id"] else None
    object_id = await store.object_insert_if_slug_free(conn, kind, values)
    if object_id is None:
        existing = await store.object_get_by_slug(conn, kind, str(agent["organization_id"]), source["slug"])
        assert existing is not None
        raise FailedPrecondition(
            f"cannot mirror {KIND_NAMES[kind]} {source['slug']!r}: the organisation already has {describe(kind, existing)}; "
            "rename or remove it first (nothing was installed)",
            reason="SLUG_COLLISION",
            metadata={"kind": kind, "slug": source["slug"], "owner": "user" if existing["template_agent_id"] is None else "template"},
        )
    if kind == "watcher" and source["v_id"] is not None:
        await _append_version_from(conn, object_id, agent, source)
    return object_id


async def _append_version_from(conn: asyncpg.Connection, watcher_id: str, agent: store.Record, source: store.Record) -> None:
    await store.watcher_version_append(
        conn,
        watcher_id,
        source["v_prompt"],
        source["v_schema_json"],
        source["v_reaction_script"],
        (str(agent["template_agent_id"]), str(agent["source_organization_id"]), str(source["v_id"])),
    )


async def managed_counts(conn: store.Connection, agent_id: str) -> dict[str, int]:
    return {kind: await store.objects_count_managed(conn, kind, agent_id) for kind in KINDS}


async def _installed_agent(conn: asyncpg.Connection, principal: Principal, agent_id: str) -> store.Record:
    """The agent locked for this transaction, if the caller manages its organisation and it was
    installed from a template."""
    agent = await store.agent_lock(conn, agent_id)
    if agent is None or await access.standing(conn, principal, str(agent["organization_id"])) == "none":
        raise NotFound(f"agent {agent_id} does not exist", reason="AGENT_NOT_FOUND")
    await access.require_manager(conn, principal, str(agent["organization_id"]))
    if agent["template_agent_id"] is None:
        raise FailedPrecondition(f"agent {agent_id} was not installed from a template", reason="NOT_INSTALLED")
    return agent


async def resync(pool: asyncpg.Pool, principal: Principal, agent_id: str) -> tuple[store.Record, ResyncReport]:
    """Bring the mirror up to the template's current state, in one transaction."""
    report = ResyncReport()
    async with pool.acquire() as conn, conn.transaction():
        agent = await _installed_agent(conn, principal, agent_id)
        template_agent_id = str(agent["template_agent_id"])
        if await store.agent_get(conn, template_agent_id) is None:
            raise FailedPrecondition(f"the template agent {template_agent_id} no longer exists", reason="TEMPLATE_GONE")
        watchers: dict[str, str | None] = {}
        for kind in KINDS:
            mirrored = {
                str(row["source_object_id"]): row
                for row in await store.objects_of_agent(conn, kind, agent_id, active_only=False)
                if row["template_agent_id"] is not None
            }
            seen: set[str] = set()
            for source in await store.objects_of_agent(conn, kind, template_agent_id, active_only=True):
                source_id = str(source["id"])
                seen.add(source_id)
                mirror = mirrored.get(source_id)
                if mirror is None:
                    new_id = await _mirror(conn, kind, agent, source, watchers)
                    report.created[kind] += 1
                    if kind == "watcher":
                        watchers[source_id] = new_id
                    continue
                if kind == "watcher":
                    watchers[source_id] = str(mirror["id"])
                if await _bring_up_to_date(conn, kind, agent, source, mirror, watchers, report):
                    report.updated[kind] += 1
            for source_id, mirror in mirrored.items():
                if source_id not in seen and mirror["status"] == "active":
                    await store.object_update(conn, kind, str(mirror["id"]), {"status": "archived"})
                    report.archived[kind] += 1
    return agent, report


async def _bring_up_to_date(
    conn: asyncpg.Connection,
    kind: str,
    agent: store.Record,
    source: store.Record,
    mirror: store.Record,
    watchers: dict[str, str | None],
    report: ResyncReport,
) -> bool:
    """Apply the template object's current state to its mirror; True when anything changed."""
    changes = {name: source[name] for name in _FIELDS[kind] if source[name] != mirror[name]}
    if kind == "event_classifier":
        wanted = watchers.get(str(source["watcher_id"])) if source["watcher_id"] else None
        if (str(mirror["watcher_id"]) if mirror["watcher_id"] else None) != wanted:
            changes["watcher_id"] = wanted
    if mirror["status"] != "active":
        changes["status"] = "active"
    await store.object_update(conn, kind, str(mirror["id"]), changes)
    version_added = False
    if kind == "watcher" and source["v_id"] is not None:
        wanted_content = (source["v_prompt"], source["v_schema_json"], source["v_reaction_script"])
        current_content = (mirror["v_prompt"], mirror["v_schema_json"], mirror["v_reaction_script"])
        if wanted_content != current_content:
            await _append_version_from(conn, str(mirror["id"]), agent, source)
            report.watcher_versions_created += 1
            version_added = True
    return bool(changes) or version_added


async def uninstall(pool: asyncpg.Pool, principal: Principal, agent_id: str) -> dict[str, int]:
    """Remove an installed agent and the objects it manages; user-authored objects are never
    touched (while any still belongs to the agent or points at a managed watcher, refuse)."""
    async with pool.acquire() as conn, conn.transaction():
        await _installed_agent(conn, principal, agent_id)
        # A user-authored object still pointing at what goes is refused by a foreign key: the
        # store raises FailedPrecondition (USER_OBJECTS_REMAIN) and the whole uninstall rolls back.
        removed = {kind: await store.objects_delete_managed(conn, kind, agent_id) for kind in reversed(KINDS)}
        # Its workers' tokens die with it (and stay listed as revoked until they expire).
        await store.worker_tokens_revoke_for_agent(conn, agent_id)
        await store.agent_delete(conn, agent_id)
    return removed

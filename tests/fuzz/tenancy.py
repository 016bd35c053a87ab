"""A snapshot of one organisation's rows in every schema, to prove that fuzzed calls changed
nothing of an organisation they had no right to touch.

Every table of the four service schemas is accounted for: scoped by its ``organization_id``
column, by an explicit predicate (rows that belong to the organisation through another table), or
declared as holding no tenant data. A table in none of these fails the snapshot, so a new table
cannot slip out of the check unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

SCHEMAS = ("identity", "interactions", "secretproxy", "runs")
# Rows that belong to an organisation through another table.
SCOPES = {
    "identity.organizations": "id = $1::uuid",
    "identity.users": "id IN (SELECT user_id FROM identity.memberships WHERE organization_id = $1::uuid)",
    "identity.watcher_versions": "watcher_id IN (SELECT id FROM identity.watchers WHERE organization_id = $1::uuid)",
}
# No tenant data: bookkeeping of migrations, and the proxy's failed-lookup counters (keyed by a
# source, shared by design).
UNSCOPED = {f"{schema}.schema_migrations" for schema in SCHEMAS} | {"secretproxy.failed_lookups"}


@dataclass(frozen=True)
class Snapshot:
    """Each table's rows of one organisation, as sorted text."""

    tables: dict[str, tuple[str, ...]]

    def changes(self, after: Snapshot) -> dict[str, dict[str, list[str]]]:
        """Per changed table, the rows that went away and the rows that appeared."""
        changed = {}
        for table in sorted(set(self.tables) | set(after.tables)):
            before_rows, after_rows = set(self.tables.get(table, ())), set(after.tables.get(table, ()))
            if before_rows != after_rows:
                changed[table] = {"gone": sorted(before_rows - after_rows)[:5], "new": sorted(after_rows - before_rows)[:5]}
        return changed


async def _tables(conn: asyncpg.Connection) -> dict[str, bool]:
    """Every table of the service schemas: whether it has an organization_id column."""
    rows = await conn.fetch(
        """
        SELECT t.table_schema || '.' || t.table_name AS name,
               EXISTS (SELECT 1 FROM information_schema.columns c
                       WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name
                         AND c.column_name = 'organization_id') AS scoped
        FROM information_schema.tables t
        WHERE t.table_schema = ANY($1::text[]) AND t.table_type = 'BASE TABLE'
        """,
        list(SCHEMAS),
    )
    return {row["name"]: row["scoped"] for row in rows}


async def snapshot(pool: asyncpg.Pool, organization_id: str) -> Snapshot:
    """Every row of ``organization_id`` in every schema, read in one repeatable-read transaction."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        tables = await _tables(conn)
        parts = []
        for name, has_column in sorted(tables.items()):
            if name in UNSCOPED:
                continue
            predicate = SCOPES.get(name) or ("organization_id = $1::uuid" if has_column else None)
            if predicate is None:
                raise AssertionError(f"{name} has no organization_id: scope it in SCOPES or declare it in UNSCOPED")
            schema, table = name.split(".")
            parts.append(f"SELECT '{name}' AS tbl, t::text AS row FROM \"{schema}\".\"{table}\" t WHERE {predicate}")
        rows = await conn.fetch(" UNION ALL ".join(parts), organization_id)
    found: dict[str, list[str]] = {name: [] for name in tables if name not in UNSCOPED}
    for row in rows:
        found[row["tbl"]].append(row["row"])
    return Snapshot({name: tuple(sorted(values)) for name, values in found.items()})

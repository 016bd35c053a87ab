"""The migration runner: applies each service's SQL files in order, once, whoever runs it.

Each service's migrations live in ``switchboard/migrations/<service>/NNNN_name.sql`` and are recorded in that
service's own schema (``<schema>.schema_migrations``: version, name, checksum). Several replicas may
start at the same moment: a session-level advisory lock makes the runs take turns, and the ones
that come second find nothing left to do. Each file is applied in its own transaction together
with its record, so a failure leaves the database at the last whole migration.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from switchboard import migrations as _migrations_package
from switchboard.shared import locks
from switchboard.shared.config import SERVICES, Settings
from switchboard.shared.db import database_for
from switchboard.shared.logs import get_logger

log = get_logger(__name__)

MIGRATIONS_ROOT = Path(_migrations_package.__file__).resolve().parent
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql\Z")


class MigrationError(Exception):
    """The migration files or the database's record of them are inconsistent."""


@dataclass(frozen=True)
class Migration:
    """One SQL file of one service."""

    service: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(service: str, root: Path = MIGRATIONS_ROOT) -> list[Migration]:
    """The migrations of ``service`` in version order. Raises MigrationError on a bad file name."""
    found: dict[int, Migration] = {}
    for path in sorted((root / service).glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_snake.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"{path}: version {version} is used twice in {service}")
        found[version] = Migration(service, version, match["name"], path.read_text())
    return [found[v] for v in sorted(found)]


async def migrate(dsn: str, services: tuple[str, ...] = SERVICES, root: Path = MIGRATIONS_ROOT) -> list[Migration]:
    """Apply every pending migration of ``services``; return the ones this call applied.

    Safe to run concurrently from many processes. Raises MigrationError when an applied
    migration's file was changed afterwards (fix forward with a new file instead).
    """
    plans = {service: load_migrations(service, root) for service in services}
    # lock_timeout bounds the wait for the advisory lock: a runner stuck elsewhere fails this one
    # with a clear error instead of hanging it forever.
    conn = await asyncpg.connect(dsn, server_settings={"lock_timeout": "120s"})
    applied: list[Migration] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", locks.MIGRATIONS)
        try:
            for service, plan in plans.items():
                applied += await _migrate_schema(conn, service, plan)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", locks.MIGRATIONS)
    finally:
        await conn.close()
    return applied


async def migrate_databases(settings: Settings, services: tuple[str, ...] = SERVICES) -> list[Migration]:
    """Apply every pending migration of ``services``, each to its own context's database (its
    ``SWITCHBOARD_<CONTEXT>_DATABASE_URL`` or ``DATABASE_URL``), always over a session URL: the
    advisory lock below is a session's, which a transaction pooler would not keep. Raises
    ConfigError when a context has no database URL."""
    groups: dict[str, list[str]] = {}
    for service in services:
        groups.setdefault(database_for(settings, service).session_url, []).append(service)
    applied: list[Migration] = []
    for dsn, grouped in groups.items():
        applied += await migrate(dsn, tuple(grouped))
    return applied


async def _migrate_schema(conn: asyncpg.Connection, schema: str, plan: list[Migration]) -> list[Migration]:
    table = f"{_quote(schema)}.schema_migrations"
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
    await conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {table} (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
    )
    done = {row["version"]: row for row in await conn.fetch(f"SELECT version, name, checksum FROM {table}")}
    pending: list[Migration] = []
    for migration in plan:
        row = done.get(migration.version)
        if row is None:
            pending.append(migration)
        elif row["checksum"] != migration.checksum:
            raise MigrationError(
                f"{schema} migration {migration.version:04d}_{migration.name} was changed after it was "
                "applied; add a new migration instead of editing an applied one"
            )
    for migration in pending:
        async with conn.transaction():
            # The search_path makes unqualified names in the file land in the service's schema.
            await conn.execute(f"SET LOCAL search_path TO {_quote(schema)}")
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {table} (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        log.info("migration_applied", schema=schema, version=migration.version, migration=migration.name)
    return pending


def _quote(identifier: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", identifier):
        raise MigrationError(f"not a valid schema name: {identifier!r}")
    return f'"{identifier}"'

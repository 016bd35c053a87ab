"""The migration runner against a real PostgreSQL: ordered, recorded, safe when run concurrently."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import pytest

from switchboard.shared.config import SERVICES
from switchboard.shared.migrate import MigrationError, load_migrations, migrate
from tests.conftest import REPO_ROOT, base_env


async def applied_sets(dsn: str) -> dict[str, list[tuple[int, str]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            schema: [(r["version"], r["name"]) for r in await conn.fetch(f"SELECT version, name FROM {schema}.schema_migrations ORDER BY version")]
            for schema in SERVICES
        }
    finally:
        await conn.close()


async def test_every_service_gets_its_own_schema_with_its_migrations_recorded(fresh_database):
    applied = await migrate(fresh_database)
    assert {m.service for m in applied} == set(SERVICES)
    recorded = await applied_sets(fresh_database)
    for service in SERVICES:
        assert recorded[service] == [(m.version, m.name) for m in load_migrations(service)]
    assert await migrate(fresh_database) == []  # a second run has nothing to do


async def test_two_migrate_processes_started_together_both_succeed_with_one_applied_set(fresh_database):
    env = base_env(DATABASE_URL=fresh_database)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard", "migrate", cwd=REPO_ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = await asyncio.gather(*(p.communicate() for p in processes))
    assert [p.returncode for p in processes] == [0, 0], results
    applied_lines = sum(err.decode().count('"migration_applied"') for _, err in results)
    expected = {service: [(m.version, m.name) for m in load_migrations(service)] for service in SERVICES}
    assert applied_lines == sum(len(v) for v in expected.values())  # each applied once, by one of them
    assert await applied_sets(fresh_database) == expected


async def test_many_concurrent_runners_in_one_process_apply_each_migration_once(fresh_database):
    results = await asyncio.gather(*(migrate(fresh_database) for _ in range(8)))
    assert sorted(len(r) for r in results)[:-1] == [0] * 7
    assert sum(len(r) for r in results) == sum(len(load_migrations(s)) for s in SERVICES)


def _write(root: Path, service: str, name: str, sql: str) -> None:
    (root / service).mkdir(parents=True, exist_ok=True)
    (root / service / name).write_text(sql)


async def test_migrations_apply_in_order_inside_their_schema(fresh_database, tmp_path):
    _write(tmp_path, "identity", "0002_second.sql", "INSERT INTO things VALUES (2);")
    _write(tmp_path, "identity", "0001_first.sql", "CREATE TABLE things (n int); INSERT INTO things VALUES (1);")
    await migrate(fresh_database, ("identity",), tmp_path)
    conn = await asyncpg.connect(fresh_database)
    try:
        assert [r["n"] for r in await conn.fetch("SELECT n FROM identity.things ORDER BY n")] == [1, 2]
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_the_last_whole_one_applied(fresh_database, tmp_path):
    _write(tmp_path, "runs", "0001_ok.sql", "CREATE TABLE a (n int);")
    _write(tmp_path, "runs", "0002_broken.sql", "CREATE TABLE b (n int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(fresh_database, ("runs",), tmp_path)
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("SELECT array_agg(version) FROM runs.schema_migrations") == [1]
        assert await conn.fetchval("SELECT to_regclass('runs.b')") is None
    finally:
        await conn.close()


async def test_an_edited_applied_migration_is_refused(fresh_database, tmp_path):
    _write(tmp_path, "runs", "0001_ok.sql", "CREATE TABLE a (n int);")
    await migrate(fresh_database, ("runs",), tmp_path)
    _write(tmp_path, "runs", "0001_ok.sql", "CREATE TABLE a (n bigint);")
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        await migrate(fresh_database, ("runs",), tmp_path)


def test_badly_named_files_are_refused(tmp_path):
    _write(tmp_path, "runs", "1_bad.sql", "")
    with pytest.raises(MigrationError, match="NNNN_lower_snake.sql"):
        load_migrations("runs", tmp_path)

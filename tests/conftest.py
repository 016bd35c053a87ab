"""Fixtures shared by every test: a real PostgreSQL (embedded unless DATABASE_URL is set), fresh
databases, free ports and credentials."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from switchboard.shared.embedded_pg import EPHEMERAL_SETTINGS, EmbeddedPostgres, dsn_with_database
from switchboard.shared.logs import configure_logging
from switchboard.shared.migrate import migrate

INTERNAL_TOKEN = "test-internal-token-" + "x" * 32

configure_logging("info", process="tests")


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN of a PostgreSQL server for this test session: DATABASE_URL when set, else an embedded
    server in a temporary directory that is stopped at the end."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata", EPHEMERAL_SETTINGS)
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def temporary_database(postgres_dsn: str, prefix: str = "t") -> AsyncIterator[str]:
    """A new, empty database on the session's server (its DSN), dropped at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield dsn_with_database(postgres_dsn, name)
    finally:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def fresh_database(postgres_dsn: str) -> AsyncIterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    async with temporary_database(postgres_dsn) as dsn:
        yield dsn


@pytest.fixture
async def migrated_database(fresh_database: str) -> str:
    """A fresh database with every service's migrations applied."""
    await migrate(fresh_database)
    return fresh_database


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**overrides: str) -> dict[str, str]:
    """The environment for a child `switchboard` process: this one without SWITCHBOARD_* noise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k != "DATABASE_URL"}
    env.update(overrides)
    return env


REPO_ROOT = Path(__file__).resolve().parent.parent

"""Layouts of the database for the e2e tests. Every test runs on the ``embedded`` layout (one
database, as `switchboard up` makes it); a test marked ``@pytest.mark.database_layouts(...)``
runs again on each layout it names:

- ``pgbouncer``: every pool and probe goes through a real PgBouncer in transaction mode
  (``SWITCHBOARD_DATABASE_POOLER=transaction``), LISTEN and the migrations over the direct URL;
  afterwards the pooler's own ``SHOW STATS`` must show the test's traffic.
- ``four_databases``: each context in a database of its own (``SWITCHBOARD_<CONTEXT>_DATABASE_URL``),
  no ``DATABASE_URL`` at all; a query that crossed a schema would find nothing to cross to, and
  afterwards each database must hold its own context's schema and no other.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg
import pytest

from switchboard.shared.config import SERVICES, env_names
from tests.conftest import temporary_database
from tests.e2e import test_up
from tests.support import pgbouncer as bouncers

EMBEDDED = "embedded"


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Remember whether the test itself failed: a layout's checks afterwards would only repeat it."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("database_layouts")
    if marker is not None and "database_layout" in metafunc.fixturenames:
        metafunc.parametrize("database_layout", [EMBEDDED, *marker.args], indirect=True)


@pytest.fixture(scope="session")
def pgbouncer(postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[bouncers.PgBouncer]:
    try:
        bouncer = bouncers.start(postgres_dsn, tmp_path_factory.mktemp("pgbouncer"))
    except bouncers.Unavailable as exc:
        pytest.skip(f"PgBouncer layout skipped: {exc}")
    yield bouncer
    bouncer.stop()


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


@dataclass
class Layout:
    """How the services of one test reach their data."""

    name: str
    postgres_dsn: str = ""
    databases: contextlib.AsyncExitStack | None = None
    bouncer: bouncers.PgBouncer | None = None
    pooled: list[str] = field(default_factory=list)
    """The databases whose traffic went through the pooler (checked afterwards)."""
    own: dict[str, str] = field(default_factory=dict)
    """Each context's database (four_databases), checked afterwards."""

    def settings_for(self, direct_url: str) -> dict[str, object]:
        """Settings for services run in-process on the database of ``direct_url``."""
        if self.bouncer is None:
            return {"database_url": direct_url}
        self.pooled.append(database_name(direct_url))
        return {
            "database_url": self.bouncer.url_for(database_name(direct_url)),
            "database_direct_url": direct_url,
            "database_pooler": "transaction",
        }

    async def stack_env(self) -> dict[str, str]:
        """The environment of a `switchboard up` on this layout, on new databases (tests/e2e/test_up.py
        start_stack asks); empty for the embedded layout (the stack embeds its own PostgreSQL)."""
        if self.databases is None:
            return {}
        names = env_names()
        if self.name == "pgbouncer":
            direct = await self.databases.enter_async_context(temporary_database(self.postgres_dsn, "pooled"))
            return {names[k]: str(v) for k, v in self.settings_for(direct).items()}
        for service in SERVICES:
            self.own[service] = await self.databases.enter_async_context(temporary_database(self.postgres_dsn, service[:5]))
        return {names[f"{s}_database_url"]: url for s, url in self.own.items()}

    async def check(self) -> None:
        """After the test: its traffic went through the pooler; each context's database holds its
        own schema and no other."""
        for db in self.pooled:
            assert self.bouncer is not None
            stats = self.bouncer.stats_of(db)
            pools = [row for row in self.bouncer.show("POOLS") if row["database"] == db]
            print(f"PgBouncer SHOW STATS {db}: {stats}\nPgBouncer SHOW POOLS {db}: {pools}")  # the evidence (-rP)
            assert stats.get("total_xact_count", 0) > 0 and stats.get("total_query_count", 0) > 0, stats
            assert [row["pool_mode"] for row in pools] == ["transaction"], pools
        for service, url in self.own.items():
            conn = await asyncpg.connect(url)
            try:
                schemas = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname = any($1::text[])", list(SERVICES))
            finally:
                await conn.close()
            assert {row["nspname"] for row in schemas} == {service}


@pytest.fixture(autouse=True)
async def database_layout(request: pytest.FixtureRequest) -> AsyncIterator[Layout]:
    name = getattr(request, "param", EMBEDDED)
    if name == EMBEDDED:
        yield Layout(name)
        return
    assert name in ("pgbouncer", "four_databases"), f"unknown database layout {name!r}"
    bouncer = request.getfixturevalue("pgbouncer") if name == "pgbouncer" else None
    async with contextlib.AsyncExitStack() as databases:
        layout = Layout(name, request.getfixturevalue("postgres_dsn"), databases, bouncer)
        test_up.LAYOUT = layout
        try:
            yield layout
        finally:
            test_up.LAYOUT = None
        if not request.node.stash.get(CALL_FAILED, True):
            await layout.check()

"""Where each context's data lives (switchboard/shared/db.py database_for), and the rule that
makes a transaction pooler and a database per context possible: every statement of a store names
its tables with their schema, and only its own context's schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switchboard.shared.config import SERVICES, ConfigError, load_settings
from switchboard.shared.db import connect_options, database_for
from switchboard.shared.migrate import MIGRATIONS_ROOT

SERVICES_ROOT = Path(__file__).resolve().parents[2] / "switchboard" / "services"
SHARED = "postgresql://app@db:5432/switchboard"
DIRECT = "postgresql://app@db-direct:5432/switchboard"
POOLED = "postgresql://app@pgbouncer:6432/switchboard"


def test_every_context_uses_database_url_when_it_has_no_database_of_its_own():
    settings = load_settings({"DATABASE_URL": SHARED})
    for service in SERVICES:
        database = database_for(settings, service)
        assert (database.url, database.session_url, database.pooled) == (SHARED, SHARED, False)
        assert connect_options(database) == {}


def test_a_context_of_its_own_overrides_database_url_for_that_context_only():
    own = "postgresql://app@runs-db:5432/runs"
    settings = load_settings({"DATABASE_URL": SHARED, "SWITCHBOARD_RUNS_DATABASE_URL": own})
    assert database_for(settings, "runs").url == own
    assert database_for(settings, "runs").session_url == own
    assert {database_for(settings, s).url for s in SERVICES if s != "runs"} == {SHARED}


def test_four_databases_need_no_database_url():
    env = {f"SWITCHBOARD_{s.upper()}_DATABASE_URL": f"postgresql://app@db/{s}" for s in SERVICES}
    settings = load_settings(env)
    assert [database_for(settings, s).url for s in SERVICES] == [f"postgresql://app@db/{s}" for s in SERVICES]


def test_no_url_at_all_names_both_variables():
    with pytest.raises(ConfigError) as caught:
        database_for(load_settings({}), "interactions")
    assert str(caught.value) == "required but not set: DATABASE_URL (or SWITCHBOARD_INTERACTIONS_DATABASE_URL)"


def test_behind_a_transaction_pooler_sessions_take_the_direct_url_and_no_statement_is_cached():
    settings = load_settings(
        {"DATABASE_URL": POOLED, "SWITCHBOARD_DATABASE_POOLER": "transaction", "SWITCHBOARD_DATABASE_DIRECT_URL": DIRECT}
    )
    database = database_for(settings, "interactions")
    assert (database.url, database.session_url, database.pooled) == (POOLED, DIRECT, True)
    assert connect_options(database) == {"statement_cache_size": 0}


def test_a_transaction_pooler_without_a_direct_url_is_refused_naming_the_variable():
    settings = load_settings({"DATABASE_URL": POOLED, "SWITCHBOARD_DATABASE_POOLER": "transaction"})
    with pytest.raises(ConfigError, match="set SWITCHBOARD_DATABASE_DIRECT_URL"):
        database_for(settings, "runs")
    # A context of its own never falls back to the shared direct URL, which names another database.
    settings = load_settings(
        {
            "DATABASE_URL": POOLED,
            "SWITCHBOARD_DATABASE_POOLER": "transaction",
            "SWITCHBOARD_DATABASE_DIRECT_URL": DIRECT,
            "SWITCHBOARD_RUNS_DATABASE_URL": "postgresql://app@pgbouncer:6432/runs",
        }
    )
    with pytest.raises(ConfigError, match="set SWITCHBOARD_RUNS_DATABASE_DIRECT_URL"):
        database_for(settings, "runs")
    assert database_for(settings, "identity").session_url == DIRECT


def test_a_direct_url_of_its_own_without_the_contexts_url_is_refused():
    # Alone, SWITCHBOARD_RUNS_DATABASE_DIRECT_URL used to be taken as runs' session URL while its
    # pool stayed on DATABASE_URL: migrations and LISTEN on one database, every call on another.
    for env in ({"DATABASE_URL": SHARED}, {"DATABASE_URL": POOLED, "SWITCHBOARD_DATABASE_POOLER": "transaction", "SWITCHBOARD_DATABASE_DIRECT_URL": DIRECT}):
        settings = load_settings({**env, "SWITCHBOARD_RUNS_DATABASE_DIRECT_URL": "postgresql://app@runs-db:5432/runs"})
        with pytest.raises(ConfigError) as caught:
            database_for(settings, "runs")
        assert str(caught.value).startswith("SWITCHBOARD_RUNS_DATABASE_DIRECT_URL is set without SWITCHBOARD_RUNS_DATABASE_URL")
        assert "runs-db" not in str(caught.value)  # names the variables, never their values
        assert database_for(settings, "identity").url == env["DATABASE_URL"]


def test_an_unknown_pooler_mode_is_refused():
    with pytest.raises(ConfigError, match="SWITCHBOARD_DATABASE_POOLER: expected one of none, transaction"):
        load_settings({"SWITCHBOARD_DATABASE_POOLER": "session"})


# -- every table named with its own schema ---------------------------------------------------------

SQL_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(?:ONLY\s+)?([a-z_][a-z0-9_]*)(\.[a-z_][a-z0-9_]*)?")


def tables_of(service: str) -> set[str]:
    found: set[str] = set()
    for path in (MIGRATIONS_ROOT / service).glob("*.sql"):
        found.update(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(?:[a-z_]+\.)?([a-z_][a-z0-9_]*)", path.read_text()))
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_statement_names_its_tables_with_its_own_schema(service):
    """Behind a transaction pooler no ``search_path`` holds (it is a session's), and with a database
    per context another context's schema is not there: an unqualified table, or another
    context's, would fail there and nowhere else."""
    own = tables_of(service)
    every = {table: other for other in SERVICES for table in tables_of(other)}
    problems = []
    for path in sorted((SERVICES_ROOT / service).glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name, rest in SQL_TABLE.findall(line):
                if rest and name in SERVICES and name != service:
                    problems.append(f"{path.name}:{number}: reads another context's schema: {name}{rest}")
                elif not rest and name in every:
                    problems.append(f"{path.name}:{number}: unqualified table {name} (write {service}.{name})")
            if "copy_records_to_table(" in line and f'schema_name="{service}"' not in line:
                problems.append(f"{path.name}:{number}: COPY without schema_name={service!r}")
    assert own and problems == []


def test_the_guard_catches_what_it_is_for():
    line = 'conn.fetch("SELECT * FROM runs JOIN identity.agents a ON true")'
    assert SQL_TABLE.findall(line) == [("runs", ""), ("identity", ".agents")]

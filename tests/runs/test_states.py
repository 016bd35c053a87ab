"""One list of run states and lanes: the database, the domain and the proto say exactly the same.

Lanes and statuses are spelled in the migration's CHECKs, in ``switchboard/services/runs/domain.py`` (the one
list in Python), in the proto enums ``Lane`` and ``RunStatus``, and as literals in the SQL of
``switchboard/services/runs/store.py``. A state added to one place only would be refused by the database, or
unmappable in a reply (a KeyError, so INTERNAL), or unreachable from the API: these tests name the
place that disagrees.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

from switchboard.services.runs import domain
from switchboard.runs.v1 import run_service_pb2 as pb

STORE = Path(domain.__file__).with_name("store.py")
# A text literal as PostgreSQL prints it back in a definition: 'pending'::text
_PG_LITERAL = re.compile(r"'((?:[^']|'')*)'::text")


async def _check_literals(database_url: str, column: str) -> set[str]:
    """The values that the CHECK constraint on ``runs.runs.<column>`` alone admits."""
    conn = await asyncpg.connect(database_url)
    try:
        definitions = await conn.fetch(
            """SELECT pg_get_constraintdef(c.oid) AS definition
                 FROM pg_constraint c
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                WHERE c.conrelid = 'runs.runs'::regclass AND c.contype = 'c'
                  AND cardinality(c.conkey) = 1 AND a.attname = $1""",
            column,
        )
    finally:
        await conn.close()
    assert len(definitions) == 1, f"expected one CHECK on runs.{column} alone, found {[d['definition'] for d in definitions]}"
    values = set(_PG_LITERAL.findall(definitions[0]["definition"]))
    assert values, f"no literals in {definitions[0]['definition']}"
    return values


def _proto_values(enum_name: str, prefix: str) -> dict[int, str]:
    """Every value of a proto enum but its _UNSPECIFIED zero, as number → lowercase name."""
    enum = pb.DESCRIPTOR.enum_types_by_name[enum_name]
    values = {value.number: value.name for value in enum.values}
    assert values.pop(0) == f"{prefix}UNSPECIFIED"
    for name in values.values():
        assert name.startswith(prefix), name
    return {number: name.removeprefix(prefix).lower() for number, name in values.items()}


async def test_the_database_the_domain_and_the_proto_name_the_same_statuses(migrated_database: str):
    database = await _check_literals(migrated_database, "status")
    assert set(domain.STATUSES.values()) == database, "switchboard/services/runs/domain.py STATUSES vs the migration's CHECK on runs.status"
    assert domain.STATUSES == _proto_values("RunStatus", "RUN_STATUS_"), "domain.STATUSES vs the proto enum RunStatus"
    assert domain.STATUS_TO_PROTO == {name: number for number, name in domain.STATUSES.items()}


async def test_the_database_the_domain_and_the_proto_name_the_same_lanes(migrated_database: str):
    database = await _check_literals(migrated_database, "lane")
    assert set(domain.LANES.values()) == database, "switchboard/services/runs/domain.py LANES vs the migration's CHECK on runs.lane"
    assert domain.LANES == _proto_values("Lane", "LANE_"), "domain.LANES vs the proto enum Lane"
    assert domain.LANE_TO_PROTO == {name: number for number, name in domain.LANES.items()}


async def test_every_literal_in_the_runs_tables_constraints_and_indexes_is_a_status_or_a_lane(migrated_database: str):
    """The partial indexes and the other CHECKs (final iff finished, running is claimed, …) name
    states too: a misspelt one would silently never match."""
    conn = await asyncpg.connect(migrated_database)
    try:
        rows = await conn.fetch(
            """SELECT conname AS name, pg_get_constraintdef(oid) AS definition
                 FROM pg_constraint WHERE conrelid = 'runs.runs'::regclass AND contype = 'c'
               UNION ALL
               SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)
                 FROM pg_index WHERE indrelid = 'runs.runs'::regclass"""
        )
    finally:
        await conn.close()
    known = set(domain.STATUSES.values()) | set(domain.LANES.values()) | {""}  # '' : subject_id <> ''
    seen = set()
    for row in rows:
        literals = set(_PG_LITERAL.findall(row["definition"]))
        assert literals <= known, f"{row['name']} names {sorted(literals - known)}: {row['definition']}"
        seen |= literals
    # Not vacuous: the partial indexes name the active statuses and the lanes they serve.
    assert {"pending", "running", "auth", "watcher"} <= seen


def _store_literals() -> tuple[set[str], set[str]]:
    """The literals that store.py's SQL compares runs.status and runs.lane with, or sets them to."""
    sql = STORE.read_text()
    found: dict[str, set[str]] = {"status": set(), "lane": set()}
    for column in found:
        for match in re.finditer(rf"\b{column}\s*(?:=|<>|!=)\s*'(\w*)'", sql):
            found[column].add(match.group(1))
        for match in re.finditer(rf"\b{column}\s+IN\s*\(([^)]*)\)", sql):
            found[column].update(re.findall(r"'(\w*)'", match.group(1)))
        # SET status = CASE WHEN … THEN 'x' … ELSE 'y' END
        for match in re.finditer(rf"\b{column}\s*=\s*CASE\b(.*?)\bEND\b", sql, re.DOTALL):
            found[column].update(re.findall(r"\b(?:THEN|ELSE)\s+'(\w*)'", match.group(1)))
    return found["status"], found["lane"]


def test_the_sql_of_the_store_names_only_known_statuses_and_lanes():
    statuses, lanes = _store_literals()
    assert statuses <= set(domain.STATUSES.values()), f"store.py names unknown statuses {sorted(statuses - set(domain.STATUSES.values()))}"
    assert lanes <= set(domain.LANES.values()), f"store.py names unknown lanes {sorted(lanes - set(domain.LANES.values()))}"
    # Not vacuous: the store moves runs through every status and names the lanes it orders by.
    assert statuses == set(domain.STATUSES.values())
    assert {"sync", "auth", "watcher"} <= lanes


@pytest.mark.parametrize(
    "sql",
    [
        "WHERE status = 'canceled'",
        "WHERE status IN ('pending', 'runing')",
        "SET status = CASE WHEN x THEN 'paused' ELSE status END",
        "AND lane = 'synch'",
    ],
)
def test_the_store_scan_catches_a_misspelt_state(sql: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The scan above is a regular expression over source text: check that it sees the forms the
    store uses, or it could pass by seeing nothing."""
    fake = tmp_path / "store.py"
    fake.write_text(STORE.read_text() + f'\n_EXTRA = """{sql}"""\n')
    monkeypatch.setattr(f"{__name__}.STORE", fake)
    statuses, lanes = _store_literals()
    assert not (statuses <= set(domain.STATUSES.values()) and lanes <= set(domain.LANES.values()))

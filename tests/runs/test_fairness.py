"""Claims are fair between organisations: a backlog of one does not hold up another's runs at equal
priority, while LANE_AUTH still goes first and priority still counts (ClaimRun and sessions)."""

from __future__ import annotations

import uuid

from switchboard.runs.v1 import run_service_pb2 as pb
from tests.runs.conftest import OPERATOR
from tests.runs.sessions_support import RawSession

BACKLOG = 10_000


async def _backlog(runs, organization_id: str, count: int) -> None:
    """``count`` pending runs of the organisation exactly as ``count`` EnqueueRun calls leave them
    (turns 1..count, the organisation's clock at count), written in one statement for speed."""
    await runs.pool.execute(
        """INSERT INTO runs.runs (id, organization_id, lane, subject_id, turn, created_at)
           SELECT gen_random_uuid(), $1, 'action', 'a' || n, n, now() - interval '1 hour' + n * interval '1 ms'
           FROM generate_series(1, $2) AS n""",
        organization_id,
        count,
    )
    await runs.pool.execute("INSERT INTO runs.organization_turns VALUES ($1, $2)", organization_id, count)


async def test_a_small_organisation_is_not_stuck_behind_a_large_backlog(runs):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await _backlog(runs, a, BACKLOG)
    b_runs = {(await runs.enqueue(b, subject_id=f"b{i}")).id for i in range(10)}
    claimed = [(await runs.claim("w1")) for _ in range(20)]
    assert {run.id for run in claimed if run.organization_id == b} == b_runs  # all 10 within 20 claims
    # Turn by turn: A's oldest, then one of B's, then A's next...
    assert [run.organization_id for run in claimed[:4]] == [a, b, a, b]


async def test_a_session_leases_both_organisations_in_turn(runs):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await _backlog(runs, a, BACKLOG)
    for i in range(10):
        await runs.enqueue(b, subject_id=f"b{i}")
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=20)
    leased = await session.leases(20)
    assert sum(run.organization_id == b for run in leased) == 10
    session.cancel()


async def test_the_enqueue_path_itself_interleaves_organisations_and_banks_no_credit(runs):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(30):
        await runs.enqueue(a, subject_id=f"a{i}")
    for i in range(3):
        await runs.enqueue(b, subject_id=f"b{i}")
    order = [(await runs.claim("w1")).organization_id for _ in range(6)]
    assert order == [a, b, a, b, a, b]
    assert {(await runs.claim("w1")).organization_id for _ in range(10)} == {a}  # B idle meanwhile
    for i in range(3):
        await runs.enqueue(b, subject_id=f"late{i}")
    # B's idle time earned it nothing: it joins at the turn being served, one for one with A.
    order = [(await runs.claim("w1")).organization_id for _ in range(6)]
    assert order == [a, b, a, b, a, b]


async def test_auth_first_and_priority_still_come_before_fairness(runs):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await _backlog(runs, a, 100)
    await runs.enqueue(b, subject_id="b-plain")
    urgent = await runs.enqueue(a, subject_id="a-urgent", priority=5)
    auth = await runs.enqueue(a, lane=pb.LANE_AUTH, subject_id="a-auth", priority=-5)
    order = [(await runs.claim("w1")) for _ in range(4)]
    assert [run.id for run in order[:2]] == [auth.id, urgent.id]
    assert [run.organization_id for run in order[2:]] == [a, b]


async def test_the_claim_is_one_index_scan_whatever_the_backlog(runs):
    a = str(uuid.uuid4())
    await _backlog(runs, a, BACKLOG)
    await runs.pool.execute("ANALYZE runs.runs")
    async with runs.pool.acquire() as conn:
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                "EXPLAIN " + "SELECT id FROM runs.runs WHERE status = 'pending' AND run_after <= now() AND lane = ANY('{action}')"
                " ORDER BY (lane = 'auth') DESC, priority DESC, turn, created_at, id LIMIT 10 FOR UPDATE SKIP LOCKED"
            )
        )
    assert "runs_claim_order" in plan and "Sort" not in plan, plan

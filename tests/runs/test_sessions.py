"""Worker sessions (RunService.WorkSession) through real gRPC on a real PostgreSQL: leases up to
capacity, acks only after commit, repeats, fencing, adoption, coalescing, cancel, drain, bad input."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from switchboard.services.runs import store
from switchboard.shared.errors import field_violations, reason_of
from switchboard.runs.v1 import run_service_pb2 as pb
from tests.runs.conftest import OPERATOR, worker_metadata
from tests.runs.sessions_support import RawSession


async def test_a_session_leases_up_to_its_capacity_and_more_as_outcomes_come(runs, org):
    for i in range(5):
        await runs.enqueue(org, subject_id=f"s{i}")
    session = RawSession(runs.stub, OPERATOR)
    opened = await session.open("w1", capacity=3)
    assert opened.session_id and not opened.adopted
    leased = await session.leases(3)
    assert {r.status for r in leased} == {pb.RUN_STATUS_RUNNING} and {r.attempt for r in leased} == {1}
    assert await runs.pool.fetchval("SELECT count(*) FROM runs.runs WHERE status = 'pending'") == 2  # no more than 3
    await session.complete(leased[0], '{"ok": 1}')
    # The reported run frees its slot at once (the next lease need not wait for the commit); the
    # ack comes once the completion is durable.
    replies = {}
    for _ in range(2):
        reply = await session.read()
        kind = reply.WhichOneof("message")
        replies[kind] = reply
        if kind == "ack":
            row = await runs.pool.fetchrow("SELECT status, result_json FROM runs.runs WHERE id = $1", leased[0].id)
            assert (row["status"], row["result_json"]) == ("completed", '{"ok": 1}')
    ack = replies["ack"].ack
    assert (ack.run_id, ack.attempt, ack.code, ack.status) == (leased[0].id, 1, 0, pb.RUN_STATUS_COMPLETED)
    assert replies["lease"].lease.run.id not in {r.id for r in leased}
    assert await runs.pool.fetchval("SELECT count(*) FROM runs.runs WHERE status = 'pending'") == 1
    session.cancel()


async def _waiting_on_a_lock(pool, query_pattern: str) -> bool:
    """Whether a statement LIKE the pattern waits for a lock (``%`` matches anything after it)."""
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1", query_pattern + "%"
        )
    )


async def test_an_ack_never_precedes_the_commit_of_its_outcome(runs, org):
    await runs.enqueue(org, subject_id="locked")
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=1)
    (run,) = await session.leases(1)
    blocker = await runs.pool.acquire()
    transaction = blocker.transaction()
    await transaction.start()
    try:
        await blocker.execute("SELECT 1 FROM runs.runs WHERE id = $1 FOR UPDATE", run.id)
        await session.complete(run, '{"n": 1}')
        acked = asyncio.create_task(session.ack())
        # The flush's UPDATE is now waiting for the row: it has not committed, so nothing is acked.
        async with asyncio.timeout(5):
            while not await _waiting_on_a_lock(runs.pool, "UPDATE runs.runs AS r%WHEN o.kind = 'complete'"):
                await asyncio.sleep(0.01)
        assert not acked.done()
        assert await runs.pool.fetchval("SELECT status FROM runs.runs WHERE id = $1", run.id) == "running"
    finally:
        await transaction.rollback()
        await runs.pool.release(blocker)
    ack = await acked
    assert (ack.code, ack.status) == (0, pb.RUN_STATUS_COMPLETED)
    assert await runs.pool.fetchval("SELECT status FROM runs.runs WHERE id = $1", run.id) == "completed"
    session.cancel()


async def test_a_repeated_outcome_is_acknowledged_again_and_applied_once(runs, org):
    await runs.enqueue(org, subject_id="twice")
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=1)
    (run,) = await session.leases(1)
    await session.complete(run, '{"first": true}')
    await session.complete(run, '{"second": true}')  # a retry that crossed the first ack
    first, second = await session.ack(), await session.ack()
    assert [(a.code, a.status) for a in (first, second)] == [(0, pb.RUN_STATUS_COMPLETED)] * 2
    row = await runs.pool.fetchrow("SELECT status, result_json, attempt FROM runs.runs WHERE id = $1", run.id)
    assert (row["status"], row["result_json"], row["attempt"]) == ("completed", '{"first": true}', 1)
    # A fail of the completed run is not a repeat: refused as FailRun would be.
    await session.fail(run)
    refused = await session.ack()
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and "no longer current" in refused.message
    session.cancel()


async def test_a_fenced_out_session_cannot_finish_a_run_another_worker_reclaimed(runs, org):
    await runs.enqueue(org, subject_id="contended", max_attempts=3)
    a = RawSession(runs.stub, OPERATOR)
    await a.open("worker-a", capacity=1)
    (first,) = await a.leases(1)
    await a.fail(first, "flaky", retryable=True)
    assert (await a.ack()).status == pb.RUN_STATUS_PENDING
    await runs.pool.execute("UPDATE runs.runs SET run_after = now() WHERE id = $1", first.id)  # skip the backoff
    b = RawSession(runs.stub, OPERATOR)
    await b.open("worker-b", capacity=1)
    (second,) = await b.leases(1)
    assert (second.id, second.attempt, second.claimed_by) == (first.id, 2, "worker-b")
    await a.complete(first, '{"stale": true}')
    stale = await a.ack()
    assert stale.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    await b.complete(second, '{"fresh": true}')
    assert (await b.ack()).status == pb.RUN_STATUS_COMPLETED
    row = await runs.pool.fetchrow("SELECT result_json, attempt, claimed_by FROM runs.runs WHERE id = $1", first.id)
    assert tuple(row.values()) == ('{"fresh": true}', 2, "worker-b")
    a.cancel()
    b.cancel()


async def test_a_release_hands_the_run_back_at_once_without_using_an_attempt(runs, org):
    await runs.enqueue(org, subject_id="handed-back", max_attempts=1)
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=1)
    (run,) = await session.leases(1)
    await session.call.write(pb.WorkSessionRequest(stop_taking=pb.SessionStopTaking()))
    await session.release(run)
    assert (await session.ack()).status == pb.RUN_STATUS_PENDING
    other = RawSession(runs.stub, OPERATOR)
    await other.open("w2", capacity=1)
    (again,) = await other.leases(1)
    assert (again.id, again.attempt) == (run.id, 2)
    # max_attempts is 1, and this is the run's first real attempt: a retryable failure is final
    # only because attempts ran out, not because of the hand-back.
    await other.fail(again, "flaky", retryable=True)
    assert (await other.ack()).status == pb.RUN_STATUS_FAILED
    assert await runs.pool.fetchval("SELECT handbacks FROM runs.runs WHERE id = $1", run.id) == 1
    session.cancel()
    other.cancel()


async def test_a_stopping_worker_closing_its_stream_hands_back_what_it_still_holds(runs, org):
    for i in range(3):
        await runs.enqueue(org, subject_id=f"c{i}")
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=3)
    leased = await session.leases(3)
    await session.complete(leased[0])
    assert (await session.ack()).code == 0
    await session.call.write(pb.WorkSessionRequest(stop_taking=pb.SessionStopTaking()))
    await session.call.done_writing()
    acks = [(await session.ack()) for _ in range(2)]
    assert {(a.run_id, a.status) for a in acks} == {(r.id, pb.RUN_STATUS_PENDING) for r in leased[1:]}
    assert await session.call.read() is grpc.aio.EOF
    rows = await runs.pool.fetch("SELECT status, count(*) AS n FROM runs.runs GROUP BY status ORDER BY status")
    assert [(r["status"], r["n"]) for r in rows] == [("completed", 1), ("pending", 2)]


async def test_a_reconnecting_worker_keeps_its_runs_and_loses_those_reaped_meanwhile(runs, org):
    for i in range(2):
        await runs.enqueue(org, subject_id=f"r{i}")
    first = RawSession(runs.stub, OPERATOR)
    await first.open("w1", capacity=2)
    kept, reaped = await first.leases(2)
    first.cancel()  # the connection dies: the runs stay the worker's
    await runs.pool.execute("UPDATE runs.runs SET last_heartbeat_at = now() - interval '1 hour' WHERE id = $1", reaped.id)
    assert (await runs.reaper(stale_after_seconds=60).run_once()).reaped == 1
    second = RawSession(runs.stub, OPERATOR)
    opened = await second.open("w1", capacity=2, held=[(kept.id, kept.attempt), (reaped.id, reaped.attempt)])
    assert [(h.run_id, h.attempt) for h in opened.adopted] == [(kept.id, 1)]
    await second.complete(kept)
    await second.complete(reaped)
    acks = {a.run_id: a for a in [await second.ack(), await second.ack()]}
    assert (acks[kept.id].code, acks[kept.id].status) == (0, pb.RUN_STATUS_COMPLETED)
    assert acks[reaped.id].code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and "timeout" in acks[reaped.id].message
    second.cancel()


async def test_an_idle_session_is_woken_by_an_enqueue_not_by_its_poll(runs, org):
    runs.parts.sessions.poll_seconds = 60.0
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=2)
    async with asyncio.timeout(5):
        await runs.parts.sessions.listening.wait()
    run = await runs.enqueue(org, subject_id="wake")
    async with asyncio.timeout(2):  # far below the 60 s poll
        (leased,) = await session.leases(1)
    assert leased.id == run.id
    session.cancel()


async def test_cancel_run_reaches_the_session_holding_the_run_at_once(runs, org):
    runs.parts.sessions.poll_seconds = 60.0
    await runs.enqueue(org, subject_id="to-cancel")
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=1)
    (run,) = await session.leases(1)
    async with asyncio.timeout(5):
        await runs.parts.sessions.listening.wait()
    await runs.stub.CancelRun(pb.CancelRunRequest(run_id=run.id), metadata=OPERATOR)
    async with asyncio.timeout(1):  # the heartbeat (the safety net) is 30 s away
        cancel = (await session.read("cancel")).cancel
    assert (cancel.run_id, cancel.attempt) == (run.id, 1)
    await session.fail(run, "stopped")
    assert (await session.ack()).status == pb.RUN_STATUS_CANCELLED
    session.cancel()


async def test_the_heartbeat_keeps_held_runs_alive_and_pushes_a_missed_cancel(runs, org):
    await runs.enqueue(org, subject_id="beat")
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=1)
    (run,) = await session.leases(1)
    # A cancellation whose NOTIFY was missed (written behind the listener's back).
    await runs.pool.execute(
        "UPDATE runs.runs SET cancel_requested = true, last_heartbeat_at = now() - interval '1 hour' WHERE id = $1", run.id
    )
    assert await runs.parts.sessions.heartbeat_once() == 1
    assert (await session.read("cancel")).cancel.run_id == run.id
    row = await runs.pool.fetchrow("SELECT heartbeats, last_heartbeat_at > now() - interval '1 minute' AS fresh FROM runs.runs WHERE id = $1", run.id)
    assert (row["heartbeats"], row["fresh"]) == (1, True)
    assert (await runs.reaper(stale_after_seconds=60).run_once()).reaped == 0
    session.cancel()


async def test_many_sessions_finish_every_run_exactly_once_in_coalesced_statements(runs, org):
    total = 600
    await runs.pool.executemany(
        "INSERT INTO runs.runs (id, organization_id, lane, subject_id) VALUES ($1, $2, 'action', $3)",
        [(str(uuid.uuid4()), org, f"s{i}") for i in range(total)],
    )
    acked: list[tuple[str, int, int]] = []
    all_acked = asyncio.Event()

    async def worker(name: str) -> None:
        session = RawSession(runs.stub, OPERATOR)
        await session.open(name, capacity=10)
        try:
            while True:
                response = await session.read()
                if response.WhichOneof("message") == "lease":
                    await session.complete(response.lease.run)
                else:
                    acked.append((response.ack.run_id, response.ack.code, response.ack.status))
                    if len(acked) == total:
                        all_acked.set()
        finally:
            session.cancel()

    workers = [asyncio.create_task(worker(f"w{i}")) for i in range(8)]
    async with asyncio.timeout(30):
        await all_acked.wait()
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert len(acked) == total and len({run_id for run_id, _, _ in acked}) == total
    assert {(code, status) for _, code, status in acked} == {(0, pb.RUN_STATUS_COMPLETED)}
    assert await runs.pool.fetchval("SELECT count(*) FROM runs.runs WHERE status = 'completed' AND attempt = 1") == total
    flushes = runs.registry.get_sample_value("switchboard_runs_outcome_flushes_total")
    outcomes = runs.registry.get_sample_value("switchboard_runs_session_outcomes_total", {"kind": "complete"})
    assert outcomes == total and flushes < total / 2  # coalesced across sessions


async def test_a_worker_session_sees_only_its_agents_runs(runs, org):
    agent, other_agent = str(uuid.uuid4()), str(uuid.uuid4())
    own = await runs.enqueue(org, subject_id="own", agent_id=agent)
    await runs.enqueue(org, subject_id="others", agent_id=other_agent)
    await runs.enqueue(org, subject_id="internal")
    session = RawSession(runs.stub, worker_metadata(org, agent))
    await session.open("w1", capacity=5)
    (leased,) = await session.leases(1)
    assert leased.id == own.id
    operator = RawSession(runs.stub, OPERATOR)
    await operator.open("internal", capacity=5)
    assert {r.subject_id for r in await operator.leases(2)} == {"others", "internal"}
    # Another agent's run cannot be finished from this session either: it is not found.
    others = await runs.pool.fetchval("SELECT id::text FROM runs.runs WHERE subject_id = 'others'")
    await session.complete((others, 1))
    refused = await session.ack()
    assert refused.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert await runs.pool.fetchval("SELECT status FROM runs.runs WHERE subject_id = 'others'") == "running"
    session.cancel()
    operator.cancel()


async def _session_error(runs, *messages: pb.WorkSessionRequest) -> grpc.aio.AioRpcError:
    call = runs.stub.WorkSession(metadata=OPERATOR)
    for message in messages:
        await call.write(message)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while True:
            if await call.read() is grpc.aio.EOF:
                break
    return caught.value


def _open(**fields) -> pb.WorkSessionRequest:
    return pb.WorkSessionRequest(open=pb.SessionOpen(**{"worker_id": "w1", "capacity": 1, **fields}))


@pytest.mark.parametrize(
    "messages, field",
    [
        ([pb.WorkSessionRequest(stop_taking=pb.SessionStopTaking())], "open"),
        ([_open(capacity=0)], "open.capacity"),
        ([_open(capacity=1001)], "open.capacity"),
        ([_open(worker_id="")], "open.worker_id"),
        ([_open(worker_id="x" * 256)], "open.worker_id"),
        ([_open(lanes=[pb.LANE_UNSPECIFIED])], "open.lanes[0]"),
        ([_open(held=[pb.HeldRun(run_id="nope", attempt=1)])], "open.held[0].run_id"),
        ([_open(held=[pb.HeldRun(run_id=str(uuid.uuid4()), attempt=0)])], "open.held[0].attempt"),
        ([_open(held=[pb.HeldRun(run_id=str(uuid.uuid4()), attempt=1)] * 3)], "open.held"),
        ([_open(), _open()], "open"),
        ([_open(), pb.WorkSessionRequest()], "message"),
        ([_open(), pb.WorkSessionRequest(reports=pb.SessionReports(release=[pb.SessionRelease(run_id=str(uuid.uuid4()), attempt=1)] * 1001))], "reports"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_a_malformed_session_ends_with_invalid_argument_naming_the_field(runs, messages, field):
    error = await _session_error(runs, *messages)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert [v.field for v in field_violations(error)] == [field]


@pytest.mark.parametrize(
    "message, field",
    [
        (lambda run: pb.WorkSessionRequest(complete=pb.SessionComplete(run_id=run.id, attempt=1, result_json="[" * 5000 + "]" * 5000)), "complete.result_json"),
        (lambda run: pb.WorkSessionRequest(complete=pb.SessionComplete(run_id=run.id, attempt=1, result_json="{nope")), "complete.result_json"),
        (lambda run: pb.WorkSessionRequest(complete=pb.SessionComplete(run_id="not-a-uuid", attempt=1)), "complete.run_id"),
        (lambda run: pb.WorkSessionRequest(complete=pb.SessionComplete(run_id=run.id, attempt=0)), "complete.attempt"),
        (lambda run: pb.WorkSessionRequest(fail=pb.SessionFail(run_id=run.id, attempt=1, error_message="  ")), "fail.error_message"),
        (lambda run: pb.WorkSessionRequest(release=pb.SessionRelease(run_id="", attempt=1)), "release.run_id"),
        (
            lambda run: pb.WorkSessionRequest(reports=pb.SessionReports(fail=[pb.SessionFail(run_id=run.id, attempt=1, error_message="\x00")])),
            "reports.fail[0].error_message",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_a_malformed_outcome_is_refused_in_its_ack_and_changes_nothing(runs, org, message, field):
    await runs.enqueue(org, subject_id="bad")
    session = RawSession(runs.stub, OPERATOR)
    await session.open("w1", capacity=1)
    (run,) = await session.leases(1)
    await session.call.write(message(run))
    ack = await session.ack()
    assert ack.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and ack.message.startswith(f"invalid request: {field}:"), ack
    assert await runs.pool.fetchval("SELECT status FROM runs.runs WHERE id = $1", run.id) == "running"
    await session.complete(run)  # the session goes on
    assert (await session.ack()).status == pb.RUN_STATUS_COMPLETED
    session.cancel()


async def test_a_session_on_a_draining_replica_is_refused_as_unavailable(runs):
    runs.parts.sessions.drain()
    error = await _session_error(runs, _open())
    assert error.code() == grpc.StatusCode.UNAVAILABLE and reason_of(error) == "REPLICA_DRAINING"


async def test_a_session_in_batches_gets_leases_and_acks_together(runs, org):
    for i in range(4):
        await runs.enqueue(org, subject_id=f"b{i}")
    session = RawSession(runs.stub, OPERATOR)
    await session.call.write(pb.WorkSessionRequest(open=pb.SessionOpen(worker_id="w1", capacity=4, batches=True)))
    await session.read("opened")
    leased = list((await session.read("leases")).leases.runs)
    assert len(leased) == 4  # one claim, one message
    reports = pb.SessionReports(
        complete=[pb.SessionComplete(run_id=r.id, attempt=1, result_json='{"i": %d}' % i) for i, r in enumerate(leased[:2])],
        fail=[pb.SessionFail(run_id=leased[2].id, attempt=1, error_message="no")],
        release=[pb.SessionRelease(run_id=leased[3].id, attempt=1)],
    )
    await session.call.write(pb.WorkSessionRequest(reports=reports))
    acks = []
    while len(acks) < 4:
        reply = await session.read()
        if reply.WhichOneof("message") == "acks":
            acks += reply.acks.acks
    assert {(a.run_id, a.code, a.status) for a in acks} == {
        (leased[0].id, 0, pb.RUN_STATUS_COMPLETED),
        (leased[1].id, 0, pb.RUN_STATUS_COMPLETED),
        (leased[2].id, 0, pb.RUN_STATUS_FAILED),
        (leased[3].id, 0, pb.RUN_STATUS_PENDING),
    }
    assert runs.registry.get_sample_value("switchboard_runs_outcome_flushes_total") == 1  # one statement for all four
    session.cancel()


async def test_sessions_of_one_agent_are_bounded_per_replica(runs, org, monkeypatch):
    monkeypatch.setattr("switchboard.services.runs.sessions.MAX_SESSIONS_PER_AGENT", 2)
    metadata = worker_metadata(org, str(uuid.uuid4()))
    first, second = RawSession(runs.stub, metadata), RawSession(runs.stub, metadata)
    await first.open("w1")
    await second.open("w2")
    call = runs.stub.WorkSession(metadata=metadata)
    await call.write(_open())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reason_of(caught.value) == "TOO_MANY_SESSIONS"
    other = RawSession(runs.stub, worker_metadata(org, str(uuid.uuid4())))
    await other.open("w3")  # another agent's workers are not held back
    for session in (first, second, other):
        session.cancel()


async def test_claims_of_several_sessions_go_in_one_statement_and_share_a_short_supply(runs, org):
    for i in range(4):
        await runs.enqueue(org, subject_id=f"short{i}")
    runs.parts.sessions.start()
    claimer = runs.parts.sessions.claimer
    # Two requests waiting together (as sessions whose capacity freed at once): one statement.
    first = asyncio.ensure_future(claimer.claim("w1", ["action"], store.Scope(), 3))
    second = asyncio.ensure_future(claimer.claim("w2", ["action"], store.Scope(), 3))
    before = claimer.statements
    got = {"w1": await first, "w2": await second}
    assert claimer.statements - before == 1
    assert sorted(len(rows) for rows in got.values()) == [2, 2]  # 4 runs for 6 slots: dealt in turn
    assert {row["claimed_by"] for row in got["w1"]} == {"w1"} and {row["claimed_by"] for row in got["w2"]} == {"w2"}
    assert len({row["id"] for rows in got.values() for row in rows}) == 4


async def test_a_run_claimed_for_a_session_that_went_away_is_handed_back_at_once(runs, org):
    await runs.enqueue(org, subject_id="orphan")
    runs.parts.sessions.start()
    claimer = runs.parts.sessions.claimer
    blocker = await runs.pool.acquire()
    transaction = blocker.transaction()
    await transaction.start()
    try:
        await blocker.execute("LOCK TABLE runs.runs IN EXCLUSIVE MODE")  # the claim waits
        request = asyncio.ensure_future(claimer.claim("gone", ["action"], store.Scope(), 1))
        async with asyncio.timeout(5):
            while not await _waiting_on_a_lock(runs.pool, "WITH next AS"):
                await asyncio.sleep(0.01)
        request.cancel()  # the session ends while its claim is in the database
    finally:
        await transaction.rollback()
        await runs.pool.release(blocker)
    async with asyncio.timeout(5):
        while (row := await runs.pool.fetchrow("SELECT status, handbacks FROM runs.runs WHERE subject_id = 'orphan'"))["handbacks"] == 0:
            await asyncio.sleep(0.01)
    assert tuple(row.values()) == ("pending", 1)

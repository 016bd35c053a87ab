"""The run lifecycle through real gRPC on a real PostgreSQL: enqueue, claim, heartbeat, finish,
cancel, retries, fencing, tenant scope, bad input."""

from __future__ import annotations

import asyncio
import collections
import json
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.shared.errors import field_violations
from switchboard.runs.v1 import run_service_pb2 as pb
from tests.runs.conftest import OPERATOR, worker_metadata


async def expect(code: grpc.StatusCode, call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def test_a_run_goes_from_pending_to_running_to_completed(runs, org):
    run = await runs.enqueue(org, pb.LANE_ACTION, subject_id="s1", payload_json='{"a": 1}')
    assert run.status == pb.RUN_STATUS_PENDING and run.attempt == 0
    claimed = await runs.claim("w1")
    assert (claimed.id, claimed.status, claimed.attempt, claimed.claimed_by) == (run.id, pb.RUN_STATUS_RUNNING, 1, "w1")
    assert claimed.HasField("last_heartbeat_at")
    beat = await runs.stub.Heartbeat(pb.HeartbeatRequest(run_id=run.id, worker_id="w1", attempt=1), metadata=OPERATOR)
    assert not beat.cancel_requested
    done = await runs.stub.CompleteRun(
        pb.CompleteRunRequest(run_id=run.id, worker_id="w1", attempt=1, result_json='{"ok": true}'), metadata=OPERATOR
    )
    assert done.run.status == pb.RUN_STATUS_COMPLETED and json.loads(done.run.result_json) == {"ok": True}
    assert done.run.HasField("finished_at")
    assert await runs.claim("w1") is None


async def test_claims_take_auth_first_then_priority_then_age_and_respect_run_after(runs, org):
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    await runs.enqueue(org, pb.LANE_ACTION, subject_id="future", run_after=later, priority=1000)
    old_low = await runs.enqueue(org, pb.LANE_ACTION, subject_id="old-low")
    high = await runs.enqueue(org, pb.LANE_EMBED_BACKFILL, subject_id="high", priority=10)
    new_low = await runs.enqueue(org, pb.LANE_ACTION, subject_id="new-low")
    auth = await runs.enqueue(org, pb.LANE_AUTH, subject_id="auth", priority=-1000)
    order = [(await runs.claim()).id for _ in range(4)]
    assert order == [auth.id, high.id, old_low.id, new_low.id]
    assert await runs.claim() is None  # the future run waits for its run_after


async def test_claims_are_limited_to_the_lanes_asked_for(runs, org):
    sync = await runs.enqueue(org, pb.LANE_SYNC, subject_id="feed-1")
    await runs.enqueue(org, pb.LANE_WATCHER, subject_id="w")
    claimed = await runs.claim(lanes=[pb.LANE_SYNC])
    assert claimed.id == sync.id
    assert await runs.claim(lanes=[pb.LANE_SYNC, pb.LANE_ACTION]) is None


async def test_twenty_workers_claiming_over_a_thousand_runs_claim_each_exactly_once(runs, org):
    await runs.pool.executemany(
        "INSERT INTO runs.runs (id, organization_id, lane, subject_id) VALUES ($1, $2, 'action', $3)",
        [(str(uuid.uuid4()), org, f"s{i}") for i in range(1000)],
    )
    claims: list[tuple[str, str]] = []

    async def worker(name: str) -> None:
        while (run := await runs.claim(name)) is not None:
            claims.append((run.id, name))

    await asyncio.gather(*(worker(f"w{i}") for i in range(20)))
    counts = collections.Counter(run_id for run_id, _ in claims)
    assert len(counts) == 1000 and set(counts.values()) == {1}
    assert len({name for _, name in claims}) > 1  # the work really was shared
    assert await runs.pool.fetchval("SELECT count(*) FROM runs.runs WHERE status = 'running' AND attempt = 1") == 1000


async def test_one_active_sync_run_per_subject_even_when_enqueued_concurrently(runs, org):
    replies = await asyncio.gather(
        *(
            runs.stub.EnqueueRun(pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_SYNC, subject_id="feed-1"), metadata=OPERATOR)
            for _ in range(20)
        )
    )
    assert len({r.run.id for r in replies}) == 1 and sum(r.created for r in replies) == 1
    other_org = await runs.enqueue(str(uuid.uuid4()), pb.LANE_SYNC, subject_id="feed-1")
    assert other_org.id != replies[0].run.id  # subjects are scoped to their organisation
    # Once the run is final, the subject may have a new one.
    claimed = await runs.claim()
    await runs.stub.CompleteRun(pb.CompleteRunRequest(run_id=claimed.id, worker_id="worker-1", attempt=1), metadata=OPERATOR)
    again = await runs.stub.EnqueueRun(pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_SYNC, subject_id="feed-1"), metadata=OPERATOR)
    assert again.created and again.run.id != replies[0].run.id


async def test_an_idempotency_key_returns_the_active_run(runs, org):
    first = await runs.stub.EnqueueRun(
        pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION, idempotency_key="k1"), metadata=OPERATOR
    )
    second = await runs.stub.EnqueueRun(
        pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION, idempotency_key="k1", payload_json='{"x": 2}'),
        metadata=OPERATOR,
    )
    assert first.created and not second.created and second.run.id == first.run.id
    assert second.run.payload_json == "{}"  # the existing run, unchanged


async def test_a_stale_worker_is_fenced_out_and_changes_nothing(runs, org):
    run = await runs.enqueue(org, pb.LANE_ACTION, subject_id="s")
    await runs.claim("old-worker")
    # The old worker's claim is reaped and the run handed to someone else.
    await runs.pool.execute("UPDATE runs.runs SET last_heartbeat_at = now() - interval '1 hour' WHERE id = $1", run.id)
    sweep = await runs.reaper(stale_after_seconds=60).run_once()
    assert (sweep.acquired, sweep.reaped) == (True, 1)
    for call in (
        runs.stub.Heartbeat(pb.HeartbeatRequest(run_id=run.id, worker_id="old-worker", attempt=1), metadata=OPERATOR),
        runs.stub.CompleteRun(pb.CompleteRunRequest(run_id=run.id, worker_id="old-worker", attempt=1), metadata=OPERATOR),
        runs.stub.FailRun(pb.FailRunRequest(run_id=run.id, worker_id="old-worker", attempt=1, error_message="x"), metadata=OPERATOR),
    ):
        error = await expect(grpc.StatusCode.FAILED_PRECONDITION, call)
        assert "no longer current" in error.details()
    after = (await runs.stub.GetRun(pb.GetRunRequest(run_id=run.id), metadata=OPERATOR)).run
    assert (after.status, after.error_message) == (pb.RUN_STATUS_TIMEOUT, "worker_heartbeat_lost")


async def test_a_retried_run_fences_out_its_previous_attempt(runs, org):
    run = await runs.enqueue(org, pb.LANE_ACTION, subject_id="s", max_attempts=3)
    await runs.claim("w")
    failed = await runs.stub.FailRun(
        pb.FailRunRequest(run_id=run.id, worker_id="w", attempt=1, error_message="flaky upstream", retryable=True), metadata=OPERATOR
    )
    assert failed.run.status == pb.RUN_STATUS_PENDING and failed.run.error_message == "flaky upstream"
    delay = failed.run.run_after.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(seconds=0.5) < delay <= timedelta(seconds=2)  # base backoff 2 s with jitter
    await runs.pool.execute("UPDATE runs.runs SET run_after = now() WHERE id = $1", run.id)
    second = await runs.claim("w")
    assert second.attempt == 2
    await expect(grpc.StatusCode.FAILED_PRECONDITION, runs.stub.CompleteRun(pb.CompleteRunRequest(run_id=run.id, worker_id="w", attempt=1), metadata=OPERATOR))


async def test_retries_stop_at_max_attempts_with_the_last_error(runs, org):
    run = await runs.enqueue(org, pb.LANE_ACTION, subject_id="s", max_attempts=2)
    for attempt, expected in ((1, pb.RUN_STATUS_PENDING), (2, pb.RUN_STATUS_FAILED)):
        await runs.pool.execute("UPDATE runs.runs SET run_after = now() WHERE id = $1", run.id)
        claimed = await runs.claim("w")
        assert claimed.attempt == attempt
        reply = await runs.stub.FailRun(
            pb.FailRunRequest(run_id=run.id, worker_id="w", attempt=attempt, error_message=f"error {attempt}", retryable=True),
            metadata=OPERATOR,
        )
        assert reply.run.status == expected
    assert reply.run.error_message == "error 2"


async def test_cancel_ends_a_pending_run_and_asks_a_running_one_to_stop(runs, org):
    pending = await runs.enqueue(org, pb.LANE_ACTION, subject_id="p")
    cancelled = await runs.stub.CancelRun(pb.CancelRunRequest(run_id=pending.id), metadata=OPERATOR)
    assert cancelled.run.status == pb.RUN_STATUS_CANCELLED
    running = await runs.enqueue(org, pb.LANE_ACTION, subject_id="r")
    await runs.claim("w")
    asked = await runs.stub.CancelRun(pb.CancelRunRequest(run_id=running.id), metadata=OPERATOR)
    assert asked.run.status == pb.RUN_STATUS_RUNNING and asked.run.cancel_requested
    beat = await runs.stub.Heartbeat(pb.HeartbeatRequest(run_id=running.id, worker_id="w", attempt=1), metadata=OPERATOR)
    assert beat.cancel_requested
    stopped = await runs.stub.FailRun(
        pb.FailRunRequest(run_id=running.id, worker_id="w", attempt=1, error_message="cancelled", retryable=True), metadata=OPERATOR
    )
    assert stopped.run.status == pb.RUN_STATUS_CANCELLED
    again = await runs.stub.CancelRun(pb.CancelRunRequest(run_id=running.id), metadata=OPERATOR)
    assert again.run.status == pb.RUN_STATUS_CANCELLED  # idempotent
    done = await runs.enqueue(org, pb.LANE_ACTION, subject_id="d")
    await runs.claim("w")
    await runs.stub.CompleteRun(pb.CompleteRunRequest(run_id=done.id, worker_id="w", attempt=1), metadata=OPERATOR)
    await expect(grpc.StatusCode.FAILED_PRECONDITION, runs.stub.CancelRun(pb.CancelRunRequest(run_id=done.id), metadata=OPERATOR))


async def test_workers_act_only_on_runs_of_their_organisation(runs, org):
    other, agent = str(uuid.uuid4()), str(uuid.uuid4())
    mine = await runs.enqueue(org, pb.LANE_ACTION, subject_id="mine", agent_id=agent)
    theirs = await runs.enqueue(other, pb.LANE_ACTION, subject_id="theirs", agent_id=agent)
    me = worker_metadata(org, agent)
    claimed = await runs.claim("w", metadata=me)
    assert claimed.id == mine.id
    assert await runs.claim("w", metadata=me) is None  # the other organisation's run is not offered
    await expect(grpc.StatusCode.NOT_FOUND, runs.stub.GetRun(pb.GetRunRequest(run_id=theirs.id), metadata=me))
    await expect(grpc.StatusCode.NOT_FOUND, runs.stub.CancelRun(pb.CancelRunRequest(run_id=theirs.id), metadata=me))
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        runs.stub.EnqueueRun(pb.EnqueueRunRequest(organization_id=other, lane=pb.LANE_ACTION), metadata=me),
    )
    await expect(grpc.StatusCode.PERMISSION_DENIED, runs.stub.ListRuns(pb.ListRunsRequest(organization_id=other), metadata=me))
    await expect(grpc.StatusCode.PERMISSION_DENIED, runs.stub.ReapStaleRuns(pb.ReapStaleRunsRequest(), metadata=me))


async def test_workers_act_only_on_their_own_agents_runs(runs, org):
    """Issue 13: a worker is confined to its agent, not just its organisation."""
    a1, a2 = str(uuid.uuid4()), str(uuid.uuid4())
    theirs = await runs.enqueue(org, pb.LANE_ACTION, subject_id="a2", agent_id=a2)
    unassigned = await runs.enqueue(org, pb.LANE_ACTION, subject_id="org-wide")
    intruder = worker_metadata(org, a1)
    assert await runs.claim("intruder", metadata=intruder) is None  # neither a2's run nor the org-wide one
    owner = worker_metadata(org, a2)
    claimed = await runs.claim("w2", metadata=owner)
    assert claimed.id == theirs.id and claimed.agent_id == a2
    fenced = dict(run_id=theirs.id, worker_id="w2", attempt=1)
    for call in (
        runs.stub.GetRun(pb.GetRunRequest(run_id=theirs.id), metadata=intruder),
        runs.stub.CancelRun(pb.CancelRunRequest(run_id=theirs.id), metadata=intruder),
        runs.stub.Heartbeat(pb.HeartbeatRequest(**fenced), metadata=intruder),
        runs.stub.CompleteRun(pb.CompleteRunRequest(**fenced, result_json='{"forged": true}'), metadata=intruder),
        runs.stub.FailRun(pb.FailRunRequest(**fenced, error_message="forged"), metadata=intruder),
        runs.stub.GetRun(pb.GetRunRequest(run_id=unassigned.id), metadata=intruder),
    ):
        await expect(grpc.StatusCode.NOT_FOUND, call)
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        runs.stub.EnqueueRun(pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION, agent_id=a2), metadata=intruder),
    )
    listed = await runs.stub.ListRuns(pb.ListRunsRequest(organization_id=org), metadata=intruder)
    assert list(listed.runs) == []
    # Nothing the intruder sent changed the run; its own worker still holds and finishes it.
    after = await runs.stub.GetRun(pb.GetRunRequest(run_id=theirs.id), metadata=OPERATOR)
    assert (after.run.status, after.run.cancel_requested, after.run.result_json) == (pb.RUN_STATUS_RUNNING, False, "")
    done = await runs.stub.CompleteRun(pb.CompleteRunRequest(**fenced, result_json="{}"), metadata=owner)
    assert done.run.status == pb.RUN_STATUS_COMPLETED
    # A worker's own enqueue is stamped with its agent.
    own = await runs.stub.EnqueueRun(pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION), metadata=intruder)
    assert own.run.agent_id == a1


async def test_list_runs_filters_and_pages_newest_first(runs, org):
    ids = [(await runs.enqueue(org, pb.LANE_ACTION, subject_id=f"s{i}")).id for i in range(5)]
    await runs.enqueue(org, pb.LANE_SYNC, subject_id="feed")
    seen, token = [], ""
    while True:
        page = await runs.stub.ListRuns(
            pb.ListRunsRequest(organization_id=org, lanes=[pb.LANE_ACTION], page_size=2, page_token=token), metadata=OPERATOR
        )
        seen += [r.id for r in page.runs]
        if not (token := page.next_page_token):
            break
    assert seen == list(reversed(ids))
    by_subject = await runs.stub.ListRuns(pb.ListRunsRequest(organization_id=org, subject_id="feed"), metadata=OPERATOR)
    assert [r.lane for r in by_subject.runs] == [pb.LANE_SYNC]


@pytest.mark.parametrize(
    "request_message, fields",
    [
        (pb.EnqueueRunRequest(organization_id="x", lane=pb.LANE_UNSPECIFIED), ["organization_id", "lane"]),
        (pb.EnqueueRunRequest(organization_id=str(uuid.uuid4()), lane=pb.LANE_SYNC), ["subject_id"]),
        (
            pb.EnqueueRunRequest(organization_id=str(uuid.uuid4()), lane=pb.LANE_ACTION, payload_json="{nope", priority=5000, max_attempts=101),
            ["payload_json", "priority", "max_attempts"],
        ),
        (pb.EnqueueRunRequest(organization_id=str(uuid.uuid4()), lane=pb.LANE_ACTION, payload_json='"' + "x" * (1 << 20) + '"'), ["payload_json"]),
        (pb.ClaimRunRequest(worker_id="", lanes=[pb.LANE_UNSPECIFIED]), ["worker_id", "lanes[0]"]),
        (pb.HeartbeatRequest(run_id="r", worker_id="w", attempt=0), ["run_id", "attempt"]),
        (pb.FailRunRequest(run_id=str(uuid.uuid4()), worker_id="w", attempt=1, error_message=" "), ["error_message"]),
    ],
    ids=["ids-and-lane", "sync-without-subject", "payload-priority-attempts", "oversized-payload", "claim", "heartbeat", "fail"],
)
async def test_bad_input_is_invalid_argument_with_field_violations(runs, request_message, fields):
    method = getattr(runs.stub, type(request_message).__name__.removesuffix("Request"))
    error = await expect(grpc.StatusCode.INVALID_ARGUMENT, method(request_message, metadata=OPERATOR))
    assert [v.field for v in field_violations(error)] == fields
    assert await runs.pool.fetchval("SELECT count(*) FROM runs.runs") == 0


async def test_another_worker_presenting_the_current_attempt_is_fenced_out(runs, org):
    run = await runs.enqueue(org, pb.LANE_ACTION, subject_id="s")
    await runs.claim("rightful")
    for call in (
        runs.stub.Heartbeat(pb.HeartbeatRequest(run_id=run.id, worker_id="impostor", attempt=1), metadata=OPERATOR),
        runs.stub.CompleteRun(pb.CompleteRunRequest(run_id=run.id, worker_id="impostor", attempt=1), metadata=OPERATOR),
        runs.stub.FailRun(pb.FailRunRequest(run_id=run.id, worker_id="impostor", attempt=1, error_message="x"), metadata=OPERATOR),
    ):
        await expect(grpc.StatusCode.FAILED_PRECONDITION, call)
    after = (await runs.stub.GetRun(pb.GetRunRequest(run_id=run.id), metadata=OPERATOR)).run
    assert (after.status, after.claimed_by, after.error_message) == (pb.RUN_STATUS_RUNNING, "rightful", "")


async def test_acting_users_are_refused_as_unavailable_when_identity_cannot_be_asked(runs, org):
    """Fail closed: without identity to tell the user's role, an acting user gets nothing."""
    acting = (*OPERATOR, ("x-switchboard-user-id", str(uuid.uuid4())))
    await expect(grpc.StatusCode.UNAVAILABLE, runs.stub.ListRuns(pb.ListRunsRequest(organization_id=org), metadata=acting))
    await expect(
        grpc.StatusCode.UNAVAILABLE,
        runs.stub.EnqueueRun(pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION), metadata=acting),
    )
    assert await runs.pool.fetchval("SELECT count(*) FROM runs.runs") == 0


async def test_forged_page_tokens_and_impossible_times_are_invalid_argument(runs, org):
    import base64

    forged = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", "zz"]').decode().rstrip("=")
    error = await expect(grpc.StatusCode.INVALID_ARGUMENT, runs.stub.ListRuns(pb.ListRunsRequest(organization_id=org, page_token=forged), metadata=OPERATOR))
    assert [v.field for v in field_violations(error)] == ["page_token"]
    request = pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION)
    request.run_after.seconds = 10**12  # beyond year 9999
    error = await expect(grpc.StatusCode.INVALID_ARGUMENT, runs.stub.EnqueueRun(request, metadata=OPERATOR))
    assert [v.field for v in field_violations(error)] == ["run_after"]


async def test_one_agents_subject_or_idempotency_key_neither_reveals_nor_blocks_anothers_run(runs, org):
    """Review finding: a worker of a1 enqueuing with a2's idempotency key or sync subject got a2's
    run back (payload included), and could squat a2's subject with a run a2 could never take."""
    a1, a2 = str(uuid.uuid4()), str(uuid.uuid4())
    theirs_meta, mine_meta = worker_metadata(org, a2), worker_metadata(org, a1)
    secret = '{"a2_private": "payroll"}'
    keyed = (await runs.stub.EnqueueRun(
        pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION, payload_json=secret, idempotency_key="k-1"), metadata=theirs_meta
    )).run  # fmt: skip
    synced = (await runs.stub.EnqueueRun(
        pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_SYNC, subject_id="slack:C123", payload_json=secret), metadata=theirs_meta
    )).run  # fmt: skip
    for request in (
        pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION, idempotency_key="k-1"),
        pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_SYNC, subject_id="slack:C123"),
    ):
        reply = await runs.stub.EnqueueRun(request, metadata=mine_meta)
        assert reply.created and reply.run.agent_id == a1 and reply.run.id not in (keyed.id, synced.id)
        assert "payroll" not in str(reply)
    # The same key again, by its own agent, still finds its own active run.
    again = await runs.stub.EnqueueRun(
        pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION, idempotency_key="k-1"), metadata=theirs_meta
    )
    assert (again.created, again.run.id) == (False, keyed.id)

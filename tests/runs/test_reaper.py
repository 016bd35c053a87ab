"""The reaper: stale runs timed out once, sync runs retried once, whoever sweeps, on an index that
keeps the sweep proportional to the runs in flight."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import grpc
import pytest

from switchboard.services.runs.store import REAP_STALE_SQL
from switchboard.runs.v1 import run_service_pb2 as pb
from tests.runs.conftest import OPERATOR, running_runs


async def test_a_silent_worker_is_reaped_within_five_seconds_and_its_sync_retried(migrated_database):
    org = str(uuid.uuid4())
    async with running_runs(
        migrated_database, start_reaper=True, runs_reaper_interval_seconds=1.0, runs_reaper_stale_after_seconds=3.0
    ) as runs:
        run = await runs.enqueue(org, pb.LANE_SYNC, subject_id="feed-9", payload_json='{"cursor": 7}')
        claimed = await runs.claim("doomed-worker")
        assert claimed.id == run.id
        # The worker now stops heartbeating. Watch the run until the reaper has taken it.
        async with asyncio.timeout(5):
            while (current := (await runs.stub.GetRun(pb.GetRunRequest(run_id=run.id), metadata=OPERATOR)).run).status == pb.RUN_STATUS_RUNNING:
                await asyncio.sleep(0.1)
        assert (current.status, current.error_message) == (pb.RUN_STATUS_TIMEOUT, "worker_heartbeat_lost")
        active = await runs.stub.ListRuns(
            pb.ListRunsRequest(organization_id=org, subject_id="feed-9", statuses=[pb.RUN_STATUS_PENDING, pb.RUN_STATUS_RUNNING]),
            metadata=OPERATOR,
        )
        assert len(active.runs) == 1
        retry = active.runs[0]
        assert retry.id != run.id and retry.status == pb.RUN_STATUS_PENDING and json.loads(retry.payload_json) == {"cursor": 7}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await runs.stub.CompleteRun(pb.CompleteRunRequest(run_id=run.id, worker_id="doomed-worker", attempt=1), metadata=OPERATOR)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        metrics = runs.registry.get_sample_value("switchboard_runs_reaped_total")
        assert metrics == 1.0


async def test_heartbeating_runs_are_left_alone(runs):
    org = str(uuid.uuid4())
    await runs.enqueue(org, pb.LANE_ACTION, subject_id="a")
    await runs.claim("w")
    sweep = await runs.reaper(stale_after_seconds=60).run_once()
    assert (sweep.acquired, sweep.reaped) == (True, 0)


async def make_stale(runs, count_sync: int, count_action: int) -> str:
    org = str(uuid.uuid4())
    rows = [(str(uuid.uuid4()), org, "sync", f"feed-{i}") for i in range(count_sync)]
    rows += [(str(uuid.uuid4()), org, "action", f"a-{i}") for i in range(count_action)]
    await runs.pool.executemany(
        """INSERT INTO runs.runs (id, organization_id, lane, subject_id, status, attempt, claimed_by, claimed_at,
                                  last_heartbeat_at)
           VALUES ($1, $2, $3, $4, 'running', 1, 'dead', now() - interval '1 hour', now() - interval '1 hour')""",
        rows,
    )
    return org


async def test_replicas_sweeping_at_once_reap_each_run_once_and_retry_each_sync_once(runs):
    org = await make_stale(runs, count_sync=150, count_action=150)
    replicas = [runs.reaper(stale_after_seconds=60, batch_size=40) for _ in range(4)]
    sweeps = []

    async def sweep_until_done(reaper) -> None:
        while await runs.pool.fetchval("SELECT count(*) FROM runs.runs WHERE status = 'running'"):
            sweeps.append(await reaper.run_once())

    await asyncio.gather(*(sweep_until_done(r) for r in replicas))
    assert sum(s.reaped for s in sweeps) == 300
    assert sum(s.retries_created for s in sweeps) == 150
    per_subject = await runs.pool.fetch(
        """SELECT subject_id, count(*) FILTER (WHERE status = 'pending') AS pending,
                  count(*) FILTER (WHERE status = 'timeout') AS timed_out
           FROM runs.runs WHERE organization_id = $1 AND lane = 'sync' GROUP BY subject_id""",
        org,
    )
    assert len(per_subject) == 150 and {(r["pending"], r["timed_out"]) for r in per_subject} == {(1, 1)}


async def test_a_second_sweep_finds_nothing_left_to_reap_or_retry(runs):
    org = await make_stale(runs, count_sync=1, count_action=0)
    sweep = await runs.reaper(stale_after_seconds=60).run_once()
    assert (sweep.reaped, sweep.retries_created) == (1, 1)
    second = await runs.reaper(stale_after_seconds=60).run_once()
    assert (second.reaped, second.retries_created) == (0, 0)
    assert await runs.pool.fetchval("SELECT count(*) FROM runs.runs WHERE organization_id = $1 AND status = 'pending'", org) == 1


async def test_watcher_runs_have_their_own_thresholds(runs):
    org = str(uuid.uuid4())
    await runs.pool.executemany(
        """INSERT INTO runs.runs (id, organization_id, lane, subject_id, status, attempt, claimed_by, claimed_at,
                                  last_heartbeat_at, heartbeats)
           VALUES ($1, $2, 'watcher', $3, 'running', 1, 'w', now() - $4::interval, now() - $5::interval, $6)""",
        [
            (str(uuid.uuid4()), org, "silent-long", timedelta(hours=1), timedelta(minutes=5), 3),  # went silent: reaped
            (str(uuid.uuid4()), org, "busy", timedelta(hours=1), timedelta(minutes=1), 3),  # heartbeating: kept
            (str(uuid.uuid4()), org, "starting", timedelta(hours=1), timedelta(hours=1), 0),  # never beat, < 2 h: kept
            (str(uuid.uuid4()), org, "stuck", timedelta(hours=3), timedelta(hours=3), 0),  # never beat, > 2 h: reaped
        ],
    )
    sweep = await runs.reaper(stale_after_seconds=60).run_once()
    assert sweep.reaped == 2
    reaped = await runs.pool.fetch("SELECT subject_id FROM runs.runs WHERE status = 'timeout' ORDER BY subject_id")
    assert [r["subject_id"] for r in reaped] == ["silent-long", "stuck"]


async def test_cancelled_or_exhausted_sync_runs_are_not_retried_and_retries_keep_counting(runs):
    org = str(uuid.uuid4())
    await runs.pool.executemany(
        """INSERT INTO runs.runs (id, organization_id, lane, subject_id, status, attempt, max_attempts, claimed_by,
                                  claimed_at, last_heartbeat_at, cancel_requested)
           VALUES ($1, $2, 'sync', $3, 'running', $4, 3, 'dead', now() - interval '1 hour', now() - interval '1 hour', $5)""",
        [
            (str(uuid.uuid4()), org, "cancelled", 1, True),
            (str(uuid.uuid4()), org, "exhausted", 3, False),
            (str(uuid.uuid4()), org, "retried", 2, False),
        ],
    )
    sweep = await runs.reaper(stale_after_seconds=60).run_once()
    assert (sweep.reaped, sweep.retries_created) == (3, 1)
    retry = await runs.pool.fetchrow("SELECT * FROM runs.runs WHERE organization_id = $1 AND status = 'pending'", org)
    assert retry["subject_id"] == "retried" and retry["attempt"] == 2  # its next claim is attempt 3, the last
    assert retry["run_after"] > await runs.pool.fetchval("SELECT now()")  # after a backoff


async def test_the_sweep_uses_the_partial_index(runs):
    org = str(uuid.uuid4())
    await runs.pool.execute(
        """INSERT INTO runs.runs (id, organization_id, lane, subject_id, status, finished_at)
           SELECT gen_random_uuid(), $1, 'action', 's' || g, 'completed', now() FROM generate_series(1, 20000) g""",
        org,
    )
    await make_stale(runs, count_sync=5, count_action=5)
    await runs.pool.execute("ANALYZE runs.runs")
    async with runs.pool.acquire() as conn:
        await conn.execute("SET search_path TO runs")
        # The statement the reaper really runs (EXPLAIN without ANALYZE does not execute it).
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + REAP_STALE_SQL, 120.0, 7200.0, 180.0, 1000, 2.0, 600.0)
    assert '"Index Name": "runs_reapable"' in plan, plan
    assert '"Index Name": "runs_running_watchers"' in plan, plan


async def test_reap_stale_runs_is_for_operators(runs):
    org = await make_stale(runs, count_sync=2, count_action=0)
    reply = await runs.stub.ReapStaleRuns(pb.ReapStaleRunsRequest(), metadata=OPERATOR)
    assert (reply.acquired, reply.reaped, reply.retries_created) == (True, 2, 2)
    assert org

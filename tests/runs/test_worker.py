"""The worker library's session loop (switchboard.worker.Worker) against a real runs service:
outcomes from the handler, pushed cancellation, drain and reconnect, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import timedelta

from switchboard.worker import Retryable, Worker
from switchboard.runs.v1 import run_service_pb2 as pb
from tests.conftest import INTERNAL_TOKEN, REPO_ROOT
from tests.runs.conftest import OPERATOR, running_runs
from tests.runs.sessions_support import StubTools
from tests.support.worker_keys import ISSUER


def worker_token(organization_id: str, agent_id: str) -> str:
    return ISSUER.issue(organization_id=organization_id, agent_id=agent_id, connection_id=None, ttl=timedelta(minutes=10)).token


async def test_the_handlers_return_or_exception_completes_or_fails_the_run(runs, org):
    agent = str(uuid.uuid4())
    for outcome in ("ok", "retry", "boom"):
        await runs.enqueue(org, subject_id=outcome, payload_json=json.dumps({"do": outcome}), agent_id=agent, max_attempts=2)
    handled: list[str] = []

    async def handler(context) -> dict:
        handled.append(context.payload["do"])
        if len(handled) == 3:
            worker.stop()
        if context.payload["do"] == "retry":
            raise Retryable("try again later")
        if context.payload["do"] == "boom":
            raise ValueError("no good")
        return {"done": context.attempt}

    worker = Worker(f"127.0.0.1:{runs.port}", worker_token(org, agent), ["action"], 3, handler, tools=StubTools())
    async with asyncio.timeout(10):
        await worker.run()  # returns once every outcome is acknowledged
    rows = {r["subject_id"]: r for r in await runs.pool.fetch("SELECT * FROM runs.runs WHERE organization_id = $1", org)}
    assert sorted(handled) == ["boom", "ok", "retry"]
    assert (rows["ok"]["status"], json.loads(rows["ok"]["result_json"])) == ("completed", {"done": 1})
    assert (rows["retry"]["status"], rows["retry"]["error_message"]) == ("pending", "Retryable: try again later")
    assert (rows["boom"]["status"], rows["boom"]["error_message"]) == ("failed", "ValueError: no good")


async def test_a_cancel_reaches_the_handler_within_one_second(runs, org):
    runs.parts.sessions.poll_seconds = 60.0
    run = await runs.enqueue(org, subject_id="long")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(context) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # works until cancelled
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = Worker(f"127.0.0.1:{runs.port}", INTERNAL_TOKEN, ["action"], 1, handler, tools=StubTools())  # an internal worker
    running = asyncio.create_task(worker.run())
    async with asyncio.timeout(5):
        await started.wait()
        await runs.parts.sessions.listening.wait()
    await runs.stub.CancelRun(pb.CancelRunRequest(run_id=run.id), metadata=OPERATOR)
    sent = time.perf_counter()
    async with asyncio.timeout(1):
        await cancelled.wait()
    assert time.perf_counter() - sent < 1
    worker.stop()
    async with asyncio.timeout(5):
        await running
    assert await runs.pool.fetchval("SELECT status FROM runs.runs WHERE id = $1", run.id) == "cancelled"


async def test_a_drained_replica_sends_the_worker_to_another_which_keeps_its_runs(migrated_database):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    async with running_runs(migrated_database) as first, running_runs(migrated_database) as second:
        for i in range(2):
            await first.enqueue(org, subject_id=f"d{i}", agent_id=agent)
        both_started, proceed = asyncio.Event(), asyncio.Event()
        started = 0

        async def handler(context) -> str:
            nonlocal started
            started += 1
            if started == 2:
                both_started.set()
            await proceed.wait()
            return "ok"

        worker = Worker(
            [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"], worker_token(org, agent), [], 2, handler, tools=StubTools()
        )
        running = asyncio.create_task(worker.run())
        async with asyncio.timeout(5):
            await both_started.wait()
        first.parts.sessions.drain()
        async with asyncio.timeout(5):
            while worker.sessions_opened < 2:  # the session on the second replica is open
                await asyncio.sleep(0.01)
        assert second.parts.sessions.session_count == 1
        proceed.set()
        worker.stop()
        async with asyncio.timeout(5):
            await running
        rows = await first.pool.fetch("SELECT status, attempt, claimed_by FROM runs.runs WHERE organization_id = $1", org)
        assert [tuple(r.values()) for r in rows] == [("completed", 1, worker.worker_id)] * 2
        assert second.registry.get_sample_value("switchboard_runs_session_outcomes_total", {"kind": "complete"}) == 2
        assert first.registry.get_sample_value("switchboard_runs_session_outcomes_total", {"kind": "complete"}) is None


async def test_sigterm_finishes_or_hands_back_the_runs_held_and_exits_zero(runs, org):
    agent = str(uuid.uuid4())
    short = await runs.enqueue(org, subject_id="short", payload_json='{"seconds": 1.5}', agent_id=agent)
    long = await runs.enqueue(org, subject_id="long", payload_json='{"seconds": 600}', agent_id=agent)
    # The worker handles 2 at once and prefetches 2: this one waits for a handler when SIGTERM comes.
    queued = await runs.enqueue(org, subject_id="queued", payload_json='{"seconds": 600}', agent_id=agent)
    worker_id = f"sigterm-{uuid.uuid4().hex[:6]}"
    grace = 3.0
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.runs.worker_process", f"127.0.0.1:{runs.port}", worker_token(org, agent), worker_id, str(grace),
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    try:
        async with asyncio.timeout(10):
            while await runs.pool.fetchval("SELECT count(*) FROM runs.runs WHERE claimed_by = $1 AND status = 'running'", worker_id) < 3:
                await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stopped = time.perf_counter()
        async with asyncio.timeout(grace + 2):
            code = await process.wait()
        assert code == 0
        assert time.perf_counter() - stopped < grace + 0.5
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    finished = await runs.pool.fetchrow("SELECT status, result_json FROM runs.runs WHERE id = $1", short.id)
    assert (finished["status"], json.loads(finished["result_json"])) == ("completed", {"slept": 1.5})
    for run in (long, queued):
        handed_back = await runs.pool.fetchrow("SELECT status, attempt, handbacks FROM runs.runs WHERE id = $1", run.id)
        assert tuple(handed_back.values()) == ("pending", 1, 1)  # pending at once: nothing waits for the reaper


async def test_a_worker_that_reaches_no_replica_keeps_trying_and_stops_at_once_holding_nothing(monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setattr("switchboard.worker.session.RECONNECT_FIRST_SECONDS", 1.0)  # backoffs of 0.5 s and more

    async def handler(context) -> None:
        raise AssertionError("no run can be leased")

    worker = Worker([f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"], INTERNAL_TOKEN, [], 1, handler, tools=StubTools())
    running = asyncio.create_task(worker.run())
    async with asyncio.timeout(5):
        while worker.connect_failures < 2:  # it went on to the next address, and is backing off again
            await asyncio.sleep(0.01)
    worker.stop()
    async with asyncio.timeout(0.4):  # not the rest of a 1-2 s backoff, nor the grace period: nothing is held
        await running
    assert worker.sessions_opened == 0


async def test_a_worker_given_events_target_publishes_to_the_event_service_there(runs, org, migrated_database):
    # The runs and event services on different addresses (as `switchboard up` runs them): the
    # worker's own tools must publish to the EventService's address, not to the runs service's.
    from tests.interactions.conftest import replica  # noqa: PLC0415 - the interactions fixture, only here

    agent = str(uuid.uuid4())
    await runs.enqueue(org, subject_id="speak", agent_id=agent)

    async def handler(context) -> dict:
        sequence = await context.publish("agent.output", {"text": "hello"})
        worker.stop()
        return {"sequence": sequence}

    async with replica(migrated_database) as events:
        worker = Worker(
            f"127.0.0.1:{runs.port}", worker_token(org, agent), ["action"], 1, handler,
            events_target=f"127.0.0.1:{events.port}",
        )  # fmt: skip
        async with asyncio.timeout(10):
            await worker.run()
        stored = await events.pool.fetch(
            "SELECT sequence, type FROM interactions.events WHERE organization_id = $1 AND stream = $2", org, f"agents/{agent}"
        )
    row = await runs.pool.fetchrow("SELECT status, result_json FROM runs.runs WHERE organization_id = $1", org)
    assert [(r["sequence"], r["type"]) for r in stored] == [(1, "agent.output")]
    assert (row["status"], json.loads(row["result_json"])) == ("completed", {"sequence": 1})

"""The runs service's gRPC servicer: thin (parse, authorise, call the store or lifecycle.py, encode)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import grpc

from switchboard.services.runs import domain, lifecycle, store
from switchboard.services.runs.metrics import RunMetrics
from switchboard.services.runs.reaper import Reaper
from switchboard.services.runs.serialize import run_message
from switchboard.services.runs.session_messages import parse_open
from switchboard.services.runs.sessions import SessionHub
from switchboard.shared.authz import Role, Target, current_access, policy
from switchboard.shared.errors import NotFound
from switchboard.shared.pagination import decode_page_token, page_of
from switchboard.shared.validation import Violations
from switchboard.runs.v1 import run_service_pb2 as pb
from switchboard.runs.v1 import run_service_pb2_grpc

Context = grpc.aio.ServicerContext


def _scope() -> store.Scope:
    """The runs this call may touch: a worker's own agent's in its organisation, an acting user's
    organisation (checked by the policy), or any for an operator."""
    access = current_access()
    return store.Scope(access.organization_id, access.agent_id)


# Calls on one run are authorised in the run's organisation (NOT_FOUND when it is not the caller's).
RUN = Target("run_id", locate="organization_of_run", noun="run")


def _fencing(v: Violations, request: pb.HeartbeatRequest | pb.CompleteRunRequest | pb.FailRunRequest) -> tuple[str, str, int]:
    run_id = v.uuid("run_id", request.run_id)
    worker_id = v.text("worker_id", request.worker_id, max_length=domain.MAX_TEXT)
    if request.attempt < 1:
        v.add("attempt", "must be the attempt returned by ClaimRun (1 or more)")
    return run_id, worker_id, request.attempt


class RunService(run_service_pb2_grpc.RunServiceServicer):
    """switchboard.runs.v1.RunService."""

    def __init__(self, pool: asyncpg.Pool, reaper: Reaper, metrics: RunMetrics, sessions: SessionHub):
        self._pool = pool
        self._reaper = reaper
        self._metrics = metrics
        self._sessions = sessions

    async def organization_of_run(self, run_id: str) -> str | None:
        return await store.run_organization(self._pool, run_id)

    @policy(user=Role.ADMIN, worker="agent", target="organization_id", agent="agent_id")
    async def EnqueueRun(self, request: pb.EnqueueRunRequest, context: Context) -> pb.EnqueueRunResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        lane = domain.LANES.get(request.lane)
        if lane is None:
            v.add("lane", "must be a LANE_* value other than LANE_UNSPECIFIED")
        subject_id = v.text("subject_id", request.subject_id, max_length=domain.MAX_TEXT, required=lane == "sync")
        payload_json = domain.json_text(v, "payload_json", request.payload_json)
        if not -1000 <= request.priority <= 1000:
            v.add("priority", "must be from -1000 to 1000")
        key = v.text("idempotency_key", request.idempotency_key, max_length=domain.MAX_TEXT, required=False) or None
        run_after = v.timestamp("run_after", request)
        max_attempts = request.max_attempts or domain.DEFAULT_MAX_ATTEMPTS
        if not 1 <= max_attempts <= 100:
            v.add("max_attempts", "must be from 1 to 100 (0 means 5)")
        agent_id = v.uuid("agent_id", request.agent_id, required=False) or None
        v.check()
        assert lane is not None
        agent_id = current_access().agent_id or agent_id  # a worker's run is its own agent's
        row, created = await lifecycle.enqueue(
            self._pool,
            organization_id=organization_id,
            lane=lane,
            subject_id=subject_id,
            payload_json=payload_json,
            priority=request.priority,
            run_after=run_after,
            idempotency_key=key,
            max_attempts=max_attempts,
            agent_id=agent_id,
        )
        if created:
            self._metrics.entered(lane, "pending")
        return pb.EnqueueRunResponse(run=run_message(row), created=created)

    @policy(worker="agent")
    async def ClaimRun(self, request: pb.ClaimRunRequest, context: Context) -> pb.ClaimRunResponse:
        v = Violations()
        worker_id = v.text("worker_id", request.worker_id, max_length=domain.MAX_TEXT)
        lanes = domain.lanes(v, "lanes", list(request.lanes), empty_means_all=True)
        v.check()
        started = time.perf_counter()
        row = await store.run_claim(self._pool, worker_id, lanes or [], _scope())
        self._metrics.claim_seconds.observe(time.perf_counter() - started)
        if row is None:
            return pb.ClaimRunResponse()
        self._metrics.entered(row["lane"], "running")
        return pb.ClaimRunResponse(run=run_message(row))

    @policy(worker="agent")
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Context) -> pb.HeartbeatResponse:
        v = Violations()
        run_id, worker_id, attempt = _fencing(v, request)
        v.check()
        scope = _scope()
        cancel_requested = await store.run_heartbeat(self._pool, run_id, worker_id, attempt, scope)
        if cancel_requested is None:
            raise domain.claim_not_current(run_id, await store.run_get(self._pool, run_id, scope), worker_id, attempt)
        return pb.HeartbeatResponse(cancel_requested=cancel_requested)

    @policy(worker="agent")
    async def CompleteRun(self, request: pb.CompleteRunRequest, context: Context) -> pb.CompleteRunResponse:
        v = Violations()
        run_id, worker_id, attempt = _fencing(v, request)
        result_json = domain.json_text(v, "result_json", request.result_json)
        v.check()
        scope = _scope()
        row = await store.run_complete(self._pool, run_id, worker_id, attempt, scope, result_json)
        if row is None:
            raise domain.claim_not_current(run_id, await store.run_get(self._pool, run_id, scope), worker_id, attempt)
        self._metrics.entered(row["lane"], "completed")
        return pb.CompleteRunResponse(run=run_message(row))

    @policy(worker="agent")
    async def FailRun(self, request: pb.FailRunRequest, context: Context) -> pb.FailRunResponse:
        v = Violations()
        run_id, worker_id, attempt = _fencing(v, request)
        error_message = v.document("error_message", request.error_message, max_length=1 << 20, required=True)
        v.check()
        scope = _scope()
        row = await store.run_fail(
            self._pool,
            run_id,
            worker_id,
            attempt,
            scope,
            error_message.strip()[: domain.MAX_ERROR_MESSAGE],
            request.retryable,
            domain.RETRY_BACKOFF_BASE_SECONDS,
            domain.RETRY_BACKOFF_MAX_SECONDS,
        )
        if row is None:
            raise domain.claim_not_current(run_id, await store.run_get(self._pool, run_id, scope), worker_id, attempt)
        self._metrics.entered(row["lane"], row["status"])
        return pb.FailRunResponse(run=run_message(row))

    @policy(user=Role.ADMIN, worker="agent", target=RUN)
    async def CancelRun(self, request: pb.CancelRunRequest, context: Context) -> pb.CancelRunResponse:
        v = Violations()
        run_id = v.uuid("run_id", request.run_id)
        v.check()
        cancelled = await lifecycle.cancel(self._pool, run_id, _scope())
        if cancelled.outcome is lifecycle.Cancel.CANCELLED:
            self._metrics.entered(cancelled.run["lane"], "cancelled")
        return pb.CancelRunResponse(run=run_message(cancelled.run))

    @policy(user=Role.MEMBER, worker="agent", target=RUN)
    async def GetRun(self, request: pb.GetRunRequest, context: Context) -> pb.GetRunResponse:
        v = Violations()
        run_id = v.uuid("run_id", request.run_id)
        v.check()
        row = await store.run_get(self._pool, run_id, _scope())
        if row is None:
            raise NotFound(f"run {run_id} does not exist", reason="RUN_NOT_FOUND")
        return pb.GetRunResponse(run=run_message(row))

    @policy(user=Role.MEMBER, worker="agent", target="organization_id", agent="agent_id")
    async def ListRuns(self, request: pb.ListRunsRequest, context: Context) -> pb.ListRunsResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        lanes = domain.lanes(v, "lanes", list(request.lanes), empty_means_all=False)
        statuses = []
        for index, value in enumerate(request.statuses):
            if value not in domain.STATUSES:
                v.add(f"statuses[{index}]", "must be a RUN_STATUS_* value other than RUN_STATUS_UNSPECIFIED")
            else:
                statuses.append(domain.STATUSES[value])
        subject_id = v.text("subject_id", request.subject_id, max_length=domain.MAX_TEXT, required=False) or None
        page_size = v.page_size("page_size", request.page_size)
        v.check()
        agent_id = v.uuid("agent_id", request.agent_id, required=False) or None
        v.check()
        before = decode_page_token(request, (datetime, uuid.UUID))
        agent_id = current_access().agent_id or agent_id  # a worker lists its own agent's runs
        rows = await store.run_list(
            self._pool,
            organization_id,
            lanes=lanes,
            statuses=statuses or None,
            subject_id=subject_id,
            before=before,
            limit=page_size + 1,
            agent_id=agent_id,
        )
        rows, next_token = page_of(rows, page_size, lambda r: (r["created_at"], str(r["id"])), request)
        return pb.ListRunsResponse(runs=[run_message(r) for r in rows], next_page_token=next_token)

    @policy()
    async def ReapStaleRuns(self, request: pb.ReapStaleRunsRequest, context: Context) -> pb.ReapStaleRunsResponse:
        sweep = await self._reaper.run_once()
        return pb.ReapStaleRunsResponse(acquired=sweep.acquired, reaped=sweep.reaped, retries_created=sweep.retries_created)

    @policy(worker="agent")
    async def WorkSession(self, requests: AsyncIterator[pb.WorkSessionRequest], context: Context) -> AsyncIterator[pb.WorkSessionResponse]:
        first = await anext(aiter(requests), None)
        if first is None:
            return  # the worker left before opening
        opening = parse_open(first)
        async for response in self._sessions.serve(opening, requests, _scope(), current_access().recheck):
            yield response

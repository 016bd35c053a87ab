"""Helpers for the worker-session tests: a raw WorkSession stream, and handlers' tools stand-in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc

from switchboard.runs.v1 import run_service_pb2 as pb
from switchboard.runs.v1 import run_service_pb2_grpc


class RawSession:
    """One WorkSession call, spoken message by message (what the worker library does for you)."""

    def __init__(self, stub: run_service_pb2_grpc.RunServiceStub, metadata):
        self.call = stub.WorkSession(metadata=metadata)

    async def open(self, worker_id: str = "w1", capacity: int = 1, lanes=(), held=()) -> pb.SessionOpened:
        await self.call.write(
            pb.WorkSessionRequest(
                open=pb.SessionOpen(
                    worker_id=worker_id,
                    lanes=list(lanes),
                    capacity=capacity,
                    held=[pb.HeldRun(run_id=r, attempt=a) for r, a in held],
                )
            )
        )
        first = await self.read("opened")
        return first.opened

    async def read(self, kind: str | None = None) -> pb.WorkSessionResponse:
        response = await self.call.read()
        assert response is not grpc.aio.EOF, "the session ended"
        if kind is not None:
            assert response.WhichOneof("message") == kind, response
        return response

    async def leases(self, count: int) -> list[pb.Run]:
        return [(await self.read("lease")).lease.run for _ in range(count)]

    async def complete(self, run: pb.Run | tuple[str, int], result_json: str = "{}") -> None:
        run_id, attempt = (run.id, run.attempt) if isinstance(run, pb.Run) else run
        await self.call.write(pb.WorkSessionRequest(complete=pb.SessionComplete(run_id=run_id, attempt=attempt, result_json=result_json)))

    async def fail(self, run: pb.Run, message: str = "boom", retryable: bool = False) -> None:
        await self.call.write(
            pb.WorkSessionRequest(fail=pb.SessionFail(run_id=run.id, attempt=run.attempt, error_message=message, retryable=retryable))
        )

    async def release(self, run: pb.Run) -> None:
        await self.call.write(pb.WorkSessionRequest(release=pb.SessionRelease(run_id=run.id, attempt=run.attempt)))

    async def ack(self) -> pb.SessionAck:
        return (await self.read("ack")).ack

    def cancel(self) -> None:
        self.call.cancel()


@dataclass
class StubContext:
    """The shape of switchboard.worker.RunContext that the session loop needs (run, attempt,
    payload), until the tools' own context is merged."""

    run: pb.Run
    attempt: int
    payload: Any


class StubTools:
    def context_for(self, run: pb.Run) -> StubContext:
        return StubContext(run, run.attempt, json.loads(run.payload_json or "{}"))

    async def aclose(self) -> None:
        return None

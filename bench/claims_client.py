"""The load side of the claims benchmark, in a process of its own so that its CPU is never the
server process's: claims every question it is given, ``in_flight`` at a time, and prints the rate.

    python -m bench.claims_client < job.json

The job (JSON on stdin): ``mode`` ("grpc": ClaimPendingQuestion on ``target`` with ``token``;
"raw": the service's claim statement on the service's pool, of ``pool_size``, at ``dsn``),
``organization_id``, ``connection_id``, ``user_id``, ``ids``, ``in_flight`` and ``warmup`` (how
many of the ids are claimed before the clock starts). Prints ``{"claims_per_second": …}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from switchboard.services.interactions import store
from switchboard.services.interactions.app import SCHEMA
from switchboard.shared.config import load_settings
from switchboard.shared.db import create_pool
from switchboard.shared.process import run
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc

Claim = Callable[[str], Awaitable[bool]]


async def _drain(claim: Claim, ids: list[str], in_flight: int) -> None:
    """Claim every id with ``in_flight`` workers; every claim must win (each id is claimed once)."""
    queue = iter(ids)

    async def worker() -> None:
        for question_id in queue:
            if not await claim(question_id):
                raise RuntimeError(f"question {question_id} was not claimed")

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def _timed(claim: Claim, job: dict[str, Any]) -> float:
    ids, warmup, in_flight = job["ids"], job["warmup"], job["in_flight"]
    await _drain(claim, ids[:warmup], in_flight)
    started = time.perf_counter()
    await _drain(claim, ids[warmup:], in_flight)
    return (len(ids) - warmup) / (time.perf_counter() - started)


async def main(job: dict[str, Any]) -> float:
    scope = (job["organization_id"], job["connection_id"], job["user_id"])
    if job["mode"] == "raw":
        # The service's own pool (same factory, same size): only gRPC is missing on this side.
        settings = load_settings({"DATABASE_URL": job["dsn"], "SWITCHBOARD_DB_POOL_MAX_SIZE": str(job["pool_size"])})
        async with await create_pool(settings, SCHEMA, application_name="bench-raw-claims") as pool:

            async def raw(question_id: str) -> bool:
                return await store.question_claim(pool, question_id, *scope) is not None

            return await _timed(raw, job)
    metadata = (("authorization", f"Bearer {job['token']}"),)
    async with grpc.aio.insecure_channel(job["target"]) as channel:
        stub = interaction_service_pb2_grpc.InteractionServiceStub(channel)

        async def through_grpc(question_id: str) -> bool:
            request = pb.ClaimPendingQuestionRequest(
                question_id=question_id, organization_id=scope[0], connection_id=scope[1], user_id=scope[2]
            )
            return (await stub.ClaimPendingQuestion(request, metadata=metadata, timeout=30)).claimed

        return await _timed(through_grpc, job)


if __name__ == "__main__":
    rate = run(main(json.load(sys.stdin)))
    print(json.dumps({"claims_per_second": rate}), flush=True)

"""The bare baseline of the claims benchmark: a grpc.aio server in a process of its own with no
interceptors, the generated InteractionService servicer class, the service's own pool (built by
shared.db.create_pool, same size) and claim statement (imported, never copied).

    python -m bench.claims_bare --dsn DSN --port PORT --pool-size 20

Prints ``ready`` on stdout once it serves; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse

import asyncpg
import grpc

from switchboard.services.interactions import store
from switchboard.services.interactions.app import SCHEMA
from switchboard.shared.config import load_settings
from switchboard.shared.db import create_pool
from switchboard.shared.process import run, wait_for_stop
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc


class BareClaims(interaction_service_pb2_grpc.InteractionServiceServicer):
    """ClaimPendingQuestion and nothing around it: no validation, authentication, logging,
    deadline, error mapping or metrics."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def ClaimPendingQuestion(self, request: pb.ClaimPendingQuestionRequest, context: grpc.aio.ServicerContext) -> pb.ClaimPendingQuestionResponse:
        row = await store.question_claim(self._pool, request.question_id, request.organization_id, request.connection_id, request.user_id)
        if row is None:
            return pb.ClaimPendingQuestionResponse(claimed=False)
        return pb.ClaimPendingQuestionResponse(claimed=True, payload_json=row["payload_json"])


async def serve(dsn: str, port: int, pool_size: int) -> None:
    # The pool the service itself gets, so that only the gRPC framework around the claim differs.
    settings = load_settings({"DATABASE_URL": dsn, "SWITCHBOARD_DB_POOL_MAX_SIZE": str(pool_size)})
    pool = await create_pool(settings, SCHEMA, application_name="bench-bare-claims")
    server = grpc.aio.server()
    interaction_service_pb2_grpc.add_InteractionServiceServicer_to_server(BareClaims(pool), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise OSError(f"could not bind 127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await wait_for_stop()
    await server.stop(1)
    await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.claims_bare")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, required=True)
    args = parser.parse_args()
    run(serve(args.dsn, args.port, args.pool_size))

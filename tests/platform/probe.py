"""A probe service for testing the server plumbing without any domain: raw-bytes RPCs whose
behaviour the test controls."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc

from switchboard.shared.auth import InternalCaller, current_principal
from switchboard.shared.authz import SIGNED_IN, policy
from switchboard.shared.errors import FieldViolation, InvalidArgument, NotFound
from switchboard.shared.grpc.server import Registration

SERVICE = "switchboard.test.v1.Probe"
# The plumbing under test is not authorization: every principal may call the probe.
OPEN = policy(user=SIGNED_IN, worker="organization")


@dataclass
class Probe:
    """Handlers of the probe service, with hooks for the test to hold a call in flight."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0
    stream_closed: asyncio.Event = field(default_factory=asyncio.Event)

    @OPEN
    async def echo(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        return request

    @OPEN
    async def who_am_i(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        principal = current_principal()
        if isinstance(principal, InternalCaller):
            return f"internal:{principal.acting_user_id or ''}".encode()
        return f"worker:{principal.organization_id}:{principal.agent_id}".encode()

    @OPEN
    async def invalid(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise InvalidArgument([FieldViolation("name", "must not be empty"), FieldViolation("options[1].id", "duplicate")])

    @OPEN
    async def not_found(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise NotFound("organization 7d0e… does not exist", reason="ORGANIZATION_NOT_FOUND", metadata={"organization_id": "7d0e"})

    @OPEN
    async def crash(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise RuntimeError("database password is hunter2")

    @OPEN
    async def hold(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.entered.set()
        await self.release.wait()
        return b"released"

    @OPEN
    async def count(self, request: bytes, context: grpc.aio.ServicerContext):
        for i in range(int(request.decode() or "3")):
            yield str(i).encode()

    @OPEN
    async def forever(self, request: bytes, context: grpc.aio.ServicerContext):
        try:
            while True:
                yield b"tick"
                await asyncio.sleep(0)  # let the client's cancellation in between items
        finally:
            self.stream_closed.set()

    def registration(self) -> Registration:
        handlers = {
            "Echo": grpc.unary_unary_rpc_method_handler(self.echo),
            "WhoAmI": grpc.unary_unary_rpc_method_handler(self.who_am_i),
            "Invalid": grpc.unary_unary_rpc_method_handler(self.invalid),
            "NotFound": grpc.unary_unary_rpc_method_handler(self.not_found),
            "Crash": grpc.unary_unary_rpc_method_handler(self.crash),
            "Hold": grpc.unary_unary_rpc_method_handler(self.hold),
            "Count": grpc.unary_stream_rpc_method_handler(self.count),
            "Forever": grpc.unary_stream_rpc_method_handler(self.forever),
        }
        generic = grpc.method_handlers_generic_handler(SERVICE, handlers)
        return Registration(SERVICE, lambda server: server.add_generic_rpc_handlers((generic,)))

"""One fuzzed RPC call through a real channel: the request goes as bytes (so that it may hold what
no message object would encode), streams are bounded, and the outcome is the status code."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor

from tests.fuzz.wire import encode

CALL_TIMEOUT = 20.0  # far above any sane answer: a call still running then is reported as such
STREAM_READS = 3  # messages read from a server stream before it is cancelled
STREAM_IDLE = 0.3  # seconds a server stream may stay silent before it is cancelled (a live tail)


# What gRPC's core reports for a write on a client stream the server already finished.
CLIENT_WRITE_AFTER_END = "Internal error from Core"


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str


def path_of(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


async def _read_bounded(call: Any) -> None:
    """A few messages of a server stream, then cancel: a subscription is a live tail that never
    ends by itself. Errors come out as AioRpcError."""
    try:
        for _ in range(STREAM_READS):
            message = await asyncio.wait_for(call.read(), STREAM_IDLE)
            if message is grpc.aio.EOF:
                return
    except TimeoutError:
        pass
    finally:
        call.cancel()


async def invoke(channel: grpc.aio.Channel, method: MethodDescriptor, request: Any, metadata: tuple) -> Outcome:
    """Call ``method`` with ``request`` (a value tree; a list of them for a client stream)."""
    path = path_of(method)
    descriptor = method.input_type
    try:
        if method.client_streaming:
            call = channel.stream_stream(path, request_serializer=None, response_deserializer=None)(metadata=metadata, timeout=CALL_TIMEOUT)
            try:
                for message in request:
                    await call.write(encode(descriptor, message))
                await call.done_writing()
            except Exception:  # noqa: BLE001 - the server answered (a refusal) before the last write
                pass
            await _read_bounded(call)
            return Outcome(await call.code(), await call.details() or "")
        body = encode(descriptor, request)
        if method.server_streaming:
            call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)(body, metadata=metadata, timeout=CALL_TIMEOUT)
            await _read_bounded(call)
            code = await call.code()
            return Outcome(code, await call.details() or "")
        await channel.unary_unary(path, request_serializer=None, response_deserializer=None)(body, metadata=metadata, timeout=CALL_TIMEOUT)
        return Outcome(grpc.StatusCode.OK, "")
    except grpc.aio.AioRpcError as exc:
        if method.client_streaming and exc.code() == grpc.StatusCode.INTERNAL and exc.details() == CLIENT_WRITE_AFTER_END:
            # Our own write to a call the server had already ended: the status is the local core's,
            # not the server's answer (a server's INTERNAL says "internal error; …").
            return Outcome(grpc.StatusCode.CANCELLED, exc.details())
        return Outcome(exc.code(), exc.details() or "")

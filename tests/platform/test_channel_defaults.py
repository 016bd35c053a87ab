"""The channels between parts carry the caller's token on every kind of call: grpc.aio files an
interceptor under one kind only, so a streamed call once went out without it (UNAUTHENTICATED)."""

from __future__ import annotations

import asyncio
import uuid

from switchboard.shared.grpc.client import open_channel
from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN
from tests.interactions.conftest import replica


async def test_a_streamed_call_without_metadata_carries_the_channels_token(migrated_database):
    org = str(uuid.uuid4())
    async with replica(migrated_database) as one, open_channel(f"127.0.0.1:{one.port}", token=INTERNAL_TOKEN) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        await stub.Publish(pb.PublishRequest(stream="s", organization_id=org, type="t", payload_json="{}"))  # unary
        call = stub.Subscribe(pb.SubscribeRequest(stream="s", organization_id=org))  # unary request, streamed answer
        async with asyncio.timeout(10):
            assert (await call.read()).event.sequence == 1
        call.cancel()

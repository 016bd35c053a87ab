"""Event streams through real gRPC on two replicas sharing one PostgreSQL: gapless order across
publishers, resume without gap or duplicate, trimming signalled, slow subscribers bounded,
tenant isolation, limits, and recovery when the listening connection or PostgreSQL goes away."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import grpc
import pytest

from switchboard.services.interactions.retention import Retention
from switchboard.shared.embedded_pg import EPHEMERAL_SETTINGS, EmbeddedPostgres
from switchboard.shared.errors import error_info, field_violations
from switchboard.shared.migrate import migrate
from switchboard.interactions.v1 import event_service_pb2 as pb
from tests.interactions.conftest import OPERATOR, replica
from tests.support.worker_keys import ISSUER


def payload(i: int) -> str:
    """Sizes from 10 B to 64 KiB."""
    size = [10, 1000, 8192, 20_000, 65_536][i % 5]
    return json.dumps({"i": i, "pad": "x" * max(0, size - 20)})


async def collect(stub, org: str, stream: str, after: int, count: int, metadata=OPERATOR) -> list[pb.SubscribeResponse]:
    call = stub.Subscribe(pb.SubscribeRequest(stream=stream, organization_id=org, after_sequence=after), metadata=metadata)
    received = []
    async with asyncio.timeout(30):
        while len(received) < count:
            received.append(await call.read())
    call.cancel()
    return received


async def publish(stub, org: str, stream: str, i: int, metadata=OPERATOR) -> int:
    reply = await stub.Publish(pb.PublishRequest(stream=stream, organization_id=org, type="test.event", payload_json=payload(i)), metadata=metadata)
    return reply.sequence


async def test_concurrent_publishers_on_two_replicas_get_gapless_sequences_delivered_in_order(migrated_database):
    org, stream = str(uuid.uuid4()), "agents/a1"
    async with replica(migrated_database) as one, replica(migrated_database) as two:
        early = asyncio.ensure_future(collect(two.stub, org, stream, 0, 300))  # live from the start
        sequences = await asyncio.gather(*(publish((one, two)[i % 2].stub, org, stream, i) for i in range(300)))
        assert sorted(sequences) == list(range(1, 301))
        received = await early
        assert [r.event.sequence for r in received] == list(range(1, 301))
        by_sequence = dict(zip(sequences, range(300), strict=True))
        assert all(json.loads(r.event.payload_json)["i"] == by_sequence[r.event.sequence] for r in received)
        resumed = await collect(one.stub, org, stream, 250, 50)
        assert [r.event.sequence for r in resumed] == list(range(251, 301))


async def test_no_gap_and_no_duplicate_at_the_seam_between_stored_and_live(migrated_database):
    org, stream = str(uuid.uuid4()), "orders"
    async with replica(migrated_database) as one, replica(migrated_database) as two:
        for i in range(120):
            await publish(one.stub, org, stream, i)
        # Subscribe while publishing goes on through the other replica.
        subscriber = asyncio.ensure_future(collect(one.stub, org, stream, 100, 120))
        await asyncio.gather(*(publish(two.stub, org, stream, i) for i in range(100)))
        assert [r.event.sequence for r in await subscriber] == list(range(101, 221))


async def test_a_batch_gets_consecutive_sequences(migrated_database):
    org = str(uuid.uuid4())
    async with replica(migrated_database) as one:
        await publish(one.stub, org, "s", 0)
        reply = await one.stub.PublishBatch(
            pb.PublishBatchRequest(stream="s", organization_id=org, events=[pb.EventInput(type="t", payload_json=str(i)) for i in range(5)]),
            metadata=OPERATOR,
        )
        assert list(reply.sequences) == [2, 3, 4, 5, 6]


async def test_trimmed_events_are_announced_never_skipped_silently(migrated_database):
    org, stream = str(uuid.uuid4()), "trim-me"
    async with replica(migrated_database) as one:
        for i in range(30):
            await publish(one.stub, org, stream, i)
        assert await Retention(one.pool, keep_last=10, max_age_seconds=86400).run_once() == 20
        received = await collect(one.stub, org, stream, 5, 11)
        assert received[0].WhichOneof("kind") == "trimmed"
        assert (received[0].trimmed.requested_after_sequence, received[0].trimmed.first_available_sequence) == (5, 21)
        assert [r.event.sequence for r in received[1:]] == list(range(21, 31))
        # Asking from a position that is still stored gets no notice.
        assert (await collect(one.stub, org, stream, 25, 1))[0].event.sequence == 26


async def test_a_subscriber_that_cannot_keep_up_is_ended_with_where_to_resume(migrated_database):
    org, stream = str(uuid.uuid4()), "firehose"
    async with replica(migrated_database, events_max_lag=4) as one:
        call = one.stub.Subscribe(pb.SubscribeRequest(stream=stream, organization_id=org), metadata=OPERATOR)
        await publish(one.stub, org, stream, 0)
        first = await call.read()  # subscribed and live
        assert first.event.sequence == 1
        big = json.dumps({"pad": "y" * 60_000})
        for _ in range(12):  # never read meanwhile: HTTP/2 flow control, then the buffer, fill up
            await one.stub.PublishBatch(
                pb.PublishBatchRequest(stream=stream, organization_id=org, events=[pb.EventInput(type="t", payload_json=big)] * 20),
                metadata=OPERATOR,
            )
        delivered = [1]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async with asyncio.timeout(30):
                while True:
                    delivered.append((await call.read()).event.sequence)
                    await asyncio.sleep(0.01)  # a slow reader (the thing under test), not a wait
        assert caught.value.code() == grpc.StatusCode.ABORTED
        info = error_info(caught.value)
        assert int(info.metadata["resume_after_sequence"]) == delivered[-1]
        assert delivered == list(range(1, len(delivered) + 1)) and len(delivered) < 241
        assert one.hub.subscriber_count == 0


async def test_workers_use_only_their_own_agents_streams(migrated_database):
    org, other = str(uuid.uuid4()), str(uuid.uuid4())
    agent = str(uuid.uuid4())
    token = ISSUER.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=5)).token
    worker = (("authorization", f"Bearer {token}"),)
    async with replica(migrated_database) as one:
        assert await publish(one.stub, org, f"agents/{agent}", 0, metadata=worker) == 1
        assert (await collect(one.stub, org, f"agents/{agent}", 0, 1, metadata=worker))[0].event.sequence == 1
        assert await publish(one.stub, org, f"agents/{agent}/rt1", 0, metadata=worker) == 1  # its own sub-stream
        for stream_org, stream, code in (
            (other, f"agents/{agent}", grpc.StatusCode.PERMISSION_DENIED),
            (other, "orders", grpc.StatusCode.PERMISSION_DENIED),
            (org, "orders", grpc.StatusCode.PERMISSION_DENIED),  # not an agent's stream: not a worker's
            (org, f"agents/{agent}x", grpc.StatusCode.PERMISSION_DENIED),  # a prefix is not a namespace
            (org, f"agents/{uuid.uuid4()}", grpc.StatusCode.PERMISSION_DENIED),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await publish(one.stub, stream_org, stream, 0, metadata=worker)
            assert caught.value.code() == code
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await collect(one.stub, stream_org, stream, 0, 1, metadata=worker)
            assert caught.value.code() == code
        assert await one.pool.fetchval("SELECT count(*) FROM interactions.events") == 2


async def test_subscriptions_per_stream_and_caller_are_limited(migrated_database):
    org = str(uuid.uuid4())
    async with replica(migrated_database, events_max_subscribers_per_stream=2) as one:
        calls = [one.stub.Subscribe(pb.SubscribeRequest(stream="s", organization_id=org), metadata=OPERATOR) for _ in range(2)]
        await publish(one.stub, org, "s", 0)
        for call in calls:
            assert (await call.read()).event.sequence == 1
        third = one.stub.Subscribe(pb.SubscribeRequest(stream="s", organization_id=org), metadata=OPERATOR)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await third.read()
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        calls[0].cancel()
        # A freed slot can be taken again, once the server has seen the cancellation (which has
        # no event of its own to wait on: retry the refused subscription briefly).
        async with asyncio.timeout(10):
            while True:
                again = one.stub.Subscribe(pb.SubscribeRequest(stream="s", organization_id=org), metadata=OPERATOR)
                try:
                    assert (await again.read()).event.sequence == 1
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    await asyncio.sleep(0.05)


async def test_draining_ends_subscriptions_with_where_to_resume(migrated_database):
    org = str(uuid.uuid4())
    async with replica(migrated_database) as one:
        call = one.stub.Subscribe(pb.SubscribeRequest(stream="s", organization_id=org), metadata=OPERATOR)
        await publish(one.stub, org, "s", 0)
        assert (await call.read()).event.sequence == 1
        one.hub.close_subscribers()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "after sequence 1" in caught.value.details()


async def test_a_lost_listening_connection_is_replaced_and_nothing_is_missed(migrated_database):
    org, stream = str(uuid.uuid4()), "s"
    async with replica(migrated_database) as one:
        call = one.stub.Subscribe(pb.SubscribeRequest(stream=stream, organization_id=org), metadata=OPERATOR)
        await publish(one.stub, org, stream, 0)
        assert (await call.read()).event.sequence == 1
        killed = await one.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND datname = current_database()"
        )
        assert killed == 1
        for i in range(5):
            await publish(one.stub, org, stream, i)
        async with asyncio.timeout(20):
            assert [(await call.read()).event.sequence for _ in range(5)] == [2, 3, 4, 5, 6]


async def test_a_postgres_restart_loses_nothing_and_needs_no_service_restart(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pgdata", EPHEMERAL_SETTINGS)
    dsn = server.start()
    try:
        await migrate(dsn)
        org, stream = str(uuid.uuid4()), "s"
        async with replica(dsn, events_poll_seconds=0.2) as one:
            call = one.stub.Subscribe(pb.SubscribeRequest(stream=stream, organization_id=org), metadata=OPERATOR)
            await publish(one.stub, org, stream, 0)
            assert (await call.read()).event.sequence == 1
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            # Publish as soon as PostgreSQL takes connections again (the pool reconnects).
            sequences = []
            async with asyncio.timeout(30):
                while len(sequences) < 5:
                    try:
                        sequences.append(await publish(one.stub, org, stream, len(sequences)))
                    except grpc.aio.AioRpcError:
                        await asyncio.sleep(0.1)  # the database is still coming back
            assert sequences == [2, 3, 4, 5, 6]
            async with asyncio.timeout(30):
                assert [(await call.read()).event.sequence for _ in range(5)] == [2, 3, 4, 5, 6]
    finally:
        server.stop()


@pytest.mark.parametrize(
    "request_message, fields",
    [
        (pb.PublishRequest(stream="/bad", organization_id="x", type="a b", payload_json="{"), ["stream", "organization_id", "type", "payload_json"]),
        (pb.PublishRequest(stream="s", organization_id=str(uuid.uuid4()), type="t", payload_json='"' + "x" * (1 << 20) + '"'), ["payload_json"]),
        (pb.PublishBatchRequest(stream="s", organization_id=str(uuid.uuid4())), ["events"]),
    ],
    ids=["malformed", "oversized", "empty-batch"],
)
async def test_bad_input_is_invalid_argument(migrated_database, request_message, fields):
    async with replica(migrated_database) as one:
        method = getattr(one.stub, type(request_message).__name__.removesuffix("Request"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await method(request_message, metadata=OPERATOR)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in field_violations(caught.value)] == fields
        assert await one.pool.fetchval("SELECT count(*) FROM interactions.events") == 0

"""EventService.PublishStream through real gRPC on a real PostgreSQL: events stored in the order
sent with coalesced statements, each acknowledged only once committed, refusals per event (bad
input, another organisation's or agent's stream) that leave the call going, and its bounds."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import asyncpg
import grpc
import pytest

from switchboard.services.interactions import publishing
from switchboard.shared.errors import reason_of
from switchboard.interactions.v1 import event_service_pb2 as pb
from tests.interactions.conftest import OPERATOR, replica
from tests.support.worker_keys import ISSUER

OK, INVALID_ARGUMENT, PERMISSION_DENIED = 0, 3, 7


def worker(org: str, agent: str) -> tuple[tuple[str, str], ...]:
    token = ISSUER.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=5)).token
    return (("authorization", f"Bearer {token}"),)


def event(tag: int, org: str, stream: str, *, type: str = "agent.output", payload: str | None = None) -> pb.PublishStreamRequest:
    return pb.PublishStreamRequest(
        tag=tag, stream=stream, organization_id=org, type=type, payload_json=payload if payload is not None else json.dumps({"i": tag})
    )


async def publish_all(stub, requests: list[pb.PublishStreamRequest], metadata=OPERATOR) -> list[pb.PublishStreamResponse]:
    """Sends every request at once (no waiting for acks), then reads the acks to the end."""
    call = stub.PublishStream(iter(requests), metadata=metadata)
    async with asyncio.timeout(30):
        return [ack async for ack in call]


async def stored(pool: asyncpg.Pool, org: str, stream: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT sequence, payload_json, created_at FROM events WHERE organization_id = $1 AND stream = $2 ORDER BY sequence",
        org,
        stream,
    )


async def test_events_are_stored_in_the_order_sent_per_stream_with_coalesced_statements(migrated_database):
    org = str(uuid.uuid4())
    async with replica(migrated_database) as one:
        # Two streams interleaved, 1 500 events: more than a flush and more than a call's window.
        requests = [event(i, org, f"agents/a{i % 2}") for i in range(1500)]
        acks = await publish_all(one.stub, requests)
        assert [a.tag for a in acks] == list(range(1500))  # in the order sent
        assert all(a.code == OK and not a.message for a in acks)
        for parity in (0, 1):
            assert [a.sequence for a in acks[parity::2]] == list(range(1, 751))
            rows = await stored(one.pool, org, f"agents/a{parity}")
            assert [json.loads(r["payload_json"])["i"] for r in rows] == list(range(parity, 1500, 2))
            # One statement per flush and stream: its events share the transaction's time.
            statements = len({r["created_at"] for r in rows})
            assert statements <= 750 // 5, statements


async def test_an_acknowledged_event_is_stored_even_when_the_call_is_cut_off(migrated_database):
    org, stream = str(uuid.uuid4()), "agents/a1"
    async with replica(migrated_database) as one:
        queue: asyncio.Queue[pb.PublishStreamRequest] = asyncio.Queue()

        async def requests():
            while True:
                yield await queue.get()

        call = one.stub.PublishStream(requests(), metadata=OPERATOR)
        for i in range(300):
            queue.put_nowait(event(i, org, stream))
        acked = []
        async with asyncio.timeout(30):
            while len(acked) < 120:
                ack = await call.read()
                assert ack.code == OK
                acked.append(ack)
        call.cancel()  # the client goes away with events in flight
        rows = await stored(one.pool, org, stream)
        stored_sequences = [r["sequence"] for r in rows]
        assert {a.sequence for a in acked} <= set(stored_sequences)
        assert stored_sequences == list(range(1, len(rows) + 1))  # gapless, whatever was cut off
        assert [json.loads(r["payload_json"])["i"] for r in rows] == list(range(len(rows)))


async def test_a_refused_event_gets_its_error_and_the_call_goes_on(migrated_database):
    org, stream = str(uuid.uuid4()), "agents/a1"
    async with replica(migrated_database) as one:
        acks = await publish_all(
            one.stub,
            [
                event(1, org, stream),
                event(2, org, stream, payload="{not json"),
                event(3, org, stream, type="bad type!"),
                event(4, org, "/leading-slash"),
                event(5, "not-a-uuid", stream),
                event(6, org, stream),
            ],
        )
        assert [(a.tag, a.code) for a in acks] == [(1, OK), (2, INVALID_ARGUMENT), (3, INVALID_ARGUMENT), (4, INVALID_ARGUMENT), (5, INVALID_ARGUMENT), (6, OK)]
        assert "payload_json" in acks[1].message and "type" in acks[2].message and "organization_id" in acks[4].message
        assert (acks[0].sequence, acks[5].sequence) == (1, 2)  # nothing refused took a sequence
        assert [r["sequence"] for r in await stored(one.pool, org, stream)] == [1, 2]


async def test_a_worker_publishes_only_on_its_agents_streams_in_its_organisation(migrated_database):
    org, other_org, agent, other_agent = (str(uuid.uuid4()) for _ in range(4))
    async with replica(migrated_database) as one:
        acks = await publish_all(
            one.stub,
            [
                event(1, org, f"agents/{agent}"),
                event(2, org, f"agents/{other_agent}"),
                event(3, other_org, f"agents/{agent}"),
                event(4, org, "orders"),
                event(5, org, f"agents/{agent}/tools"),
            ],
            metadata=worker(org, agent),
        )
        assert [(a.tag, a.code) for a in acks] == [(1, OK), (2, PERMISSION_DENIED), (3, PERMISSION_DENIED), (4, PERMISSION_DENIED), (5, OK)]
        assert all(a.message for a in acks if a.code)
        count = await one.pool.fetchval("SELECT count(*) FROM events WHERE organization_id = $1 OR stream <> $2", other_org, f"agents/{agent}")
        assert count == 1  # the sub-stream's event only: nothing landed in the other agent's or organisation's streams
        assert [r["sequence"] for r in await stored(one.pool, org, f"agents/{agent}")] == [1]


async def test_an_acting_user_cannot_open_the_call(migrated_database):
    org = str(uuid.uuid4())
    async with replica(migrated_database) as one:
        call = one.stub.PublishStream(iter([event(1, org, "s")]), metadata=(*OPERATOR, ("x-switchboard-user-id", str(uuid.uuid4()))))
        try:
            await call.read()
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
        else:
            raise AssertionError("an acting user published")
        assert await one.pool.fetchval("SELECT count(*) FROM events WHERE organization_id = $1", org) == 0


async def test_bounds_an_oversized_payload_is_refused_alone_and_a_flush_holds_at_most_its_bound(migrated_database):
    org, stream = str(uuid.uuid4()), "agents/a1"
    big = json.dumps({"pad": "x" * (1 << 20)})  # over 1 MiB
    async with replica(migrated_database) as one:
        requests = [event(i, org, stream) for i in range(publishing.MAX_FLUSH * 3)]
        requests.insert(10, event(-1 & 0xFFFF, org, stream, payload=big))
        acks = await publish_all(one.stub, requests)
        refused = [a for a in acks if a.code]
        assert [(a.tag, a.code) for a in refused] == [(0xFFFF, INVALID_ARGUMENT)]
        assert "payload_json" in refused[0].message
        assert [a.sequence for a in acks if not a.code] == list(range(1, publishing.MAX_FLUSH * 3 + 1))
        rows = await stored(one.pool, org, stream)
        per_statement: dict = {}
        for r in rows:
            per_statement[r["created_at"]] = per_statement.get(r["created_at"], 0) + 1
        assert max(per_statement.values()) <= publishing.MAX_FLUSH
        assert len(per_statement) >= 3


async def test_a_draining_replica_ends_the_call_unavailable_at_once(migrated_database):
    org, stream = str(uuid.uuid4()), "agents/a1"
    async with replica(migrated_database) as one:
        queue: asyncio.Queue[pb.PublishStreamRequest] = asyncio.Queue()

        async def requests():
            while True:
                yield await queue.get()

        call = one.stub.PublishStream(requests(), metadata=OPERATOR)
        for i in range(200):
            queue.put_nowait(event(i, org, stream))
        # Every event read and acknowledged before the drain: grpc's client reports a send that
        # crosses the server's end of the call as INTERNAL instead of the call's status (the worker
        # library reads either as a break), so nothing may be in flight for this status to show.
        acked = [await call.read() for _ in range(200)]
        for component in one.app.components:  # as the replica does when it starts stopping
            component.drain()
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async with asyncio.timeout(2):  # well within the server's grace period (5 s)
                while True:
                    acked.append(await call.read())
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE and reason_of(ended.value) == "REPLICA_DRAINING"
        # The call ended at once, not after the server's grace period; what was acknowledged is stored.
        assert [r["sequence"] for r in await stored(one.pool, org, stream)] == [a.sequence for a in acked] == list(range(1, len(acked) + 1))

"""Fan-out inside a replica: the subscribers of one stream share one read of the table per
notification (counted by the hub's own metric), and a crowd joining at different positions on two
replicas while events are published each gets exactly its sequence, in order."""

from __future__ import annotations

import asyncio
import uuid

from switchboard.services.interactions.hub import WINDOW_ROWS
from switchboard.interactions.v1 import event_service_pb2 as pb
from tests.interactions.conftest import OPERATOR, replica

CROWD = {"events_max_subscribers_per_stream": 200, "events_max_subscribers_per_organization": 200}


async def read_through(call, last: int) -> list[int]:
    """The sequences of the events a subscription delivers up to ``last`` (a notice fails)."""
    received = []
    while not received or received[-1] < last:
        message = await call.read()
        assert message.WhichOneof("kind") == "event", message
        received.append(message.event.sequence)
    call.cancel()
    return received


def reads(hub) -> dict[str, float]:
    return {kind: hub.reads.value(kind) for kind in ("shared", "catch_up", "bounds")}


async def test_subscribers_of_one_stream_on_one_replica_cost_one_table_read_per_notification(migrated_database):
    org, stream, subscribers = str(uuid.uuid4()), "shared", 40
    # No poll reads during the test: every read the hub makes is caused by a notification.
    async with replica(migrated_database, events_poll_seconds=60, **CROWD) as one:
        calls = [one.stub.Subscribe(pb.SubscribeRequest(stream=stream, organization_id=org), metadata=OPERATOR) for _ in range(subscribers)]
        await asyncio.gather(*(call.initial_metadata() for call in calls))

        async def publish_and_deliver(n: int) -> None:
            reply = await one.stub.Publish(pb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json=str(n)), metadata=OPERATOR)
            assert reply.sequence == n
            async with asyncio.timeout(20):
                assert [(await call.read()).event.sequence for call in calls] == [n] * subscribers

        # Joining costs a few reads per subscriber (its own catch-up, the stream's bounds), and a
        # subscriber's last read on its own may still be under way when its first events arrive:
        # a few rounds until every subscriber takes from the shared window.
        for n in range(1, 4):
            await publish_and_deliver(n)
        for n in range(4, 14):
            before = reads(one.hub)
            await publish_and_deliver(n)
            assert reads(one.hub) == {**before, "shared": before["shared"] + 1}, n  # one read, not 40
        for call in calls:
            call.cancel()


async def test_two_hundred_subscribers_on_two_replicas_joining_at_different_positions_get_exactly_their_sequence(migrated_database):
    org, stream = str(uuid.uuid4()), "crowd"
    async with replica(migrated_database, **CROWD) as one, replica(migrated_database, **CROWD) as two:
        # More stored than a window holds: the subscribers that start from 0 catch up from the
        # table on their own, then join the others in the window.
        stored = WINDOW_ROWS + 100
        for _ in range(stored // 100):
            await one.stub.PublishBatch(
                pb.PublishBatchRequest(stream=stream, organization_id=org, events=[pb.EventInput(type="t", payload_json="{}")] * 100),
                metadata=OPERATOR,
            )
        live, head = 200, stored

        async def publisher() -> None:
            nonlocal head
            for i in range(live):
                reply = await (one, two)[i % 2].stub.Publish(
                    pb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json=str(i)), metadata=OPERATOR
                )
                head = max(head, reply.sequence)

        publishing = asyncio.ensure_future(publisher())
        last = stored + live
        positions, readers = [], []
        for i in range(200):
            # Most join near the head as it moves, some a little behind it, a few from the start.
            after = 0 if i % 25 == 0 else head - (i % 37) * 7
            call = (one, two)[i % 2].stub.Subscribe(pb.SubscribeRequest(stream=stream, organization_id=org, after_sequence=after), metadata=OPERATOR)
            positions.append(after)
            readers.append(asyncio.ensure_future(read_through(call, last)))
            await asyncio.sleep(0)  # let the publisher move on between joins
        async with asyncio.timeout(120):
            await publishing
            received = await asyncio.gather(*readers)
        assert len(set(positions)) > 30  # really different positions
        for after, sequences in zip(positions, received, strict=True):
            assert sequences == list(range(after + 1, last + 1)), after
        assert all(r.hub.reads.value("catch_up") > 0 for r in (one, two))  # some did catch up

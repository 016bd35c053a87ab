"""Issue 13's reproducers: a worker acts only on its own agent's questions and streams, through its
own connection, and no tenant can take the others' subscriptions. Each refusal changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import grpc
import pytest

from switchboard.shared.errors import reason_of
from switchboard.interactions.v1 import event_service_pb2 as events_pb
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from tests.support.worker_keys import ISSUER
from tests.interactions.conftest import replica
from tests.interactions.test_questions import KEYS, question, slack, slack_connection  # noqa: F401 - fixtures
from switchboard.interactions.v1 import interaction_service_pb2_grpc


def worker(org: str, agent: str, connection: str | None = None) -> tuple[tuple[str, str], ...]:
    token = ISSUER.issue(
        organization_id=org, agent_id=agent, connection_id=connection, ttl=timedelta(minutes=5)
    ).token
    return (("authorization", f"Bearer {token}"),)


reason = reason_of


@pytest.fixture
async def service(migrated_database):
    async with replica(migrated_database, credentials_keys=KEYS) as running:
        running.interactions = interaction_service_pb2_grpc.InteractionServiceStub(running.channel)
        yield running


async def snapshot(service) -> list:
    return [tuple(r) for r in await service.pool.fetch("SELECT * FROM interactions.pending_questions ORDER BY id")]


async def test_another_agents_worker_cannot_answer_restash_or_delete_a_question(service, slack):
    org, a1, a2 = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    connection = (await slack_connection(service, slack, org)).id
    asked = await service.interactions.CreateQuestion(question(org, connection, a2), metadata=worker(org, a2))
    scope = dict(question_id=asked.question_id, organization_id=org, connection_id=connection)
    before = await snapshot(service)
    intruder = worker(org, a1)
    # A forged human approval, delivered to a2: nothing pending for a1 under that id.
    forged = await service.interactions.AnswerQuestion(pb.AnswerQuestionRequest(**scope, user_id="U1", option_id="yes"), metadata=intruder)
    assert forged.outcome == pb.ANSWER_OUTCOME_NOT_PENDING
    claimed = await service.interactions.ClaimPendingQuestion(pb.ClaimPendingQuestionRequest(**scope, user_id="U1"), metadata=intruder)
    assert not claimed.claimed
    deleted = await service.interactions.DeletePendingQuestion(pb.DeletePendingQuestionRequest(**scope, expected_user_id="U1"), metadata=intruder)
    assert not deleted.deleted
    # Re-stash with a1 as the agent: the row is a2's, so it is not overwritten (and the claim not reset).
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await service.interactions.StorePendingQuestion(
            pb.StorePendingQuestionRequest(**scope, agent_id=a1, expected_user_id="U1", channel_id="C1", payload_json='{"transfer": 1000000}'),
            metadata=intruder,
        )
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # Naming a2 as the agent is refused outright.
    with pytest.raises(grpc.aio.AioRpcError) as other_agent:
        await service.interactions.StorePendingQuestion(
            pb.StorePendingQuestionRequest(**scope, agent_id=a2, expected_user_id="U1", channel_id="C1", payload_json='{"transfer": 1000000}'),
            metadata=intruder,
        )
    assert (other_agent.value.code(), reason(other_agent.value)) == (grpc.StatusCode.PERMISSION_DENIED, "OTHER_AGENT")
    assert await snapshot(service) == before
    assert await service.pool.fetchval("SELECT count(*) FROM interactions.events") == 0
    # The asking agent's own worker still answers it, once.
    answered = await service.interactions.AnswerQuestion(pb.AnswerQuestionRequest(**scope, user_id="U1", option_id="yes"), metadata=worker(org, a2))
    assert answered.outcome == pb.ANSWER_OUTCOME_ANSWERED
    event = await service.pool.fetchrow("SELECT stream, payload_json FROM interactions.events")
    assert event["stream"] == f"agents/{a2}" and json.loads(event["payload_json"])["payload"] == {"refund": 42}


async def test_a_token_bound_to_one_connection_cannot_act_through_another(service, slack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    x = (await slack_connection(service, slack, org, team="TX")).id
    y = (await slack_connection(service, slack, org, team="TY")).id
    asked = await service.interactions.CreateQuestion(question(org, y, agent), metadata=worker(org, agent))
    bound_to_x = worker(org, agent, connection=x)
    scope = dict(question_id=asked.question_id, organization_id=org, connection_id=y)
    for call in (
        service.interactions.CreateQuestion(question(org, y, agent), metadata=bound_to_x),
        service.interactions.AnswerQuestion(pb.AnswerQuestionRequest(**scope, user_id="U1", option_id="yes"), metadata=bound_to_x),
        service.interactions.ClaimPendingQuestion(pb.ClaimPendingQuestionRequest(**scope, user_id="U1"), metadata=bound_to_x),
        service.interactions.DeletePendingQuestion(pb.DeletePendingQuestionRequest(**scope, expected_user_id="U1"), metadata=bound_to_x),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert (refused.value.code(), reason(refused.value)) == (grpc.StatusCode.PERMISSION_DENIED, "OTHER_CONNECTION")
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await service.interactions.GetConnection(pb.GetConnectionRequest(connection_id=y), metadata=bound_to_x)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await service.interactions.ListConnections(pb.ListConnectionsRequest(organization_id=org), metadata=bound_to_x)
    assert [c.id for c in listed.connections] == [x]
    assert await service.pool.fetchval("SELECT count(*) FROM interactions.pending_questions") == 1


async def test_one_organisation_at_its_subscription_bound_leaves_the_others_untouched(migrated_database):
    org_a, org_b, a1, b1 = (str(uuid.uuid4()) for _ in range(4))
    async with replica(
        migrated_database, events_max_subscribers=50, events_max_subscribers_per_organization=10, events_max_subscribers_per_agent=10
    ) as one:
        a = worker(org_a, a1)
        held = [one.stub.Subscribe(events_pb.SubscribeRequest(stream=f"agents/{a1}/rt{i}", organization_id=org_a), metadata=a) for i in range(10)]
        for call in held:
            assert (await call.initial_metadata()) is not None
        # Invented sub-streams do not get around the agent's bound.
        extra = one.stub.Subscribe(events_pb.SubscribeRequest(stream=f"agents/{a1}/rt-extra", organization_id=org_a), metadata=a)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await extra.read()
        assert (refused.value.code(), reason(refused.value)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_SUBSCRIPTIONS")
        assert dict(refused.value.trailing_metadata() or ()).get("grpc-status-details-bin") is not None
        # B's worker still subscribes and receives.
        b = worker(org_b, b1)
        theirs = one.stub.Subscribe(events_pb.SubscribeRequest(stream=f"agents/{b1}", organization_id=org_b), metadata=b)
        await one.stub.Publish(events_pb.PublishRequest(stream=f"agents/{b1}", organization_id=org_b, type="t", payload_json="{}"), metadata=b)
        assert (await asyncio.wait_for(theirs.read(), 10)).event.sequence == 1
        for call in (*held, theirs):
            call.cancel()


async def test_a_worker_cannot_point_its_question_at_another_questions_card(service, slack):
    """Review finding: a1 re-stashed its own question with a2's card as message_ref, answered it,
    and the service edited a2's card (text replaced, buttons gone)."""
    org, a1, a2 = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    connection = (await slack_connection(service, slack, org)).id
    theirs = await service.interactions.CreateQuestion(question(org, connection, a2), metadata=worker(org, a2))
    mine = await service.interactions.CreateQuestion(question(org, connection, a1), metadata=worker(org, a1))
    before = await snapshot(service)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await service.interactions.StorePendingQuestion(
            pb.StorePendingQuestionRequest(
                question_id=mine.question_id, organization_id=org, connection_id=connection, agent_id=a1, expected_user_id="U1",
                channel_id="C1", payload_json="{}", message_ref=theirs.message_ref,
            ),
            metadata=worker(org, a1),
        )  # fmt: skip
    assert (taken.value.code(), reason(taken.value)) == (grpc.StatusCode.ALREADY_EXISTS, "CARD_TAKEN")
    assert await snapshot(service) == before


def test_one_user_cannot_take_every_slot_through_many_organisations():
    """Review finding: a user owning several organisations held every slot of the replica (the
    bounds were per organisation only)."""
    from switchboard.shared.authz import Access
    from switchboard.shared.auth import InternalCaller
    from switchboard.shared.errors import ResourceExhausted
    from switchboard.services.interactions.events import SubscriberLimits

    limits = SubscriberLimits(per_process=20, per_stream=16, per_organization=8, per_agent=8, per_user=8)
    user = Access(InternalCaller("00000000-0000-0000-0000-0000000000aa"), "user", user_id="00000000-0000-0000-0000-0000000000aa")
    held = []
    for org in range(3):
        for i in range(3):
            slot = limits.slot(user, f"org-{org}", f"s{i}")
            try:
                slot.__enter__()
            except ResourceExhausted as refused:
                assert refused.metadata == {"limit": "per_user", "max": "8"}
                break
            held.append(slot)
    assert len(held) == 8
    # Another organisation's caller still gets a slot.
    other = Access(InternalCaller("00000000-0000-0000-0000-0000000000bb"), "user", user_id="00000000-0000-0000-0000-0000000000bb")
    with limits.slot(other, "org-b", "s"):
        pass
    for slot in held:
        slot.__exit__(None, None, None)

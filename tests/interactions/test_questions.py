"""Chat connections and pending questions against fake Slack and Telegram APIs on loopback:
credentials sealed, cards posted after the row is persisted, claims won exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import grpc
import pytest

from switchboard.shared.crypto import new_key_list
from switchboard.shared.errors import field_violations
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc
from tests.interactions.conftest import OPERATOR, replica
from tests.support.asgi import serve_asgi
from tests.support.fake_chat import FakeSlack, FakeTelegram
from tests.support.worker_keys import ISSUER

SLACK_TOKEN = "xoxb-" + "s" * 30
TELEGRAM_TOKEN = "123456:" + "t" * 30
KEYS = new_key_list()


@pytest.fixture
async def slack():
    fake = FakeSlack(SLACK_TOKEN)
    async with serve_asgi(fake.app()) as url:
        fake.url = url + "/api"
        yield fake


@pytest.fixture
async def telegram():
    fake = FakeTelegram(TELEGRAM_TOKEN)
    async with serve_asgi(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture
async def service(migrated_database):
    async with replica(migrated_database, credentials_keys=KEYS) as running:
        running.interactions = interaction_service_pb2_grpc.InteractionServiceStub(running.channel)
        yield running


async def slack_connection(service, slack, org: str, team: str = "T123") -> pb.Connection:
    reply = await service.interactions.RegisterConnection(
        pb.RegisterConnectionRequest(
            organization_id=org, platform=pb.PLATFORM_SLACK, external_id=team, bot_token=SLACK_TOKEN,
            signing_secret="signing-" + "x" * 24, api_base_url=slack.url,
        ),
        metadata=OPERATOR,
    )  # fmt: skip
    return reply.connection


def question(org: str, connection: str, agent: str, user: str = "U1") -> pb.CreateQuestionRequest:
    return pb.CreateQuestionRequest(
        organization_id=org, connection_id=connection, agent_id=agent, expected_user_id=user, channel_id="C1",
        text="Approve the refund?", options=[pb.QuestionOption(id="yes", label="Yes"), pb.QuestionOption(id="no", label="No")],
        payload_json='{"refund": 42}',
    )  # fmt: skip


async def test_connections_keep_credentials_sealed_and_never_return_them(service, slack):
    org = str(uuid.uuid4())
    first = await slack_connection(service, slack, org)
    again = await service.interactions.RegisterConnection(
        pb.RegisterConnectionRequest(
            organization_id=org, platform=pb.PLATFORM_SLACK, external_id="T123", bot_token=SLACK_TOKEN,
            signing_secret="rotated-" + "y" * 24, api_base_url=slack.url,
        ),
        metadata=OPERATOR,
    )  # fmt: skip
    assert not again.created and again.connection.id == first.id
    sealed = await service.pool.fetchval("SELECT credentials FROM interactions.connections WHERE id = $1", first.id)
    assert SLACK_TOKEN.encode() not in sealed and b"rotated" not in sealed
    fetched = await service.interactions.GetConnection(pb.GetConnectionRequest(connection_id=first.id), metadata=OPERATOR)
    assert SLACK_TOKEN not in str(fetched) and fetched.connection.external_id == "T123"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await slack_connection(service, slack, str(uuid.uuid4()))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_a_connection_needs_its_platforms_credentials(service):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.interactions.RegisterConnection(
            pb.RegisterConnectionRequest(
                organization_id=str(uuid.uuid4()), platform=pb.PLATFORM_TELEGRAM, external_id="bot1", bot_token="t",
                signing_secret="slack-only", api_base_url="ftp://nope",
            ),
            metadata=OPERATOR,
        )  # fmt: skip
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(caught.value)] == ["secret_token", "signing_secret", "api_base_url"]


async def test_sixty_four_concurrent_claims_have_exactly_one_winner_and_wrong_scopes_consume_nothing(service, slack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(service, slack, org)
    created = await service.interactions.CreateQuestion(question(org, connection.id, agent), metadata=OPERATOR)
    (method, posted), = slack.calls
    assert method == "chat.postMessage" and posted["channel"] == "C1"
    assert [e["action_id"] for e in posted["blocks"][1]["elements"]] == ["yes", "no"]
    assert created.message_ref.message_id.startswith("1700000000.")

    def claim(organization_id: str, connection_id: str, user_id: str):
        return service.interactions.ClaimPendingQuestion(
            pb.ClaimPendingQuestionRequest(
                question_id=created.question_id, organization_id=organization_id, connection_id=connection_id, user_id=user_id
            ),
            metadata=OPERATOR,
        )

    wrong = await asyncio.gather(
        *(claim(str(uuid.uuid4()), connection.id, "U1") for _ in range(8)),
        *(claim(org, str(uuid.uuid4()), "U1") for _ in range(8)),
        *(claim(org, connection.id, "U2") for _ in range(8)),
    )
    assert not any(r.claimed for r in wrong)
    replies = await asyncio.gather(*(claim(org, connection.id, "U1") for _ in range(64)))
    winners = [r for r in replies if r.claimed]
    assert len(winners) == 1 and json.loads(winners[0].payload_json) == {"refund": 42}


async def test_a_card_that_cannot_be_posted_leaves_no_pending_row(service, slack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(service, slack, org)
    slack.fail_with = "channel_not_found"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.interactions.CreateQuestion(question(org, connection.id, agent), metadata=OPERATOR)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "channel_not_found" in caught.value.details()
    assert await service.pool.fetchval("SELECT count(*) FROM interactions.pending_questions") == 0


async def test_a_row_that_cannot_be_persisted_posts_nothing(service, slack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(service, slack, org)
    await service.pool.execute(
        """CREATE FUNCTION interactions.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$;
           CREATE TRIGGER refuse BEFORE INSERT ON interactions.pending_questions FOR EACH ROW EXECUTE FUNCTION interactions.refuse();"""
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await service.interactions.CreateQuestion(question(org, connection.id, agent), metadata=OPERATOR)
    assert slack.calls == []


async def test_telegram_cards_carry_an_inline_keyboard(service, telegram):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = (
        await service.interactions.RegisterConnection(
            pb.RegisterConnectionRequest(
                organization_id=org, platform=pb.PLATFORM_TELEGRAM, external_id="123456", bot_token=TELEGRAM_TOKEN,
                secret_token="telegram-secret-" + "z" * 16, api_base_url=telegram.url,
            ),
            metadata=OPERATOR,
        )  # fmt: skip
    ).connection
    created = await service.interactions.CreateQuestion(question(org, connection.id, agent, user="777"), metadata=OPERATOR)
    (method, body), = telegram.calls
    assert method == "sendMessage" and body["chat_id"] == "C1"
    assert [row[0]["callback_data"] for row in body["reply_markup"]["inline_keyboard"]] == [
        f"{created.question_id}:yes",
        f"{created.question_id}:no",
    ]
    assert created.message_ref.message_id == "100"


async def test_restash_keeps_created_at_and_resets_the_claim(service, slack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(service, slack, org)
    question_id = str(uuid.uuid4())
    store = pb.StorePendingQuestionRequest(
        question_id=question_id, organization_id=org, connection_id=connection.id, expected_user_id="U1",
        agent_id=agent, channel_id="C1", payload_json='{"try": 1}',
    )  # fmt: skip
    first = await service.interactions.StorePendingQuestion(store, metadata=OPERATOR)
    claim = pb.ClaimPendingQuestionRequest(question_id=question_id, organization_id=org, connection_id=connection.id, user_id="U1")
    assert (await service.interactions.ClaimPendingQuestion(claim, metadata=OPERATOR)).claimed
    store.payload_json = '{"try": 2}'
    again = await service.interactions.StorePendingQuestion(store, metadata=OPERATOR)
    assert first.created and not again.created and again.created_at == first.created_at
    reclaimed = await service.interactions.ClaimPendingQuestion(claim, metadata=OPERATOR)
    assert reclaimed.claimed and json.loads(reclaimed.payload_json) == {"try": 2}


async def test_the_sweep_deletes_the_oldest_in_bounded_batches(service, slack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(service, slack, org)
    ids = [str(uuid.uuid4()) for _ in range(25)]  # oldest first
    await service.pool.executemany(
        """INSERT INTO interactions.pending_questions (id, organization_id, connection_id, agent_id, expected_user_id,
                                                       channel_id, created_at)
           VALUES ($1, $2, $3, $4, 'U1', 'C1', now() - interval '2 days' + make_interval(secs => $5))""",
        [(question_id, org, connection.id, agent, float(i)) for i, question_id in enumerate(ids)],
    )
    first = await service.interactions.SweepStalePendingInteractions(pb.SweepStalePendingInteractionsRequest(limit=10), metadata=OPERATOR)
    rest = await service.interactions.SweepStalePendingInteractions(pb.SweepStalePendingInteractionsRequest(), metadata=OPERATOR)
    assert list(first.deleted_question_ids) == ids[:10] and list(rest.deleted_question_ids) == ids[10:]
    assert await service.pool.fetchval("SELECT count(*) FROM interactions.pending_questions") == 0


async def test_workers_ask_only_for_their_own_agent_and_organisation(service, slack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(service, slack, org)
    token = ISSUER.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=5)).token
    worker = (("authorization", f"Bearer {token}"),)
    assert (await service.interactions.CreateQuestion(question(org, connection.id, agent), metadata=worker)).question_id
    for request in (question(org, connection.id, str(uuid.uuid4())), question(str(uuid.uuid4()), connection.id, agent)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await service.interactions.CreateQuestion(request, metadata=worker)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.interactions.RegisterConnection(pb.RegisterConnectionRequest(organization_id=org), metadata=worker)
    assert caught.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)


async def test_the_periodic_sweep_runs_on_one_replica_at_a_time(service, slack):
    from switchboard.services.interactions.sweeper import QuestionSweeper

    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    # The replica's own sweeper would take part too (its first sweep may start late on a busy
    # machine): only the three under test sweep here.
    own = service.app.component(QuestionSweeper)
    await own.stop()
    connection = await slack_connection(service, slack, org)
    await service.pool.executemany(
        """INSERT INTO interactions.pending_questions (id, organization_id, connection_id, agent_id, expected_user_id,
                                                       channel_id, created_at)
           VALUES ($1, $2, $3, $4, 'U1', 'C1', now() - interval '2 days')""",
        [(str(uuid.uuid4()), org, connection.id, agent) for _ in range(30)],
    )
    replicas = [QuestionSweeper(service.pool, limit=10) for _ in range(3)]
    results = []
    while await service.pool.fetchval("SELECT count(*) FROM interactions.pending_questions"):
        results += await asyncio.gather(*(r.run_once() for r in replicas))
    deleted = [question_id for result in results if result for question_id in result]
    assert len(deleted) == len(set(deleted)) == 30  # each row swept once, whoever held the lock

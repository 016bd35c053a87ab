"""Clicks through the edge's webhooks: Slack signing v0 and Telegram secret tokens checked by the
interactions service, each click answered once, its event published once, the card edited."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from urllib.parse import urlencode

import httpx
import pytest

from switchboard.services.edge.app import create_app
from switchboard.services.edge.upstreams import Upstreams
from switchboard.shared.config import Settings
from switchboard.shared.grpc.client import open_channel
from switchboard.interactions.v1 import event_service_pb2 as epb
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN
from tests.interactions.conftest import OPERATOR, replica
from tests.interactions.test_questions import KEYS, SLACK_TOKEN, TELEGRAM_TOKEN, question
from tests.support.asgi import serve_asgi
from tests.support.fake_chat import FakeSlack, FakeTelegram
from tests.support.slack import slack_signed_headers
from tests.support.worker_keys import PUBLIC_KEYS_SETTING

SIGNING_SECRET = "signing-" + "x" * 24
TELEGRAM_SECRET = "telegram-secret-" + "z" * 16


@pytest.fixture
async def stack(migrated_database):
    slack, telegram = FakeSlack(SLACK_TOKEN), FakeTelegram(TELEGRAM_TOKEN)
    async with replica(migrated_database, credentials_keys=KEYS) as service, serve_asgi(slack.app()) as slack_url, serve_asgi(
        telegram.app()
    ) as telegram_url:
        channel = open_channel(f"127.0.0.1:{service.port}", token=INTERNAL_TOKEN)
        edge_app = create_app(
            Settings(internal_token=INTERNAL_TOKEN, worker_token_public_keys=PUBLIC_KEYS_SETTING),
            upstreams=Upstreams({name: channel for name in ("identity", "interactions", "secretproxy", "runs")}),
        )
        async with serve_asgi(edge_app) as edge_url:
            service.interactions = interaction_service_pb2_grpc.InteractionServiceStub(service.channel)
            service.slack, service.telegram = slack, telegram
            slack.url, telegram.url, service.edge_url = slack_url + "/api", telegram_url, edge_url
            yield service


def signed(body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    return slack_signed_headers(secret, body, timestamp=timestamp)


def click(question_id: str, option_id: str = "yes", user: str = "U1", team: str = "T123") -> bytes:
    payload = {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": user},
        "actions": [{"action_id": option_id, "block_id": question_id, "value": question_id}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def events_of(service, org: str, agent: str) -> list[epb.Event]:
    """Every event of the agent's stream so far (reads until a short silence after the last)."""
    call = service.stub.Subscribe(epb.SubscribeRequest(stream=f"agents/{agent}", organization_id=org), metadata=OPERATOR)
    found = []
    try:
        while True:
            found.append((await asyncio.wait_for(call.read(), 1.0)).event)
    except TimeoutError:
        call.cancel()
    return found


async def until(condition, timeout: float = 10.0) -> None:
    """Wait for a background effect with no event of its own (a card edited by a retry loop)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_signed_slack_click_answers_once_publishes_once_and_edits_the_card(stack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = (
        await stack.interactions.RegisterConnection(
            pb.RegisterConnectionRequest(
                organization_id=org, platform=pb.PLATFORM_SLACK, external_id="T123", bot_token=SLACK_TOKEN,
                signing_secret=SIGNING_SECRET, api_base_url=stack.slack.url,
            ),
            metadata=OPERATOR,
        )  # fmt: skip
    ).connection
    created = await stack.interactions.CreateQuestion(question(org, connection.id, agent), metadata=OPERATOR)
    body = click(created.question_id)
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as http:
        first = await http.post("/webhooks/slack/interactions", content=body, headers=signed(body))
        assert first.status_code == 200 and first.json()["outcome"] == "answered"
        for retry in range(1, 4):  # Slack's retries of the same click
            again = await http.post(
                "/webhooks/slack/interactions", content=body, headers={**signed(body), "X-Slack-Retry-Num": str(retry)}
            )
            assert again.status_code == 200 and again.json()["outcome"] == "already_answered"

        events = await events_of(stack, org, agent)
        assert [(e.type, e.sequence) for e in events] == [("question.answered", 1)]
        answered = json.loads(events[0].payload_json)
        assert (answered["question_id"], answered["option_id"], answered["option_label"], answered["user_id"]) == (
            created.question_id, "yes", "Yes", "U1",
        )  # fmt: skip
        assert answered["payload"] == {"refund": 42} and answered["agent_id"] == agent
        await until(lambda: any(name == "chat.update" for name, _ in stack.slack.calls))
        update = next(body for name, body in stack.slack.calls if name == "chat.update")
        assert update["ts"] == created.message_ref.message_id and "Yes" in update["text"]

        # Refusals, each with a problem body and nothing processed.
        stale = await http.post("/webhooks/slack/interactions", content=body, headers=signed(body, timestamp=int(time.time()) - 600))
        forged = await http.post("/webhooks/slack/interactions", content=body, headers=signed(body, secret="wrong"))
        unknown_team = await http.post("/webhooks/slack/interactions", content=click(created.question_id, team="T999"),
                                       headers=signed(click(created.question_id, team="T999")))  # fmt: skip
        malformed = await http.post("/webhooks/slack/interactions", content=b"payload=%7Bnot-json", headers=signed(b"payload=%7Bnot-json"))
        other = await stack.interactions.CreateQuestion(question(org, connection.id, agent), metadata=OPERATOR)
        bad_action = await http.post("/webhooks/slack/interactions", content=click(other.question_id, option_id="maybe"),
                                     headers=signed(click(other.question_id, option_id="maybe")))  # fmt: skip
        assert [r.status_code for r in (stale, forged, unknown_team, malformed, bad_action)] == [401, 401, 404, 400, 400]
        assert all(r.headers["content-type"] == "application/problem+json" for r in (stale, forged, unknown_team, malformed, bad_action))
    assert len(await events_of(stack, org, agent)) == 1


async def test_a_telegram_callback_answers_acknowledges_and_edits(stack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = (
        await stack.interactions.RegisterConnection(
            pb.RegisterConnectionRequest(
                organization_id=org, platform=pb.PLATFORM_TELEGRAM, external_id="123456", bot_token=TELEGRAM_TOKEN,
                secret_token=TELEGRAM_SECRET, api_base_url=stack.telegram.url,
            ),
            metadata=OPERATOR,
        )  # fmt: skip
    ).connection
    created = await stack.interactions.CreateQuestion(question(org, connection.id, agent, user="777"), metadata=OPERATOR)
    update = {"update_id": 1, "callback_query": {"id": "cb-1", "from": {"id": 777}, "data": f"{created.question_id}:no"}}
    url = f"/webhooks/telegram/{connection.id}"
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as http:
        wrong = await http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
        assert wrong.status_code == 401
        answered = await http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        duplicate = await http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        assert (answered.json()["outcome"], duplicate.json()["outcome"]) == ("answered", "already_answered")
    await until(lambda: {"answerCallbackQuery", "editMessageText"} <= {name for name, _ in stack.telegram.calls})
    events = await events_of(stack, org, agent)
    assert len(events) == 1 and json.loads(events[0].payload_json)["option_label"] == "No"

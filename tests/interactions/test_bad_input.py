"""Hostile and malformed input to the interactions service and its edge routes: every one a clear
4xx or INVALID_ARGUMENT naming what is wrong, never INTERNAL, 500 or 502, and nothing changed."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlencode

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration

from switchboard.shared.errors import field_violations
from switchboard.interactions.v1 import event_service_pb2 as epb
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from tests.support.worker_keys import ISSUER
from tests.interactions.conftest import OPERATOR
from tests.interactions.test_questions import SLACK_TOKEN, TELEGRAM_TOKEN, question
from tests.interactions.test_webhooks import SIGNING_SECRET, TELEGRAM_SECRET, click, signed, stack  # noqa: F401 (fixture)
from tests.support.page_tokens import assert_hostile_tokens_refused

DEEP = "[" * 5000 + "]" * 5000  # json.loads needs ~one stack frame per level: RecursionError, not ValueError
SLACK_URL = "/webhooks/slack/interactions"


async def invalid(call, *fields: str) -> grpc.aio.AioRpcError:
    """The call fails with INVALID_ARGUMENT and exactly these field violations."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert [v.field for v in field_violations(caught.value)] == list(fields)
    return caught.value


async def slack_connection(stack, org: str, team: str = "T123") -> pb.Connection:
    reply = await stack.interactions.RegisterConnection(
        pb.RegisterConnectionRequest(
            organization_id=org, platform=pb.PLATFORM_SLACK, external_id=team, bot_token=SLACK_TOKEN,
            signing_secret=SIGNING_SECRET, api_base_url=stack.slack.url,
        ),
        metadata=OPERATOR,
    )  # fmt: skip
    return reply.connection


def slack_body(payload: object) -> bytes:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


def problem_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.json()["detail"]


# -- JSON bounds ---------------------------------------------------------------------------------


async def test_deeply_nested_json_is_invalid_argument_on_every_payload_field(stack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(stack, org)
    stream = f"agents/{agent}"
    await invalid(stack.stub.Publish(epb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json=DEEP), metadata=OPERATOR), "payload_json")
    batch = epb.PublishBatchRequest(stream=stream, organization_id=org, events=[epb.EventInput(type="t", payload_json="{}"), epb.EventInput(type="t", payload_json=DEEP)])
    await invalid(stack.stub.PublishBatch(batch, metadata=OPERATOR), "events[1].payload_json")
    deep_question = question(org, connection.id, agent)
    deep_question.payload_json = '{"a":' * 3000 + "1" + "}" * 3000
    await invalid(stack.interactions.CreateQuestion(deep_question, metadata=OPERATOR), "payload_json")
    stored = pb.StorePendingQuestionRequest(
        question_id=str(uuid.uuid4()), organization_id=org, connection_id=connection.id, agent_id=agent,
        expected_user_id="U1", channel_id="C1", payload_json='{"a":' * 3000 + "1" + "}" * 3000,
    )  # fmt: skip
    await invalid(stack.interactions.StorePendingQuestion(stored, metadata=OPERATOR), "payload_json")
    assert stack.slack.calls == []  # nothing was posted
    # Shallow nesting is still JSON as before (64 levels allowed).
    fine = await stack.stub.Publish(epb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json="[" * 64 + "]" * 64), metadata=OPERATOR)
    assert fine.sequence == 1


async def test_a_deeply_nested_slack_payload_is_a_400_before_any_signature_check(stack):
    body = slack_body(DEEP)
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as http:
        unsigned = await http.post(SLACK_URL, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        deep_object = await http.post(SLACK_URL, content=slack_body('{"team": ' * 4000 + "1" + "}" * 4000), headers=signed(body))
    assert (unsigned.status_code, deep_object.status_code) == (400, 400)
    assert "more than 64 deep" in problem_of(unsigned) and "more than 64 deep" in problem_of(deep_object)


async def test_a_deeply_nested_telegram_update_is_a_400(stack):
    org = str(uuid.uuid4())
    connection = (
        await stack.interactions.RegisterConnection(
            pb.RegisterConnectionRequest(
                organization_id=org, platform=pb.PLATFORM_TELEGRAM, external_id="123456", bot_token=TELEGRAM_TOKEN,
                secret_token=TELEGRAM_SECRET, api_base_url=stack.telegram.url,
            ),
            metadata=OPERATOR,
        )  # fmt: skip
    ).connection
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}
    url = f"/webhooks/telegram/{connection.id}"
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as http:
        deep = await http.post(url, content=DEEP.encode(), headers=headers)
        not_object = await http.post(url, content=b"[1]", headers=headers)
        bad_callback = await http.post(url, json={"callback_query": "yes"}, headers=headers)
        no_sender = await http.post(url, json={"callback_query": {"id": "1", "data": "q:o"}}, headers=headers)
    assert [r.status_code for r in (deep, not_object, bad_callback, no_sender)] == [400, 400, 400, 400]
    assert "more than 64 deep" in problem_of(deep)
    assert "must be a JSON object" in problem_of(not_object)
    assert "'update.callback_query' must be a JSON object" in problem_of(bad_callback)
    assert "'update.callback_query.from' is required" in problem_of(no_sender)


# -- integers from text --------------------------------------------------------------------------


async def test_a_slack_timestamp_of_non_ascii_digits_or_thousands_of_digits_is_a_400(stack):
    org = str(uuid.uuid4())
    await slack_connection(stack, org)
    body = click(str(uuid.uuid4()))
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as http:
        answers = [
            await http.post(SLACK_URL, content=body, headers={**signed(body), "X-Slack-Request-Timestamp": stamp})
            # Header bytes are Latin-1: b"\xb2" is "²", which str.isdigit() accepts and int() refuses.
            for stamp in (b"\xb2", b"1700000000\xb2", b"9" * 5000, b"-5", b"1e9")
        ]
    assert [r.status_code for r in answers] == [400] * 5, [r.text for r in answers]
    assert all("X-Slack-Request-Timestamp" in problem_of(r) for r in answers)


async def test_the_service_reads_a_slack_timestamp_as_ascii_digits_only(stack):
    org = str(uuid.uuid4())
    await slack_connection(stack, org)
    for stamp in ("²", "9" * 5000):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.interactions.VerifySlackSignature(
                pb.VerifySlackSignatureRequest(team_id="T123", timestamp=stamp, signature="v0=00", body=b"x"), metadata=OPERATOR
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_sse_position_of_non_ascii_digits_or_beyond_int64_is_a_400(stack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    token = ISSUER.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=5)).token
    url = f"/v1/streams/agents/{agent}/events"
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as http:
        answers = [await http.get(url, headers={**auth, "Last-Event-ID": value}) for value in (b"\xb2", str(2**63), "9" * 5000)]
        answers += [await http.get(url, params={"after": value}, headers=auth) for value in ("²", str(2**64))]
    assert [r.status_code for r in answers] == [400] * 5, [r.text for r in answers]
    assert all("ASCII digits" in problem_of(r) for r in answers)


# -- Slack payload shapes ------------------------------------------------------------------------


async def test_signed_slack_payloads_of_the_wrong_shape_are_400s_that_say_what_is_wrong(stack):
    org = str(uuid.uuid4())
    await slack_connection(stack, org)
    base = {"type": "block_actions", "team": {"id": "T123"}, "user": {"id": "U1"}}
    action = {"action_id": "yes", "block_id": str(uuid.uuid4())}
    cases = [
        ({**base, "actions": "yes"}, "'payload.actions' must be a JSON array"),
        ({**base, "actions": [7]}, "'payload.actions[0]' must be a JSON object"),
        ({**base, "actions": []}, "'payload.actions' must hold at least one action"),
        ({**base, "actions": [{"block_id": "b"}]}, "'payload.actions[0].action_id' is required"),
        ({**base, "actions": [{**action, "action_id": 5}]}, "'payload.actions[0].action_id' must be a string"),
        ({**base, "actions": [action], "user": None}, "'payload.user' is required"),
        ({**base, "actions": [action], "user": {"id": "\ud800"}}, "'payload.user.id' must be non-empty text"),
        ({**base, "team": None, "actions": [action]}, "'payload.team' is required"),
        ({**base, "team": "T123", "actions": [action]}, "'payload.team' must be a JSON object"),
        ({**base, "team": {"id": ["T123"]}, "actions": [action]}, "'payload.team.id' must be a string"),
        ([1, 2], "'payload' must be a JSON object"),
    ]
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as http:
        for payload, message in cases:
            body = slack_body(payload)
            answer = await http.post(SLACK_URL, content=body, headers=signed(body))
            assert answer.status_code == 400, (payload, answer.text)
            assert message in problem_of(answer), (payload, answer.text)
        no_field = await http.post(SLACK_URL, content=b"token=x", headers=signed(b"token=x"))
        assert no_field.status_code == 400 and "no 'payload' field" in problem_of(no_field)


# -- text that cannot be stored ------------------------------------------------------------------


async def test_nul_in_an_api_base_url_or_a_message_ref_is_a_field_violation(stack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    registration = pb.RegisterConnectionRequest(
        organization_id=org, platform=pb.PLATFORM_SLACK, external_id="T9", bot_token=SLACK_TOKEN,
        signing_secret=SIGNING_SECRET, api_base_url="http://127.0.0.1:9\x00/api",
    )  # fmt: skip
    await invalid(stack.interactions.RegisterConnection(registration, metadata=OPERATOR), "api_base_url")
    connection = await slack_connection(stack, org)
    stored = pb.StorePendingQuestionRequest(
        question_id=str(uuid.uuid4()), organization_id=org, connection_id=connection.id, agent_id=agent,
        expected_user_id="U1", channel_id="C1", message_ref=pb.MessageRef(channel_id="C1\x00", message_id="1.2\x00"),
    )  # fmt: skip
    await invalid(stack.interactions.StorePendingQuestion(stored, metadata=OPERATOR), "message_ref.channel_id", "message_ref.message_id")
    assert await stack.pool.fetchval("SELECT count(*) FROM interactions.pending_questions") == 0


# -- plain bugs ----------------------------------------------------------------------------------


async def test_deleting_a_connection_deletes_its_pending_questions_with_it(stack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(stack, org)
    other_org = str(uuid.uuid4())
    other = await slack_connection(stack, other_org, team="T456")
    for _ in range(3):
        await stack.interactions.CreateQuestion(question(org, connection.id, agent), metadata=OPERATOR)
    kept = await stack.interactions.CreateQuestion(question(other_org, other.id, agent), metadata=OPERATOR)

    deleted = await stack.interactions.DeleteConnection(pb.DeleteConnectionRequest(connection_id=connection.id), metadata=OPERATOR)

    assert deleted.deleted_pending_questions == 3
    remaining = await stack.pool.fetch("SELECT id::text FROM interactions.pending_questions")
    assert [r["id"] for r in remaining] == [kept.question_id]
    assert await stack.pool.fetchval("SELECT count(*) FROM interactions.connections WHERE id = $1", connection.id) == 0
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stack.interactions.DeleteConnection(pb.DeleteConnectionRequest(connection_id=connection.id), metadata=OPERATOR)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND
    empty = await stack.interactions.DeleteConnection(pb.DeleteConnectionRequest(connection_id=other.id), metadata=OPERATOR)
    assert empty.deleted_pending_questions == 1


async def test_a_sweep_with_max_age_zero_means_the_default_and_a_huge_max_age_is_refused(stack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await slack_connection(stack, org)
    fresh = await stack.interactions.CreateQuestion(question(org, connection.id, agent), metadata=OPERATOR)
    old = await stack.interactions.CreateQuestion(question(org, connection.id, agent), metadata=OPERATOR)
    await stack.pool.execute("UPDATE interactions.pending_questions SET created_at = now() - interval '25 hours' WHERE id = $1", old.question_id)

    swept = await stack.interactions.SweepStalePendingInteractions(
        pb.SweepStalePendingInteractionsRequest(max_age=Duration(seconds=0)), metadata=OPERATOR
    )

    assert list(swept.deleted_question_ids) == [old.question_id]  # the default, 24 h: the fresh one stays
    remaining = await stack.pool.fetch("SELECT id::text FROM interactions.pending_questions")
    assert [r["id"] for r in remaining] == [fresh.question_id]
    for huge in (Duration(seconds=10_000 * 365 * 86400), Duration(seconds=315_576_000_000), Duration(seconds=0, nanos=-1)):
        await invalid(stack.interactions.SweepStalePendingInteractions(pb.SweepStalePendingInteractionsRequest(max_age=huge), metadata=OPERATOR), "max_age")


# -- SSE resume beyond the head ------------------------------------------------------------------


async def sse_messages(response: httpx.Response):
    """(event, id, data) of each SSE message, keep-alive comments skipped."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
            continue
        if fields:
            yield fields.get("event", "message"), fields.get("id"), fields.get("data", "")
        fields = {}


async def test_an_sse_resume_beyond_the_head_gets_a_reset_event_then_live_events(stack):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    stream = f"agents/{agent}"
    for i in range(3):
        await stack.stub.Publish(epb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json=json.dumps({"i": i})), metadata=OPERATOR)
    token = ISSUER.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=5)).token
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": "100"}  # e.g. remembered from before a database reset
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=httpx.Timeout(10, read=10)) as http, asyncio.timeout(15):
        async with http.stream("GET", f"/v1/streams/{stream}/events", headers=headers) as response:
            assert response.status_code == 200
            messages = sse_messages(response)
            event, event_id, data = await anext(messages)
            assert (event, event_id, json.loads(data)) == ("reset", "3", {"requested_after_sequence": 100, "head_sequence": 3})
            await stack.stub.Publish(epb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json='{"i": 3}'), metadata=OPERATOR)
            assert await anext(messages) == ("t", "4", '{"i": 3}')
    # A stream that never had an event: the head is 0, and the first event published is delivered.
    fresh = f"agents/{agent}/fresh"
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=httpx.Timeout(10, read=10)) as http, asyncio.timeout(15):
        async with http.stream("GET", f"/v1/streams/{fresh}/events", headers=headers) as response:
            messages = sse_messages(response)
            assert (await anext(messages))[:2] == ("reset", "0")
            await stack.stub.Publish(epb.PublishRequest(stream=fresh, organization_id=org, type="t", payload_json="{}"), metadata=OPERATOR)
            assert await anext(messages) == ("t", "1", "{}")


# -- page tokens ---------------------------------------------------------------------------------


async def test_forged_or_foreign_page_tokens_are_invalid_argument_on_list_connections(stack):
    org = str(uuid.uuid4())
    await slack_connection(stack, org)
    await assert_hostile_tokens_refused(stack.interactions.ListConnections, pb.ListConnectionsRequest(organization_id=org), (datetime, uuid.UUID), OPERATOR)
    for team in ("T2", "T3"):
        await stack.interactions.RegisterConnection(
            pb.RegisterConnectionRequest(
                organization_id=org, platform=pb.PLATFORM_SLACK, external_id=team, bot_token=SLACK_TOKEN,
                signing_secret=SIGNING_SECRET, api_base_url=stack.slack.url,
            ),
            metadata=OPERATOR,
        )  # fmt: skip
    page = await stack.interactions.ListConnections(pb.ListConnectionsRequest(organization_id=org, page_size=2), metadata=OPERATOR)
    assert page.next_page_token
    foreign = pb.ListConnectionsRequest(organization_id=org, platform=pb.PLATFORM_TELEGRAM, page_token=page.next_page_token)
    await invalid(stack.interactions.ListConnections(foreign, metadata=OPERATOR), "page_token")
    rest = await stack.interactions.ListConnections(pb.ListConnectionsRequest(organization_id=org, page_token=page.next_page_token), metadata=OPERATOR)
    assert len(rest.connections) == 1 and not rest.next_page_token


async def test_a_live_subscriber_whose_stream_was_reset_under_it_gets_a_reset_then_new_events(stack):
    org, stream = str(uuid.uuid4()), "s"
    call = stack.stub.Subscribe(epb.SubscribeRequest(stream=stream, organization_id=org), metadata=OPERATOR)
    for i in range(3):
        await stack.stub.Publish(epb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json=str(i)), metadata=OPERATOR)
    async with asyncio.timeout(15):
        assert [(await call.read()).event.sequence for _ in range(3)] == [1, 2, 3]
        # The stream's storage is lost (a restore from an older backup, say), and the service's
        # database connection with it.
        await stack.pool.execute("DELETE FROM interactions.streams WHERE organization_id = $1", org)
        killed = await stack.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND datname = current_database()"
        )
        assert killed == 1
        reset = await call.read()
        assert reset.WhichOneof("kind") == "reset"
        assert (reset.reset.requested_after_sequence, reset.reset.head_sequence) == (3, 0)
        await stack.stub.Publish(epb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json='"new"'), metadata=OPERATOR)
        event = (await call.read()).event
        assert (event.sequence, event.payload_json) == (1, '"new"')
    call.cancel()

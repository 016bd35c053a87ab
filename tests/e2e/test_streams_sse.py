"""Event streams as a client sees them: SSE through the edge of a `switchboard up --replicas 2`
stack, publishers on both replicas, replicas killed under the subscriber."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import grpc
import httpx
import psutil
import pytest

from switchboard.interactions.v1 import event_service_pb2 as pb
from switchboard.interactions.v1 import event_service_pb2_grpc
from switchboard.supervisor import REPLICA_PORT_STRIDE
from tests.e2e.test_up import start_stack, stop_stack, until_serving

SIZES = [10, 1000, 8192, 20_000, 65_536]


class SseClient:
    """A minimal SSE reader over httpx that remembers the last event id, as browsers do."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.token = token
        self.last_id: str | None = None
        self.events: list[tuple[int, str, str]] = []
        self.connections = 0

    async def read_until(self, count: int, *, after: int | None = None) -> None:
        """Read (reconnecting with Last-Event-ID whenever the stream ends) until ``count`` events."""
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=30)) as http:
            while len(self.events) < count:
                headers = {"Authorization": f"Bearer {self.token}"}
                if self.last_id is not None:
                    headers["Last-Event-ID"] = self.last_id
                elif after is not None:
                    headers["Last-Event-ID"] = str(after)
                try:
                    async with http.stream("GET", self.url, headers=headers) as response:
                        assert response.status_code == 200, await response.aread()
                        self.connections += 1
                        await self._consume(response, count)
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    pass  # the replica behind the stream died: reconnect and resume

    async def _consume(self, response: httpx.Response, count: int) -> None:
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue  # keep-alive comment
            if line:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value
                continue
            if "id" in fields:
                self.last_id = fields["id"]
            if fields.get("event") not in (None, "error", "trimmed"):
                self.events.append((int(fields["id"]), fields["event"], fields.get("data", "")))
                if len(self.events) >= count:
                    return
            fields = {}


def payload(i: int) -> str:
    return json.dumps({"i": i, "pad": "x" * max(0, SIZES[i % len(SIZES)] - 20)})


@pytest.mark.database_layouts("pgbouncer", "four_databases")
async def test_sse_delivers_concurrent_publishes_from_two_replicas_in_order_and_resumes(tmp_path):
    stack = await start_stack(tmp_path, replicas=2)
    try:
        org, agent = str(uuid.uuid4()), str(uuid.uuid4())
        token = stack.tokens.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=10)).token
        url = f"http://127.0.0.1:{stack.ports['edge']}/v1/streams/agents/{agent}/events"
        replicas = [stack.ports["interactions"] + REPLICA_PORT_STRIDE * i for i in range(2)]
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in replicas]
        metadata = (("authorization", f"Bearer {stack.internal_token}"),)
        client = SseClient(url, token)
        reading = asyncio.ensure_future(client.read_until(300))
        await asyncio.sleep(0)  # the subscription may start before or after the first publish

        async def publish(i: int) -> int:
            stub = event_service_pb2_grpc.EventServiceStub(channels[i % 2])
            reply = await stub.Publish(
                pb.PublishRequest(stream=f"agents/{agent}", organization_id=org, type="agent.output", payload_json=payload(i)),
                metadata=metadata,
            )
            return reply.sequence

        sequences = await asyncio.gather(*(publish(i) for i in range(300)))
        assert sorted(sequences) == list(range(1, 301))
        await asyncio.wait_for(reading, 60)
        assert [e[0] for e in client.events] == list(range(1, 301))
        index_of = dict(zip(sequences, range(300), strict=True))
        assert all(json.loads(data)["i"] == index_of[seq] for seq, _, data in client.events)

        resumed = SseClient(url, token)
        await asyncio.wait_for(resumed.read_until(50, after=250), 30)
        assert [e[0] for e in resumed.events] == list(range(251, 301))

        async with httpx.AsyncClient(timeout=10) as http:
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await http.get(url)).status_code == 401
            assert (await http.get(url, headers={"Authorization": "Bearer forged"})).status_code == 401
            other_agent = url.replace(agent, str(uuid.uuid4()))
            refused = await http.get(other_agent, headers=bearer)
            assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
            assert (await http.get(url, headers={**bearer, "Last-Event-ID": "minus-one"})).status_code == 400
        for channel in channels:
            await channel.close()
    finally:
        assert await stop_stack(stack) == 0


async def test_killing_the_replicas_under_a_subscriber_loses_nothing(tmp_path):
    stack = await start_stack(tmp_path, replicas=2)
    try:
        org, agent = str(uuid.uuid4()), str(uuid.uuid4())
        token = stack.tokens.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=10)).token
        url = f"http://127.0.0.1:{stack.ports['edge']}/v1/streams/agents/{agent}/events"
        replicas = [stack.ports["interactions"] + REPLICA_PORT_STRIDE * i for i in range(2)]
        metadata = (("authorization", f"Bearer {stack.internal_token}"),)
        # Publish straight to a replica that is alive (a call in flight to a replica that is killed
        # may or may not have committed, which is the publisher's problem, not the subscriber's).
        channels = {port: grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in replicas}
        client = SseClient(url, token)
        total = 90
        reading = asyncio.ensure_future(client.read_until(total))
        published = 0

        async def publish_some(n: int, port: int) -> None:
            nonlocal published
            stub = event_service_pb2_grpc.EventServiceStub(channels[port])
            for _ in range(n):
                await stub.Publish(
                    pb.PublishRequest(stream=f"agents/{agent}", organization_id=org, type="t", payload_json=payload(published)),
                    metadata=metadata,
                    wait_for_ready=True,
                    timeout=30,
                )
                published += 1

        await publish_some(30, replicas[1])
        for victim_port, survivor in ((replicas[0], replicas[1]), (replicas[1], replicas[0])):
            # Kill each replica in turn: one of them served the subscriber.
            victim = next(c for c in psutil.Process(stack.process.pid).children() if f"--port {victim_port} " in " ".join(c.cmdline()) + " ")
            victim.kill()
            victim.wait(10)
            await publish_some(30, survivor)
            await until_serving(victim_port)
        await asyncio.wait_for(reading, 60)
        assert [e[0] for e in client.events] == list(range(1, total + 1))
        assert client.connections >= 2  # it did have to reconnect
        for channel in channels.values():
            await channel.close()
    finally:
        assert await stop_stack(stack) == 0


@pytest.mark.database_layouts("pgbouncer", "four_databases")
async def test_a_question_created_on_one_replica_is_answered_through_the_other_and_the_edge(tmp_path):
    from urllib.parse import urlencode

    from switchboard.interactions.v1 import interaction_service_pb2 as ipb
    from switchboard.interactions.v1 import interaction_service_pb2_grpc
    from tests.support.asgi import serve_asgi
    from tests.support.fake_chat import FakeSlack
    from tests.support.slack import slack_signed_headers

    slack = FakeSlack("xoxb-" + "e" * 30)
    async with serve_asgi(slack.app()) as slack_url:
        stack = await start_stack(tmp_path, replicas=2)
        try:
            org, agent = str(uuid.uuid4()), str(uuid.uuid4())
            metadata = (("authorization", f"Bearer {stack.internal_token}"),)
            first, second = (stack.ports["interactions"] + REPLICA_PORT_STRIDE * i for i in range(2))
            async with grpc.aio.insecure_channel(f"127.0.0.1:{first}") as one, grpc.aio.insecure_channel(f"127.0.0.1:{second}") as two:
                stub_one = interaction_service_pb2_grpc.InteractionServiceStub(one)
                secret = "signing-" + "q" * 24
                connection = (
                    await stub_one.RegisterConnection(
                        ipb.RegisterConnectionRequest(
                            organization_id=org, platform=ipb.PLATFORM_SLACK, external_id="TE2E", bot_token=slack.bot_token,
                            signing_secret=secret, api_base_url=slack_url + "/api",
                        ),
                        metadata=metadata,
                    )  # fmt: skip
                ).connection
                created = await stub_one.CreateQuestion(
                    ipb.CreateQuestionRequest(
                        organization_id=org, connection_id=connection.id, agent_id=agent, expected_user_id="U1", channel_id="C1",
                        text="Ship it?", options=[ipb.QuestionOption(id="yes", label="Yes")],
                    ),
                    metadata=metadata,
                )  # fmt: skip
                payload = {"type": "block_actions", "team": {"id": "TE2E"}, "user": {"id": "U1"},
                           "actions": [{"action_id": "yes", "value": created.question_id}]}  # fmt: skip
                body = urlencode({"payload": json.dumps(payload)}).encode()
                headers = slack_signed_headers(secret, body)
                async with httpx.AsyncClient(timeout=10) as http:
                    outcomes = [
                        (await http.post(f"http://127.0.0.1:{stack.ports['edge']}/webhooks/slack/interactions", content=body, headers=headers)).json()["outcome"]
                        for _ in range(4)  # the click and three retries, balanced over both replicas
                    ]
                assert outcomes == ["answered", "already_answered", "already_answered", "already_answered"]
                # The other replica sees the same state.
                again = await interaction_service_pb2_grpc.InteractionServiceStub(two).AnswerQuestion(
                    ipb.AnswerQuestionRequest(question_id=created.question_id, organization_id=org, connection_id=connection.id,
                                              user_id="U1", option_id="yes"),
                    metadata=metadata,
                )  # fmt: skip
                assert again.outcome == ipb.ANSWER_OUTCOME_ALREADY_ANSWERED
                events_stub = event_service_pb2_grpc.EventServiceStub(two)
                call = events_stub.Subscribe(pb.SubscribeRequest(stream=f"agents/{agent}", organization_id=org), metadata=metadata)
                assert (await call.read()).event.type == "question.answered"
                with __import__("pytest").raises(TimeoutError):
                    await asyncio.wait_for(call.read(), 1.0)  # exactly one event
                call.cancel()
        finally:
            assert await stop_stack(stack) == 0

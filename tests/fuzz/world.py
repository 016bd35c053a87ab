"""Two organisations seeded through the public RPCs: A, which the fuzzed calls act on, and B,
which they must never change. Each has a bit of everything: members and a support bot, an agent
with schema objects, Slack and Telegram connections with pending questions, an event stream,
runs (pending, running, done), secrets, a provider credential and an egress policy."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.identity.v1 import agent_service_pb2 as apb
from switchboard.identity.v1 import agent_service_pb2_grpc
from switchboard.identity.v1 import identity_service_pb2 as ipb
from switchboard.identity.v1 import identity_service_pb2_grpc, resources_pb2
from switchboard.interactions.v1 import event_service_pb2 as epb
from switchboard.interactions.v1 import event_service_pb2_grpc
from switchboard.interactions.v1 import interaction_service_pb2 as qpb
from switchboard.interactions.v1 import interaction_service_pb2_grpc
from switchboard.runs.v1 import run_service_pb2 as rpb
from switchboard.runs.v1 import run_service_pb2_grpc
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as spb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN
from tests.fuzz.stack import SLACK_TOKEN, TELEGRAM_TOKEN, Stack

OPERATOR = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)


@dataclass
class Org:
    """One seeded organisation: its ids, its credentials, and every id of its rows."""

    id: str
    owner_id: str
    agent_id: str
    slack_connection_id: str
    telegram_connection_id: str
    team_id: str
    signing_secret: str
    telegram_secret: str
    worker_token: str
    email: str
    placeholders: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # every id of a row of this organisation
    named: dict[str, str] = field(default_factory=dict)  # a real id for each request field name

    @property
    def streams(self) -> list[str]:
        return [f"agents/{self.agent_id}", "orders/1"]


@dataclass(repr=False)
class World:
    a: Org
    b: Org

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # how Hypothesis prints it in a report
        printer.text(repr(self))

    def __repr__(self) -> str:  # shown in every failure report: keep it short
        return f"World(a={self.a.id}, b={self.b.id})"


async def seed_org(stack: Stack, label: str, *, runs_claimable: bool) -> Org:
    """An organisation with rows in every schema. With ``runs_claimable`` False its pending run is
    not due for ten days, so that an operator's ClaimRun (which may claim any organisation's due
    run, by design) cannot legitimately change it."""
    identity = identity_service_pb2_grpc.IdentityServiceStub(stack.channels["identity"])
    agents = agent_service_pb2_grpc.AgentServiceStub(stack.channels["identity"])
    interactions = interaction_service_pb2_grpc.InteractionServiceStub(stack.channels["interactions"])
    events = event_service_pb2_grpc.EventServiceStub(stack.channels["interactions"])
    runs = run_service_pb2_grpc.RunServiceStub(stack.channels["runs"])
    secrets = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(stack.channels["secretproxy"])
    ids: list[str] = []

    email = f"owner-{label}-{uuid.uuid4().hex[:6]}@example.com"
    signed_up = await identity.SignUp(ipb.SignUpRequest(email=email, display_name=f"Owner {label}"), metadata=OPERATOR)
    org, owner = signed_up.organization.id, signed_up.user.id
    as_owner = (*OPERATOR, ("x-switchboard-user-id", owner))
    member = (await identity.SignUp(ipb.SignUpRequest(email=f"member-{label}-{uuid.uuid4().hex[:6]}@example.com", display_name="Member"), metadata=OPERATOR)).user.id
    await identity.AddMember(ipb.AddMemberRequest(organization_id=org, user_id=member, role=resources_pb2.ROLE_MEMBER), metadata=OPERATOR)
    bot = (await identity.ProvisionSupportBot(ipb.ProvisionSupportBotRequest(organization_id=org), metadata=OPERATOR)).bot_user_id
    agent = (await identity.CreateAgent(ipb.CreateAgentRequest(organization_id=org, name=f"Agent {label}"), metadata=as_owner)).agent.id
    ids += [org, owner, member, bot, agent]

    entity = await agents.CreateEntityType(
        apb.CreateEntityTypeRequest(organization_id=org, agent_id=agent, slug="ticket", name="Ticket", schema_json='{"type": "object"}'),
        metadata=as_owner,
    )
    relationship = await agents.CreateRelationshipType(
        apb.CreateRelationshipTypeRequest(organization_id=org, agent_id=agent, slug="owns", name="Owns", schema_json="{}"), metadata=as_owner
    )
    watcher = await agents.CreateWatcher(
        apb.CreateWatcherRequest(organization_id=org, agent_id=agent, slug="new_ticket", name="New ticket", prompt="Watch", schema_json="{}"),
        metadata=as_owner,
    )
    updated = await agents.UpdateWatcher(apb.UpdateWatcherRequest(watcher_id=watcher.watcher.id, prompt="Watch closely"), metadata=as_owner)
    classifier = await agents.CreateEventClassifier(
        apb.CreateEventClassifierRequest(
            organization_id=org, agent_id=agent, slug="urgent", name="Urgent", watcher_id=watcher.watcher.id, definition_json="{}"
        ),
        metadata=as_owner,
    )
    ids += [entity.entity_type.id, relationship.relationship_type.id, watcher.watcher.id, classifier.event_classifier.id]
    ids += [watcher.watcher.current_version.id, updated.watcher.current_version.id]

    team, signing_secret, telegram_secret = f"T{label.upper()}{uuid.uuid4().hex[:6]}", f"signing-{label}-" + "s" * 24, f"tg-{label}-" + "t" * 24
    slack = await interactions.RegisterConnection(
        qpb.RegisterConnectionRequest(
            organization_id=org, platform=qpb.PLATFORM_SLACK, external_id=team, bot_token=SLACK_TOKEN,
            signing_secret=signing_secret, api_base_url=stack.slack_url,
        ),
        metadata=OPERATOR,
    )  # fmt: skip
    telegram = await interactions.RegisterConnection(
        qpb.RegisterConnectionRequest(
            organization_id=org, platform=qpb.PLATFORM_TELEGRAM, external_id=f"bot-{label}-{uuid.uuid4().hex[:6]}",
            bot_token=TELEGRAM_TOKEN, secret_token=telegram_secret, api_base_url=stack.telegram_url,
        ),
        metadata=OPERATOR,
    )  # fmt: skip
    ids += [slack.connection.id, telegram.connection.id]
    for connection, user in ((slack.connection.id, "U1"), (telegram.connection.id, "42"), (slack.connection.id, "U2")):
        asked = await interactions.CreateQuestion(
            qpb.CreateQuestionRequest(
                organization_id=org, connection_id=connection, agent_id=agent, expected_user_id=user, channel_id="C1",
                text="Approve?", options=[qpb.QuestionOption(id="yes", label="Yes"), qpb.QuestionOption(id="no", label="No")],
                payload_json='{"refund": 42}',
            ),
            metadata=OPERATOR,
        )  # fmt: skip
        ids.append(asked.question_id)
    for stream in (f"agents/{agent}", "orders/1"):
        for n in range(3):
            await events.Publish(epb.PublishRequest(stream=stream, organization_id=org, type="agent.output", payload_json=f'{{"n": {n}}}'), metadata=OPERATOR)

    issued = await identity.IssueWorkerToken(ipb.IssueWorkerTokenRequest(agent_id=agent, connection_id=slack.connection.id, ttl_seconds=3600), metadata=OPERATOR)
    worker = (("authorization", f"Bearer {issued.token}"),)
    ids.append(issued.token_id)
    running = await runs.EnqueueRun(rpb.EnqueueRunRequest(organization_id=org, agent_id=agent, lane=rpb.LANE_SYNC, subject_id="feed-1", payload_json="{}"), metadata=OPERATOR)
    claimed = await runs.ClaimRun(rpb.ClaimRunRequest(worker_id=f"worker-{label}", lanes=[rpb.LANE_SYNC]), metadata=worker)
    assert claimed.run.id == running.run.id, "the seeded run is the one this organisation's worker claims"
    done = await runs.EnqueueRun(rpb.EnqueueRunRequest(organization_id=org, agent_id=agent, lane=rpb.LANE_ACTION, subject_id="x"), metadata=OPERATOR)
    await runs.CancelRun(rpb.CancelRunRequest(run_id=done.run.id), metadata=OPERATOR)
    later = Timestamp(seconds=int(time.time()) + (0 if runs_claimable else 10 * 86400))
    pending = await runs.EnqueueRun(
        rpb.EnqueueRunRequest(organization_id=org, agent_id=agent, lane=rpb.LANE_ACTION, subject_id="y", run_after=later, idempotency_key="k1"), metadata=OPERATOR
    )
    ids += [running.run.id, done.run.id, pending.run.id]

    secret = await secrets.PutSecret(spb.PutSecretRequest(organization_id=org, name=f"KEY_{label.upper()}", value=f"sk-{label}-value"), metadata=OPERATOR)
    scoped = await secrets.PutSecret(
        spb.PutSecretRequest(organization_id=org, agent_id=agent, name=f"AGENT_KEY_{label.upper()}", value=f"sk-{label}-agent"), metadata=OPERATOR
    )
    credential = await secrets.PutProviderCredential(
        spb.PutProviderCredentialRequest(organization_id=org, provider="echo", value=f"cred-{label}", priority=1), metadata=OPERATOR
    )
    await secrets.SetEgressPolicy(
        spb.SetEgressPolicyRequest(organization_id=org, rules=[spb.EgressRule(action=spb.EGRESS_ACTION_ALLOW, host_pattern="127.0.0.1")]),
        metadata=OPERATOR,
    )
    ids += [secret.secret_id, scoped.secret_id, credential.provider_credential.id]
    return Org(
        id=org, owner_id=owner, agent_id=agent, slack_connection_id=slack.connection.id, telegram_connection_id=telegram.connection.id,
        team_id=team, signing_secret=signing_secret, telegram_secret=telegram_secret, worker_token=issued.token, email=email,
        placeholders=[secret.placeholder, scoped.placeholder], ids=ids,
        named={
            "organization_id": org, "target_organization_id": org, "user_id": member, "agent_id": agent,
            "template_agent_id": agent, "entity_type_id": entity.entity_type.id,
            "relationship_type_id": relationship.relationship_type.id, "watcher_id": watcher.watcher.id,
            "watcher_version_id": updated.watcher.current_version.id, "event_classifier_id": classifier.event_classifier.id,
            "connection_id": slack.connection.id, "question_id": asked.question_id,
            "run_id": running.run.id, "worker_id": f"worker-{label}", "secret_id": secret.secret_id,
            "provider_credential_id": credential.provider_credential.id, "team_id": team, "expected_user_id": "U2",
        },
    )  # fmt: skip


async def seed_world(stack: Stack) -> World:
    return World(a=await seed_org(stack, "a", runs_claimable=True), b=await seed_org(stack, "b", runs_claimable=False))

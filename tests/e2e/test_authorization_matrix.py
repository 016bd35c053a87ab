"""The authorization matrix over the running services: every RPC of every service, called by each
kind of principal, is allowed or refused exactly as its declared policy says, and a refused call
changes nothing in any schema.

The four services run as real gRPC servers on one migrated database; the acting users' roles come
from the real identity service (uncached, so every call asks). The principals: the operator; the
owner, an admin and a member of organisation A (the target); the owner of organisation B; a user id
that exists nowhere; a worker of A's agent a1 (whose resources the requests name); a worker of A's
other agent a2; a worker of B; and no token at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from switchboard.services.identity import app as identity_app
from switchboard.services.interactions import app as interactions_app
from switchboard.services.runs import app as runs_app
from switchboard.services.secretproxy import app as secretproxy_app
from switchboard.shared.auth import Authenticator
from switchboard.shared.authz import SIGNED_IN, Policy, Role, policy_of
from switchboard.shared.config import Settings
from switchboard.shared.crypto import new_key_list
from switchboard.shared.db import create_pool
from switchboard.shared.errors import reason_of
from switchboard.peers import remote_fetch
from switchboard.shared.memberships import CachedMemberships
from switchboard.shared.revocations import RevocationSync, RevokedTokens
from switchboard.identity.v1 import agent_service_pb2 as agents_pb
from switchboard.identity.v1 import agent_service_pb2_grpc, identity_service_pb2_grpc, resources_pb2
from switchboard.identity.v1 import identity_service_pb2 as identity_pb
from switchboard.interactions.v1 import event_service_pb2 as events_pb
from switchboard.interactions.v1 import event_service_pb2_grpc, interaction_service_pb2_grpc
from switchboard.interactions.v1 import interaction_service_pb2 as interactions_pb
from switchboard.policies import servicers
from switchboard.runs.v1 import run_service_pb2 as runs_pb
from switchboard.runs.v1 import run_service_pb2_grpc
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as proxy_pb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN
from tests.support.worker_keys import PUBLIC_KEYS_SETTING, SIGNING_KEY_SETTING, verifier
from tests.support.asgi import serve_asgi
from tests.support.fake_chat import FakeSlack
from tests.support.serving import serving
from tests.support.slack import slack_signed_headers

OPERATOR = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)
SLACK_TOKEN = "xoxb-" + "m" * 30
SIGNING_SECRET = "signing-" + "m" * 24
TELEGRAM_SECRET = "telegram-secret-" + "m" * 16
PRINCIPALS = ("operator", "owner", "admin", "member", "other_user", "unknown_user", "worker_a1", "worker_a2", "worker_b", "nobody")
# The reasons with which authorization refuses (anything else is the handler's own answer).
AUTHZ_REASONS = {
    "TOKEN_MISSING", "NO_ACTING_USER", "USERS_NOT_ALLOWED", "WORKERS_NOT_ALLOWED", "WORKERS_ONLY",
    "NOT_PERMITTED", "OTHER_ORGANIZATION", "OTHER_AGENT", "OTHER_CONNECTION", "NO_POLICY",
}  # fmt: skip
# PERMISSION_DENIED that is the domain's answer to an allowed caller, not an authorization refusal.
DOMAIN_REFUSALS = {"EGRESS_DENIED"}  # Forward to an upstream the organisation's policy does not allow
# Answers whose content is scoped in the handler's SQL rather than refused: a worker of another
# agent (or organisation) gets an empty answer, which is its refusal.
EMPTY_IS_REFUSAL = {
    "ClaimRun": lambda r: not r.HasField("run"),
    "ListRuns": lambda r: len(r.runs) == 0,
    "ClaimPendingQuestion": lambda r: not r.claimed,
    "AnswerQuestion": lambda r: r.outcome == interactions_pb.ANSWER_OUTCOME_NOT_PENDING,
    "DeletePendingQuestion": lambda r: not r.deleted,
}
# Readable by any signed-in caller only where the handler's SQL lets them see it (private A).
VISIBILITY_IN_HANDLER = {"GetOrganization"}


@dataclass
class World:
    stubs: dict[str, Any]
    pool: asyncpg.Pool
    metadata: dict[str, tuple]
    a: str = ""
    b: str = ""
    a1: str = ""
    a2: str = ""
    owner: str = ""
    connection: str = ""
    team: str = ""
    telegram_connection: str = ""
    secret: str = ""
    objects: dict[str, str] = field(default_factory=dict)
    watcher_version: str = ""
    template: str = ""

    def stub(self, service: str) -> Any:
        return self.stubs[service]


@contextlib.asynccontextmanager
async def running_services(direct_url: str, **database: Any) -> AsyncIterator[tuple[dict[str, Any], asyncpg.Pool]]:
    """The four services on the database of ``direct_url`` (reached as the ``database`` settings
    say: through a pooler, say), and a direct connection to it for the test's own reads."""
    settings = Settings(
        **(database or {"database_url": direct_url}),
        internal_token=INTERNAL_TOKEN,
        worker_token_public_keys=PUBLIC_KEYS_SETTING,
        credentials_keys=new_key_list(),
        db_pool_max_size=5,
    )
    stubs: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        identity_pool = await create_pool(settings, "identity", application_name="matrix-identity")
        # Only identity holds the signing key, as in a deployment.
        identity = await identity_app.create(dataclasses.replace(settings, worker_token_signing_key=SIGNING_KEY_SETTING), identity_pool)
        # Revocations as every service learns them (the test refreshes by hand: no timing).
        revocations = RevocationSync(RevokedTokens(max_staleness_seconds=3600), identity.revocations, 3600)
        await revocations.run_once()
        stubs["_revocations"] = revocations
        authenticator = Authenticator(INTERNAL_TOKEN, verifier(), revocations.revoked)
        port, channel = await stack.enter_async_context(serving(identity, identity_pool, authenticator))
        stubs["IdentityService"] = identity_service_pb2_grpc.IdentityServiceStub(channel)
        stubs["AgentService"] = agent_service_pb2_grpc.AgentServiceStub(channel)
        settings = dataclasses.replace(settings, identity_target=f"127.0.0.1:{port}")
        lookups = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=[_Token()]
        )
        stack.push_async_callback(lookups.close)
        memberships = CachedMemberships(remote_fetch(lookups), ttl_seconds=0)  # every call asks identity
        for schema, module in (("interactions", interactions_app), ("secretproxy", secretproxy_app), ("runs", runs_app)):
            pool = await create_pool(settings, schema, application_name=f"matrix-{schema}")
            app = await module.create(settings, pool)
            _, channel = await stack.enter_async_context(serving(app, pool, authenticator, memberships=memberships))
            if schema == "interactions":
                stubs["InteractionService"] = interaction_service_pb2_grpc.InteractionServiceStub(channel)
                stubs["EventService"] = event_service_pb2_grpc.EventServiceStub(channel)
            elif schema == "secretproxy":
                stubs["SecretProxyService"] = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(channel)
            else:
                stubs["RunService"] = run_service_pb2_grpc.RunServiceStub(channel)
        pool = await asyncpg.connect(direct_url)
        try:
            yield stubs, pool
        finally:
            await pool.close()


class _Token(grpc.aio.UnaryUnaryClientInterceptor):
    """The internal token on identity lookups, as a service's channel to identity carries it."""

    async def intercept_unary_unary(self, continuation, details, request):
        details = details._replace(metadata=(*(details.metadata or ()), *OPERATOR))
        return await continuation(details, request)


def acting(user_id: str) -> tuple:
    return (*OPERATOR, ("x-switchboard-user-id", user_id))


async def world_of(stubs: dict[str, Any], pool: asyncpg.Pool, slack_url: str) -> World:
    identity = stubs["IdentityService"]
    w = World(stubs, pool, {})
    owner = await identity.SignUp(identity_pb.SignUpRequest(email="owner@a.example", display_name="Owner A"), metadata=OPERATOR)
    w.a, w.owner = owner.organization.id, owner.user.id
    users = {"owner": owner.user.id}
    for role_name, role in (("admin", resources_pb2.ROLE_ADMIN), ("member", resources_pb2.ROLE_MEMBER)):
        user = (await identity.SignUp(identity_pb.SignUpRequest(email=f"{role_name}@a.example", display_name=role_name), metadata=OPERATOR)).user.id
        await identity.AddMember(identity_pb.AddMemberRequest(organization_id=w.a, user_id=user, role=role), metadata=OPERATOR)
        users[role_name] = user
    other = await identity.SignUp(identity_pb.SignUpRequest(email="owner@b.example", display_name="Owner B"), metadata=OPERATOR)
    w.b = other.organization.id
    agent = lambda org: identity.CreateAgent(identity_pb.CreateAgentRequest(organization_id=org, name="Agent"), metadata=OPERATOR)  # noqa: E731
    w.a1, w.a2, b1 = (await agent(w.a)).agent.id, (await agent(w.a)).agent.id, (await agent(w.b)).agent.id
    token = lambda agent_id: identity.IssueWorkerToken(identity_pb.IssueWorkerTokenRequest(agent_id=agent_id), metadata=OPERATOR)  # noqa: E731
    w.metadata = {
        "operator": OPERATOR,
        **{name: acting(user) for name, user in users.items()},
        "other_user": acting(other.user.id),
        "unknown_user": acting(str(uuid.uuid4())),
        "worker_a1": (("authorization", f"Bearer {(await token(w.a1)).token}"),),
        "worker_a2": (("authorization", f"Bearer {(await token(w.a2)).token}"),),
        "worker_b": (("authorization", f"Bearer {(await token(b1)).token}"),),
        "nobody": (),
    }
    interactions = stubs["InteractionService"]
    w.team = "TMATRIX"
    w.connection = (await interactions.RegisterConnection(
        interactions_pb.RegisterConnectionRequest(
            organization_id=w.a, platform=interactions_pb.PLATFORM_SLACK, external_id=w.team, bot_token=SLACK_TOKEN,
            signing_secret=SIGNING_SECRET, api_base_url=slack_url,
        ), metadata=OPERATOR,
    )).connection.id  # fmt: skip
    w.telegram_connection = (await interactions.RegisterConnection(
        interactions_pb.RegisterConnectionRequest(
            organization_id=w.a, platform=interactions_pb.PLATFORM_TELEGRAM, external_id="42", bot_token="42:" + "t" * 30,
            secret_token=TELEGRAM_SECRET, api_base_url=slack_url,
        ), metadata=OPERATOR,
    )).connection.id  # fmt: skip
    w.secret = (await stubs["SecretProxyService"].PutSecret(proxy_pb.PutSecretRequest(organization_id=w.a, name="KEY", value="v"), metadata=OPERATOR)).secret_id
    agents = stubs["AgentService"]
    for kind, call, request in (
        ("entity_type", agents.CreateEntityType, agents_pb.CreateEntityTypeRequest),
        ("relationship_type", agents.CreateRelationshipType, agents_pb.CreateRelationshipTypeRequest),
    ):
        reply = await call(request(organization_id=w.a, agent_id=w.a1, slug=kind, name=kind, schema_json="{}"), metadata=OPERATOR)
        w.objects[kind] = getattr(reply, kind).id
    watcher = await agents.CreateWatcher(
        agents_pb.CreateWatcherRequest(organization_id=w.a, agent_id=w.a1, slug="watcher", name="Watcher", prompt="watch", schema_json="{}"), metadata=OPERATOR
    )
    w.objects["watcher"] = watcher.watcher.id
    versions = await agents.ListWatcherVersions(agents_pb.ListWatcherVersionsRequest(watcher_id=watcher.watcher.id), metadata=OPERATOR)
    w.watcher_version = versions.watcher_versions[0].id
    classifier = await agents.CreateEventClassifier(
        agents_pb.CreateEventClassifierRequest(organization_id=w.a, agent_id=w.a1, slug="classifier", name="Classifier", definition_json="{}"),
        metadata=OPERATOR,
    )
    w.objects["event_classifier"] = classifier.event_classifier.id
    # A template: an agent of a public organisation (of B's owner), installable into A.
    public = await identity.CreateOrganization(
        identity_pb.CreateOrganizationRequest(name="Templates", visibility=resources_pb2.VISIBILITY_PUBLIC), metadata=acting(other.user.id)
    )
    w.template = (await agent(public.organization.id)).agent.id
    return w


# -- one request per RPC (a builder may make what the call consumes, as the operator) -------------


def unique() -> str:
    return uuid.uuid4().hex[:10]


async def running_run(w: World) -> dict[str, Any]:
    run_id = str(uuid.uuid4())
    await w.pool.execute(
        """INSERT INTO runs.runs (id, organization_id, agent_id, lane, status, attempt, claimed_by, claimed_at, last_heartbeat_at)
           VALUES ($1, $2, $3, 'action', 'running', 1, 'w', now(), now())""",
        run_id, w.a, w.a1,
    )  # fmt: skip
    return dict(run_id=run_id, worker_id="w", attempt=1)


async def pending_run(w: World) -> str:
    reply = await w.stub("RunService").EnqueueRun(
        runs_pb.EnqueueRunRequest(organization_id=w.a, lane=runs_pb.LANE_ACTION, agent_id=w.a1, priority=1000), metadata=OPERATOR
    )
    return reply.run.id


async def question(w: World) -> dict[str, str]:
    reply = await w.stub("InteractionService").CreateQuestion(
        interactions_pb.CreateQuestionRequest(
            organization_id=w.a, connection_id=w.connection, agent_id=w.a1, expected_user_id="U1", channel_id="C1",
            text="Approve?", options=[interactions_pb.QuestionOption(id="yes", label="Yes")], payload_json="{}",
        ), metadata=OPERATOR,
    )  # fmt: skip
    return dict(question_id=reply.question_id, organization_id=w.a, connection_id=w.connection)


async def new_user(w: World, role: int | None = None) -> str:
    user = (await w.stub("IdentityService").SignUp(identity_pb.SignUpRequest(email=f"{unique()}@a.example", display_name="U"), metadata=OPERATOR)).user.id
    if role is not None:
        await w.stub("IdentityService").AddMember(identity_pb.AddMemberRequest(organization_id=w.a, user_id=user, role=role), metadata=OPERATOR)
    return user


async def new_object(w: World, kind: str) -> str:
    agents = w.stub("AgentService")
    common = dict(organization_id=w.a, agent_id=w.a1, slug=f"x_{unique()}", name="X")
    if kind == "watcher":
        return (await agents.CreateWatcher(agents_pb.CreateWatcherRequest(**common, prompt="p", schema_json="{}"), metadata=OPERATOR)).watcher.id
    if kind == "event_classifier":
        return (await agents.CreateEventClassifier(agents_pb.CreateEventClassifierRequest(**common, definition_json="{}"), metadata=OPERATOR)).event_classifier.id
    create = agents.CreateEntityType if kind == "entity_type" else agents.CreateRelationshipType
    request = agents_pb.CreateEntityTypeRequest if kind == "entity_type" else agents_pb.CreateRelationshipTypeRequest
    return getattr(await create(request(**common, schema_json="{}"), metadata=OPERATOR), kind).id


def typed(kind: str, field: str, verb: str) -> Callable[[World], Awaitable[Any]]:
    message = {"entity_type": "EntityType", "relationship_type": "RelationshipType", "watcher": "Watcher", "event_classifier": "EventClassifier"}[kind]
    request = getattr(agents_pb, f"{verb}{message}Request")

    async def build(w: World) -> Any:
        object_id = await new_object(w, kind) if verb == "Archive" else w.objects[kind]
        extra = {"name": "Renamed"} if verb == "Update" else {}
        return request(**{field: object_id}, **extra)

    return build


def created(kind: str) -> Callable[[World], Awaitable[Any]]:
    async def build(w: World) -> Any:
        common = dict(organization_id=w.a, agent_id=w.a1, slug=f"c_{unique()}", name="C")
        if kind == "watcher":
            return agents_pb.CreateWatcherRequest(**common, prompt="p", schema_json="{}")
        if kind == "event_classifier":
            return agents_pb.CreateEventClassifierRequest(**common, definition_json="{}")
        request = agents_pb.CreateEntityTypeRequest if kind == "entity_type" else agents_pb.CreateRelationshipTypeRequest
        return request(**common, schema_json="{}")

    return build


def const(make: Callable[[World], Any]) -> Callable[[World], Awaitable[Any]]:
    async def build(w: World) -> Any:
        return make(w)

    return build


async def slack_verification(w: World) -> interactions_pb.VerifySlackSignatureRequest:
    body = b"payload=%7B%7D"
    headers = slack_signed_headers(SIGNING_SECRET, body)
    return interactions_pb.VerifySlackSignatureRequest(
        team_id=w.team, timestamp=headers["X-Slack-Request-Timestamp"], signature=headers["X-Slack-Signature"], body=body
    )


async def uninstall(w: World) -> agents_pb.UninstallAgentRequest:
    agent = await w.stub("IdentityService").CreateAgent(identity_pb.CreateAgentRequest(organization_id=w.a, name="Spare"), metadata=OPERATOR)
    return agents_pb.UninstallAgentRequest(agent_id=agent.agent.id)


async def revoke(w: World) -> identity_pb.RevokeWorkerTokenRequest:
    issued = await w.stub("IdentityService").IssueWorkerToken(identity_pb.IssueWorkerTokenRequest(agent_id=w.a1), metadata=OPERATOR)
    return identity_pb.RevokeWorkerTokenRequest(token_id=issued.token_id)


async def new_connection(w: World) -> interactions_pb.DeleteConnectionRequest:
    reply = await w.stub("InteractionService").RegisterConnection(
        interactions_pb.RegisterConnectionRequest(
            organization_id=w.a, platform=interactions_pb.PLATFORM_SLACK, external_id=f"T{unique()}", bot_token=SLACK_TOKEN,
            signing_secret=SIGNING_SECRET,
        ), metadata=OPERATOR,
    )  # fmt: skip
    return interactions_pb.DeleteConnectionRequest(connection_id=reply.connection.id)


async def new_secret(w: World) -> proxy_pb.DeleteSecretRequest:
    reply = await w.stub("SecretProxyService").PutSecret(proxy_pb.PutSecretRequest(organization_id=w.a, name=f"S{unique()}", value="v"), metadata=OPERATOR)
    return proxy_pb.DeleteSecretRequest(secret_id=reply.secret_id)


async def new_credential(w: World) -> proxy_pb.DeleteProviderCredentialRequest:
    reply = await w.stub("SecretProxyService").PutProviderCredential(
        proxy_pb.PutProviderCredentialRequest(organization_id=w.a, provider="openai", value="sk-x"), metadata=OPERATOR
    )
    return proxy_pb.DeleteProviderCredentialRequest(provider_credential_id=reply.provider_credential.id)


async def with_question(w: World, make: Callable[[dict[str, str]], Any]) -> Any:
    return make(await question(w))


BUILDERS: dict[str, Callable[[World], Awaitable[Any]]] = {
    # identity
    "SignUp": const(lambda w: identity_pb.SignUpRequest(email=f"{unique()}@new.example", display_name="New")),
    "CreateOrganization": const(lambda w: identity_pb.CreateOrganizationRequest(name=f"Org {unique()}")),
    "GetOrganization": const(lambda w: identity_pb.GetOrganizationRequest(organization_id=w.a)),
    "AddMember": lambda w: _add_member(w),
    "RemoveMember": lambda w: _member_request(w, identity_pb.RemoveMemberRequest),
    "ChangeRole": lambda w: _member_request(w, identity_pb.ChangeRoleRequest, role=resources_pb2.ROLE_ADMIN),
    "ListMembers": const(lambda w: identity_pb.ListMembersRequest(organization_id=w.a)),
    "GetMembership": const(lambda w: identity_pb.GetMembershipRequest(organization_id=w.a, user_id=w.owner)),
    "ProvisionSupportBot": const(lambda w: identity_pb.ProvisionSupportBotRequest(organization_id=w.a)),
    "GetSupportBot": const(lambda w: identity_pb.GetSupportBotRequest(organization_id=w.a)),
    "CreateAgent": const(lambda w: identity_pb.CreateAgentRequest(organization_id=w.a, name="Another")),
    "GetAgent": const(lambda w: identity_pb.GetAgentRequest(agent_id=w.a1)),
    "ListAgents": const(lambda w: identity_pb.ListAgentsRequest(organization_id=w.a)),
    "ResolveAgentOrganization": const(lambda w: identity_pb.ResolveAgentOrganizationRequest(agent_id=w.a1)),
    "IssueWorkerToken": const(lambda w: identity_pb.IssueWorkerTokenRequest(agent_id=w.a1)),
    "RevokeWorkerToken": revoke,
    "ListRevokedWorkerTokens": const(lambda w: identity_pb.ListRevokedWorkerTokensRequest()),
    # agents and templates
    **{f"Create{m}": created(k) for k, m in (("entity_type", "EntityType"), ("relationship_type", "RelationshipType"), ("watcher", "Watcher"), ("event_classifier", "EventClassifier"))},
    **{
        f"{verb}{m}": typed(k, f"{k}_id", verb)
        for k, m in (("entity_type", "EntityType"), ("relationship_type", "RelationshipType"), ("watcher", "Watcher"), ("event_classifier", "EventClassifier"))
        for verb in ("Get", "Update", "Archive")
    },
    "ListEntityTypes": const(lambda w: agents_pb.ListEntityTypesRequest(organization_id=w.a)),
    "ListRelationshipTypes": const(lambda w: agents_pb.ListRelationshipTypesRequest(organization_id=w.a)),
    "ListWatchers": const(lambda w: agents_pb.ListWatchersRequest(organization_id=w.a)),
    "ListEventClassifiers": const(lambda w: agents_pb.ListEventClassifiersRequest(organization_id=w.a)),
    "ListWatcherVersions": const(lambda w: agents_pb.ListWatcherVersionsRequest(watcher_id=w.objects["watcher"])),
    "GetWatcherVersion": const(lambda w: agents_pb.GetWatcherVersionRequest(watcher_version_id=w.watcher_version)),
    "InstallAgentFromTemplate": const(lambda w: agents_pb.InstallAgentFromTemplateRequest(template_agent_id=w.template, target_organization_id=w.a)),
    "ResyncInstalledAgent": const(lambda w: agents_pb.ResyncInstalledAgentRequest(agent_id=w.a1)),
    "UninstallAgent": uninstall,
    # interactions
    "RegisterConnection": const(lambda w: interactions_pb.RegisterConnectionRequest(
        organization_id=w.a, platform=interactions_pb.PLATFORM_SLACK, external_id=f"T{unique()}", bot_token=SLACK_TOKEN, signing_secret=SIGNING_SECRET,
    )),  # fmt: skip
    "GetConnection": const(lambda w: interactions_pb.GetConnectionRequest(connection_id=w.connection)),
    "ListConnections": const(lambda w: interactions_pb.ListConnectionsRequest(organization_id=w.a)),
    "DeleteConnection": new_connection,
    "VerifySlackSignature": slack_verification,
    "VerifyTelegramSecretToken": const(lambda w: interactions_pb.VerifyTelegramSecretTokenRequest(connection_id=w.telegram_connection, secret_token=TELEGRAM_SECRET)),
    "CreateQuestion": const(lambda w: interactions_pb.CreateQuestionRequest(
        organization_id=w.a, connection_id=w.connection, agent_id=w.a1, expected_user_id="U1", channel_id="C1",
        text="Approve?", options=[interactions_pb.QuestionOption(id="yes", label="Yes")], payload_json="{}",
    )),  # fmt: skip
    "ClaimPendingQuestion": lambda w: with_question(w, lambda q: interactions_pb.ClaimPendingQuestionRequest(**q, user_id="U1")),
    "AnswerQuestion": lambda w: with_question(w, lambda q: interactions_pb.AnswerQuestionRequest(**q, user_id="U1", option_id="yes")),
    "StorePendingQuestion": lambda w: with_question(w, lambda q: interactions_pb.StorePendingQuestionRequest(
        **q, agent_id=w.a1, expected_user_id="U1", channel_id="C1", payload_json='{"transfer": 1000000}',
    )),  # fmt: skip
    "DeletePendingQuestion": lambda w: with_question(w, lambda q: interactions_pb.DeletePendingQuestionRequest(**q, expected_user_id="U1")),
    "SweepStalePendingInteractions": const(lambda w: interactions_pb.SweepStalePendingInteractionsRequest(max_age=Duration(seconds=86400))),
    "Publish": const(lambda w: events_pb.PublishRequest(stream=f"agents/{w.a1}", organization_id=w.a, type="question.answered", payload_json="{}")),
    "PublishBatch": const(lambda w: events_pb.PublishBatchRequest(
        stream=f"agents/{w.a1}", organization_id=w.a, events=[events_pb.EventInput(type="t", payload_json="{}")]
    )),  # fmt: skip
    "Subscribe": const(lambda w: events_pb.SubscribeRequest(stream=f"agents/{w.a1}", organization_id=w.a)),
    # secret proxy
    "PutSecret": const(lambda w: proxy_pb.PutSecretRequest(organization_id=w.a, name=f"S{unique()}", value="v")),
    "RotateSecret": const(lambda w: proxy_pb.RotateSecretRequest(secret_id=w.secret, value="rotated")),
    "DeleteSecret": new_secret,
    "ListSecrets": const(lambda w: proxy_pb.ListSecretsRequest(organization_id=w.a)),
    "PutProviderCredential": const(lambda w: proxy_pb.PutProviderCredentialRequest(organization_id=w.a, provider="openai", value="sk-new")),
    "ListProviderCredentials": const(lambda w: proxy_pb.ListProviderCredentialsRequest(organization_id=w.a)),
    "DeleteProviderCredential": new_credential,
    "SetEgressPolicy": const(lambda w: proxy_pb.SetEgressPolicyRequest(organization_id=w.a, rules=[])),
    "GetEgressPolicy": const(lambda w: proxy_pb.GetEgressPolicyRequest(organization_id=w.a)),
    "Forward": const(lambda w: proxy_pb.ForwardRequest(head=proxy_pb.ForwardRequestHead(method="GET", upstream="openai", path="/v1/models"))),
    # runs
    "EnqueueRun": const(lambda w: runs_pb.EnqueueRunRequest(organization_id=w.a, lane=runs_pb.LANE_ACTION, agent_id=w.a1)),
    "ClaimRun": lambda w: _claim(w),
    "Heartbeat": lambda w: _fenced(w, runs_pb.HeartbeatRequest),
    "CompleteRun": lambda w: _fenced(w, runs_pb.CompleteRunRequest),
    "FailRun": lambda w: _fenced(w, runs_pb.FailRunRequest, error_message="boom"),
    "CancelRun": lambda w: _with_pending(w, lambda run_id: runs_pb.CancelRunRequest(run_id=run_id)),
    "GetRun": lambda w: _with_pending(w, lambda run_id: runs_pb.GetRunRequest(run_id=run_id)),
    "ListRuns": lambda w: _with_pending(w, lambda run_id: runs_pb.ListRunsRequest(organization_id=w.a)),
    "ReapStaleRuns": const(lambda w: runs_pb.ReapStaleRunsRequest()),
}


async def _add_member(w: World) -> identity_pb.AddMemberRequest:
    return identity_pb.AddMemberRequest(organization_id=w.a, user_id=await new_user(w), role=resources_pb2.ROLE_MEMBER)


async def _member_request(w: World, request: type, **extra: Any) -> Any:
    return request(organization_id=w.a, user_id=await new_user(w, resources_pb2.ROLE_MEMBER), **extra)


async def _claim(w: World) -> runs_pb.ClaimRunRequest:
    await pending_run(w)
    return runs_pb.ClaimRunRequest(worker_id="matrix", lanes=[runs_pb.LANE_ACTION])


async def _fenced(w: World, request: type, **extra: Any) -> Any:
    return request(**await running_run(w), **extra)


async def _with_pending(w: World, make: Callable[[str], Any]) -> Any:
    return make(await pending_run(w))


# -- expectations from the declared policy ---------------------------------------------------------

ROLES = {"owner": Role.OWNER, "admin": Role.ADMIN, "member": Role.MEMBER}


def expected_allowed(rpc: str, policy: Policy, principal: str) -> bool:
    if principal == "nobody":
        return False
    if principal == "operator":
        return policy.operator
    if principal in ROLES:
        return policy.user == SIGNED_IN or (policy.user is not None and ROLES[principal] >= policy.user)
    if principal == "unknown_user":
        return False  # a user that does not exist is nobody's member, and cannot own what it creates
    if principal == "other_user":
        # No role in A: only calls that need no organisation, and never a view of private A.
        return policy.user == SIGNED_IN and policy.target is None and rpc not in VISIBILITY_IN_HANDLER
    if principal == "worker_a1":
        return policy.worker is not None
    if principal == "worker_a2":
        return policy.worker == "organization" and policy.stream is None
    assert principal == "worker_b"
    # B's worker may only make calls that name no organisation: on its own organisation.
    return policy.worker is not None and policy.target is None and rpc not in VISIBILITY_IN_HANDLER | set(EMPTY_IS_REFUSAL) | {
        "Heartbeat", "CompleteRun", "FailRun"}  # fmt: skip


async def call(w: World, service: str, rpc: str, request: Any, metadata: tuple) -> tuple[grpc.StatusCode, str, Any]:
    """Make the call; its code, ErrorInfo reason and response (the first message of a stream)."""
    method = getattr(w.stub(service), rpc)
    try:
        if rpc == "Forward":
            stream = method(metadata=metadata, timeout=10)
            await stream.write(request)
            await stream.done_writing()
            return grpc.StatusCode.OK, "", await stream.read()
        if rpc == "Subscribe":
            stream = method(request, metadata=metadata, timeout=10)
            try:
                return grpc.StatusCode.OK, "", await stream.read()
            finally:
                stream.cancel()
        return grpc.StatusCode.OK, "", await method(request, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code(), reason_of(error), None


def refused(rpc: str, code: grpc.StatusCode, reason: str, response: Any) -> bool:
    if code == grpc.StatusCode.UNAUTHENTICATED and reason in ("TOKEN_MISSING", "NO_ACTING_USER"):
        return True
    if code == grpc.StatusCode.PERMISSION_DENIED and reason not in DOMAIN_REFUSALS:
        return True  # any other PERMISSION_DENIED is a refusal, whichever layer said it
    if code == grpc.StatusCode.NOT_FOUND:
        return True  # a resource of another scope is "not found", as if it were not there
    return code == grpc.StatusCode.OK and rpc in EMPTY_IS_REFUSAL and EMPTY_IS_REFUSAL[rpc](response)


async def digest(pool: asyncpg.Connection) -> dict[str, str]:
    """A fingerprint of every table of every service; the secret proxy's audit trail aside, which
    its writer fills in batches, a moment after the (allowed) Forward calls it records."""
    tables = await pool.fetch(
        """SELECT schemaname, tablename FROM pg_tables
           WHERE schemaname IN ('identity', 'interactions', 'secretproxy', 'runs')
             AND tablename <> 'audit_records'"""
    )
    found = {}
    for t in tables:
        name = f'"{t["schemaname"]}"."{t["tablename"]}"'
        found[name] = await pool.fetchval(f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {name} x")
    return found


@pytest.mark.database_layouts("pgbouncer")
async def test_every_rpc_answers_each_principal_exactly_as_its_policy_says(migrated_database, database_layout):
    fake = FakeSlack(SLACK_TOKEN)
    database = database_layout.settings_for(migrated_database)
    async with serve_asgi(fake.app()) as slack_url, running_services(migrated_database, **database) as (stubs, pool):
        w = await world_of(stubs, pool, slack_url + "/api")
        # An event on a1's stream, so that an accepted Subscribe answers at once.
        await stubs["EventService"].Publish(
            events_pb.PublishRequest(stream=f"agents/{w.a1}", organization_id=w.a, type="t", payload_json="{}"), metadata=OPERATOR
        )
        mismatches, calls = [], 0
        for service, servicer in servicers():
            short = service.rsplit(".", 1)[1]
            for method in _methods(service):
                policy = policy_of(getattr(servicer, method))
                assert policy is not None, method
                assert method in BUILDERS, f"no request for {method} in the matrix"
                for principal in PRINCIPALS:
                    request = await BUILDERS[method](w)
                    before = await digest(pool)
                    code, reason, response = await call(w, short, method, request, w.metadata[principal])
                    calls += 1
                    was_refused = refused(method, code, reason, response)
                    allowed = expected_allowed(method, policy, principal)
                    if was_refused == allowed:
                        mismatches.append(f"{method} by {principal}: {code.name} {reason} (policy: {policy.describe()})")
                    elif was_refused and (after := await digest(pool)) != before:
                        changed = sorted(name for name in after if after[name] != before.get(name))
                        mismatches.append(f"{method} by {principal}: refused ({code.name} {reason}) but changed {changed}")
                    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                        mismatches.append(f"{method} by {principal}: {code.name}")
        assert mismatches == [], "\n".join(mismatches)
        assert calls == len(BUILDERS) * len(PRINCIPALS) == sum(1 for _ in _all_methods()) * len(PRINCIPALS)


def _methods(service: str) -> list[str]:
    from google.protobuf import descriptor_pool

    return [m.name for m in descriptor_pool.Default().FindServiceByName(service).methods]


def _all_methods() -> list[str]:
    return [m for service, _ in servicers() for m in _methods(service)]


@pytest.fixture(autouse=True)
def _no_slow_identity_cache():
    """The matrix asks identity on every call (ttl 0); nothing to set up, said here for readers."""
    yield


async def test_an_owner_manages_their_own_organisation_and_nothing_else(migrated_database):
    """The contract's promise: owners and admins manage their organisation's connections, secrets
    and egress policy as acting users; the same calls for another organisation are refused, and a
    member of their organisation may read but not manage."""
    async with running_services(migrated_database) as (stubs, pool):
        identity, interactions, proxy = stubs["IdentityService"], stubs["InteractionService"], stubs["SecretProxyService"]
        a = await identity.SignUp(identity_pb.SignUpRequest(email="ann@a.example", display_name="Ann"), metadata=OPERATOR)
        b = await identity.SignUp(identity_pb.SignUpRequest(email="bob@b.example", display_name="Bob"), metadata=OPERATOR)
        member = (await identity.SignUp(identity_pb.SignUpRequest(email="meg@a.example", display_name="Meg"), metadata=OPERATOR)).user.id
        await identity.AddMember(
            identity_pb.AddMemberRequest(organization_id=a.organization.id, user_id=member, role=resources_pb2.ROLE_MEMBER),
            metadata=acting(a.user.id),
        )
        ann, meg = acting(a.user.id), acting(member)

        def register(org: str) -> interactions_pb.RegisterConnectionRequest:
            return interactions_pb.RegisterConnectionRequest(
                organization_id=org, platform=interactions_pb.PLATFORM_SLACK, external_id=f"T{org[:8]}", bot_token=SLACK_TOKEN,
                signing_secret=SIGNING_SECRET,
            )  # fmt: skip

        connection = (await interactions.RegisterConnection(register(a.organization.id), metadata=ann)).connection
        assert connection.organization_id == a.organization.id
        # The bot token goes to api_base_url, and what answers there is echoed: not for tenants to
        # point at internal addresses (review finding: SSRF). The operator may (tests, gateways).
        internal = register(a.organization.id)
        internal.api_base_url = "http://127.0.0.1:9/admin"
        with pytest.raises(grpc.aio.AioRpcError) as ssrf:
            await interactions.RegisterConnection(internal, metadata=ann)
        assert (ssrf.value.code(), reason_of(ssrf.value)) == (grpc.StatusCode.PERMISSION_DENIED, "API_BASE_URL_OPERATOR_ONLY")
        assert (await interactions.GetConnection(interactions_pb.GetConnectionRequest(connection_id=connection.id), metadata=ann)).connection.api_base_url == "https://slack.com/api"
        secret = await proxy.PutSecret(proxy_pb.PutSecretRequest(organization_id=a.organization.id, name="KEY", value="v1"), metadata=ann)
        await proxy.RotateSecret(proxy_pb.RotateSecretRequest(secret_id=secret.secret_id, value="v2"), metadata=ann)
        listed = await proxy.ListSecrets(proxy_pb.ListSecretsRequest(organization_id=a.organization.id), metadata=ann)
        assert [s.id for s in listed.secrets] == [secret.secret_id]
        rules = [proxy_pb.EgressRule(action=proxy_pb.EGRESS_ACTION_ALLOW, host_pattern="api.openai.com")]
        await proxy.SetEgressPolicy(proxy_pb.SetEgressPolicyRequest(organization_id=a.organization.id, rules=rules), metadata=ann)
        # The member reads, but does not manage.
        assert (await interactions.ListConnections(interactions_pb.ListConnectionsRequest(organization_id=a.organization.id), metadata=meg)).connections
        assert (await proxy.GetEgressPolicy(proxy_pb.GetEgressPolicyRequest(organization_id=a.organization.id), metadata=meg)).policy.rules
        before = await digest(pool)
        for refused_call in (
            interactions.RegisterConnection(register(b.organization.id), metadata=ann),
            proxy.PutSecret(proxy_pb.PutSecretRequest(organization_id=b.organization.id, name="KEY", value="x"), metadata=ann),
            proxy.SetEgressPolicy(proxy_pb.SetEgressPolicyRequest(organization_id=b.organization.id, rules=rules), metadata=ann),
            proxy.ListSecrets(proxy_pb.ListSecretsRequest(organization_id=b.organization.id), metadata=ann),
            # An organisation that does not exist is refused just the same: nothing is revealed.
            proxy.ListSecrets(proxy_pb.ListSecretsRequest(organization_id=str(uuid.uuid4())), metadata=ann),
            interactions.RegisterConnection(register(a.organization.id), metadata=meg),
            proxy.PutSecret(proxy_pb.PutSecretRequest(organization_id=a.organization.id, name="K2", value="x"), metadata=meg),
            proxy.ListSecrets(proxy_pb.ListSecretsRequest(organization_id=a.organization.id), metadata=meg),
            proxy.SetEgressPolicy(proxy_pb.SetEgressPolicyRequest(organization_id=a.organization.id, rules=[]), metadata=meg),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await refused_call
            assert (refused.value.code(), reason_of(refused.value)) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_PERMITTED")
        # Bob cannot reach Ann's secret or connection by id either: they do not exist for him.
        bob = acting(b.user.id)
        for hidden in (
            proxy.DeleteSecret(proxy_pb.DeleteSecretRequest(secret_id=secret.secret_id), metadata=bob),
            interactions.DeleteConnection(interactions_pb.DeleteConnectionRequest(connection_id=connection.id), metadata=bob),
            interactions.GetConnection(interactions_pb.GetConnectionRequest(connection_id=connection.id), metadata=bob),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await hidden
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert await digest(pool) == before
        # Removed from the organisation, the member loses even the reads (the cache here is off).
        await identity.RemoveMember(identity_pb.RemoveMemberRequest(organization_id=a.organization.id, user_id=member), metadata=ann)
        with pytest.raises(grpc.aio.AioRpcError) as removed:
            await proxy.GetEgressPolicy(proxy_pb.GetEgressPolicyRequest(organization_id=a.organization.id), metadata=meg)
        assert removed.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await proxy.DeleteSecret(proxy_pb.DeleteSecretRequest(secret_id=secret.secret_id), metadata=ann)


async def test_an_acting_user_has_no_operator_reach_into_another_organisation(migrated_database):
    """Issue 13's first reproducer: the owner of A (or a user id that exists nowhere), acting
    through an internal caller, reads nothing of B's connections and neither publishes into nor
    subscribes to B's streams."""
    fake = FakeSlack(SLACK_TOKEN)
    async with serve_asgi(fake.app()) as slack_url, running_services(migrated_database) as (stubs, pool):
        identity, interactions, events = stubs["IdentityService"], stubs["InteractionService"], stubs["EventService"]
        a = await identity.SignUp(identity_pb.SignUpRequest(email="ann@a.example", display_name="Ann"), metadata=OPERATOR)
        b = await identity.SignUp(identity_pb.SignUpRequest(email="bob@b.example", display_name="Bob"), metadata=OPERATOR)
        b_agent = (await identity.CreateAgent(identity_pb.CreateAgentRequest(organization_id=b.organization.id, name="B"), metadata=OPERATOR)).agent.id
        connection = (await interactions.RegisterConnection(
            interactions_pb.RegisterConnectionRequest(
                organization_id=b.organization.id, platform=interactions_pb.PLATFORM_SLACK, external_id="TB", bot_token=SLACK_TOKEN,
                signing_secret=SIGNING_SECRET, api_base_url=slack_url,
            ), metadata=OPERATOR,
        )).connection  # fmt: skip
        stream = f"agents/{b_agent}"
        before = await digest(pool)
        for user in (a.user.id, str(uuid.uuid4())):
            as_user = acting(user)
            for call in (
                interactions.ListConnections(interactions_pb.ListConnectionsRequest(organization_id=b.organization.id), metadata=as_user),
                events.Publish(
                    events_pb.PublishRequest(stream=stream, organization_id=b.organization.id, type="question.answered", payload_json='{"option_id": "yes"}'),
                    metadata=as_user,
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await interactions.GetConnection(interactions_pb.GetConnectionRequest(connection_id=connection.id), metadata=as_user)
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND and "TB" not in (hidden.value.details() or "")
            subscription = events.Subscribe(events_pb.SubscribeRequest(stream=stream, organization_id=b.organization.id), metadata=as_user)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await subscription.read()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert await digest(pool) == before


async def test_a_revoked_token_or_a_removed_member_loses_an_open_stream(migrated_database):
    """Review finding: authorization was checked when a stream opened, never again; a revoked
    worker token and a removed member kept receiving events."""
    async with running_services(migrated_database) as (stubs, pool):
        identity, events = stubs["IdentityService"], stubs["EventService"]
        owner = await identity.SignUp(identity_pb.SignUpRequest(email="ann@a.example", display_name="Ann"), metadata=OPERATOR)
        org = owner.organization.id
        member = (await identity.SignUp(identity_pb.SignUpRequest(email="meg@a.example", display_name="Meg"), metadata=OPERATOR)).user.id
        await identity.AddMember(identity_pb.AddMemberRequest(organization_id=org, user_id=member, role=resources_pb2.ROLE_MEMBER), metadata=OPERATOR)
        agent = (await identity.CreateAgent(identity_pb.CreateAgentRequest(organization_id=org, name="A"), metadata=OPERATOR)).agent.id
        issued = await identity.IssueWorkerToken(identity_pb.IssueWorkerTokenRequest(agent_id=agent), metadata=OPERATOR)
        worker = (("authorization", f"Bearer {issued.token}"),)
        stream = f"agents/{agent}"

        async def publish(n: int) -> None:
            await events.Publish(events_pb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json=f'{{"n": {n}}}'), metadata=OPERATOR)

        watchers = {
            "worker": events.Subscribe(events_pb.SubscribeRequest(stream=stream, organization_id=org), metadata=worker),
            "member": events.Subscribe(events_pb.SubscribeRequest(stream=stream, organization_id=org), metadata=acting(member)),
        }
        await publish(1)
        for call in watchers.values():
            assert (await call.read()).event.sequence == 1
        await identity.RevokeWorkerToken(identity_pb.RevokeWorkerTokenRequest(token_id=issued.token_id), metadata=OPERATOR)
        await stubs["_revocations"].run_once()
        await identity.RemoveMember(identity_pb.RemoveMemberRequest(organization_id=org, user_id=member), metadata=OPERATOR)
        await publish(2)
        for name, code in (("worker", grpc.StatusCode.UNAUTHENTICATED), ("member", grpc.StatusCode.PERMISSION_DENIED)):
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(watchers[name].read(), 10)
            assert ended.value.code() == code, name

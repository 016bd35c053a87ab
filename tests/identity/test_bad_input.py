"""Hostile input to identity: NUL in an address, deep schema JSON, forged page tokens on every List
RPC of IdentityService and AgentService."""

from __future__ import annotations

import uuid
from datetime import datetime

import grpc
import pytest

from switchboard.shared.errors import field_violations
from switchboard.identity.v1 import agent_service_pb2 as apb
from switchboard.identity.v1 import agent_service_pb2_grpc
from switchboard.identity.v1 import identity_service_pb2 as pb
from tests.identity.conftest import OPERATOR, as_user
from tests.support.page_tokens import assert_hostile_tokens_refused

DEEP_OBJECT = '{"a":' * 4000 + "1" + "}" * 4000


async def test_a_nul_or_a_control_character_in_an_email_is_a_field_violation(identity):
    for email in ("zoe\x00@example.com", "zoe@exa\x00mple.com", "zoe@example.com\x7f"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await identity.stub.SignUp(pb.SignUpRequest(email=email, display_name="Zoe"), metadata=OPERATOR)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in field_violations(caught.value)] == ["email"]
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.users") == 0


async def test_deep_schema_json_is_invalid_argument_on_every_schema_object(identity):
    owner = await identity.sign_up("Owner")
    org, me = owner.organization.id, as_user(owner.user.id)
    agent = (await identity.stub.CreateAgent(pb.CreateAgentRequest(organization_id=org, name="Helper"), metadata=me)).agent.id
    agents = agent_service_pb2_grpc.AgentServiceStub(identity.channel)
    calls = [
        (agents.CreateEntityType(apb.CreateEntityTypeRequest(organization_id=org, agent_id=agent, slug="e", name="E", schema_json=DEEP_OBJECT), metadata=me), "schema_json"),
        (agents.CreateRelationshipType(apb.CreateRelationshipTypeRequest(organization_id=org, agent_id=agent, slug="r", name="R", schema_json=DEEP_OBJECT), metadata=me), "schema_json"),
        (agents.CreateWatcher(apb.CreateWatcherRequest(organization_id=org, agent_id=agent, slug="w", name="W", prompt="p", schema_json=DEEP_OBJECT), metadata=me), "schema_json"),
        (agents.CreateEventClassifier(apb.CreateEventClassifierRequest(organization_id=org, agent_id=agent, slug="c", name="C", definition_json=DEEP_OBJECT), metadata=me), "definition_json"),
    ]
    for call, field in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert field in [v.field for v in field_violations(caught.value)]


async def test_forged_page_tokens_are_invalid_argument_on_every_list_rpc(identity):
    owner = await identity.sign_up("Owner")
    org, me = owner.organization.id, as_user(owner.user.id)
    agent = (await identity.stub.CreateAgent(pb.CreateAgentRequest(organization_id=org, name="Helper"), metadata=me)).agent.id
    agents = agent_service_pb2_grpc.AgentServiceStub(identity.channel)
    watcher = await agents.CreateWatcher(
        apb.CreateWatcherRequest(organization_id=org, agent_id=agent, slug="w", name="W", prompt="p", schema_json="{}"), metadata=me
    )
    listings = [
        (identity.stub.ListMembers, pb.ListMembersRequest(organization_id=org), (datetime, uuid.UUID), OPERATOR),
        (identity.stub.ListAgents, pb.ListAgentsRequest(organization_id=org), (datetime, uuid.UUID), me),
        (identity.stub.ListRevokedWorkerTokens, pb.ListRevokedWorkerTokensRequest(), (datetime, uuid.UUID), OPERATOR),
        (agents.ListEntityTypes, apb.ListEntityTypesRequest(organization_id=org), (str,), me),
        (agents.ListRelationshipTypes, apb.ListRelationshipTypesRequest(organization_id=org), (str,), me),
        (agents.ListWatchers, apb.ListWatchersRequest(organization_id=org), (str,), me),
        (agents.ListEventClassifiers, apb.ListEventClassifiersRequest(organization_id=org), (str,), me),
        (agents.ListWatcherVersions, apb.ListWatcherVersionsRequest(watcher_id=watcher.watcher.id), (int,), me),
    ]
    for method, request, kinds, metadata in listings:
        await assert_hostile_tokens_refused(method, request, kinds, metadata)


async def test_a_member_listing_token_is_refused_for_another_organisation(identity):
    first = await identity.sign_up("Owner")
    org = first.organization.id
    for _ in range(3):
        await identity.member(org)
    page = await identity.stub.ListMembers(pb.ListMembersRequest(organization_id=org, page_size=2), metadata=OPERATOR)
    other = (await identity.sign_up("Other")).organization.id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await identity.stub.ListMembers(pb.ListMembersRequest(organization_id=other, page_token=page.next_page_token), metadata=OPERATOR)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(caught.value)] == ["page_token"]

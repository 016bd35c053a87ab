"""Agents and worker tokens: issued for an agent, verified locally, revoked within a refresh."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from switchboard.identity.v1 import identity_service_pb2 as pb
from tests.identity.conftest import OPERATOR, as_user, as_worker
from tests.identity.test_organizations import expect
from tests.support.worker_keys import verifier


async def agent_of(identity, owner_id: str, organization_id: str) -> str:
    reply = await identity.stub.CreateAgent(pb.CreateAgentRequest(organization_id=organization_id, name="Helper"), metadata=as_user(owner_id))
    return reply.agent.id


async def test_a_worker_token_carries_the_agents_organisation_and_verifies_locally(identity):
    owner = await identity.sign_up()
    agent = await agent_of(identity, owner.user.id, owner.organization.id)
    connection = str(uuid.uuid4())
    issued = await identity.stub.IssueWorkerToken(
        pb.IssueWorkerTokenRequest(agent_id=agent, connection_id=connection, ttl_seconds=600), metadata=OPERATOR
    )
    principal = verifier().verify(issued.token)
    assert (principal.organization_id, principal.agent_id, principal.connection_id) == (owner.organization.id, agent, connection)
    assert principal.token_id == issued.token_id
    expires = issued.expires_at.ToDatetime(tzinfo=UTC)
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)
    # The worker reads its own organisation and agent, and nothing of another organisation.
    org = await identity.stub.GetOrganization(pb.GetOrganizationRequest(organization_id=owner.organization.id), metadata=as_worker(issued.token))
    assert org.organization.id == owner.organization.id
    other = await identity.sign_up("Other")
    await expect(grpc.StatusCode.NOT_FOUND, identity.stub.GetOrganization(pb.GetOrganizationRequest(organization_id=other.organization.id), metadata=as_worker(issued.token)))
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        identity.stub.AddMember(pb.AddMemberRequest(organization_id=owner.organization.id, user_id=other.user.id, role=1), metadata=as_worker(issued.token)),
    )


async def test_owners_and_admins_issue_their_agents_tokens_and_only_internal_callers_resolve_agents(identity):
    owner = await identity.sign_up()
    agent = await agent_of(identity, owner.user.id, owner.organization.id)
    issued = await identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=agent), metadata=as_user(owner.user.id))
    assert issued.token_id
    member = await identity.member(owner.organization.id)
    stranger = (await identity.sign_up("Stranger")).user.id
    await expect(grpc.StatusCode.NOT_FOUND, identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=agent), metadata=as_user(member)))
    await expect(grpc.StatusCode.NOT_FOUND, identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=agent), metadata=as_user(stranger)))
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        identity.stub.ResolveAgentOrganization(pb.ResolveAgentOrganizationRequest(agent_id=agent), metadata=as_user(owner.user.id)),
    )
    resolved = await identity.stub.ResolveAgentOrganization(pb.ResolveAgentOrganizationRequest(agent_id=agent), metadata=OPERATOR)
    assert resolved.organization_id == owner.organization.id
    await expect(grpc.StatusCode.NOT_FOUND, identity.stub.ResolveAgentOrganization(pb.ResolveAgentOrganizationRequest(agent_id=str(uuid.uuid4())), metadata=OPERATOR))
    await expect(grpc.StatusCode.NOT_FOUND, identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=str(uuid.uuid4())), metadata=OPERATOR))


@pytest.mark.parametrize("ttl", [-1, 86401])
async def test_token_lifetimes_are_bounded(identity, ttl):
    owner = await identity.sign_up()
    agent = await agent_of(identity, owner.user.id, owner.organization.id)
    await expect(grpc.StatusCode.INVALID_ARGUMENT, identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=agent, ttl_seconds=ttl), metadata=OPERATOR))


async def test_a_revoked_token_is_refused_after_the_next_refresh(identity):
    owner = await identity.sign_up()
    agent = await agent_of(identity, owner.user.id, owner.organization.id)
    issued = await identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=agent), metadata=OPERATOR)
    get_org = pb.GetOrganizationRequest(organization_id=owner.organization.id)
    await identity.stub.GetOrganization(get_org, metadata=as_worker(issued.token))

    revoked = await identity.stub.RevokeWorkerToken(pb.RevokeWorkerTokenRequest(token_id=issued.token_id), metadata=as_user(owner.user.id))
    assert revoked.revoked and revoked.HasField("revoked_at")
    again = await identity.stub.RevokeWorkerToken(pb.RevokeWorkerTokenRequest(token_id=issued.token_id), metadata=OPERATOR)
    assert not again.revoked and again.revoked_at == revoked.revoked_at

    listed = await identity.stub.ListRevokedWorkerTokens(pb.ListRevokedWorkerTokensRequest(), metadata=OPERATOR)
    assert [t.token_id for t in listed.revoked_tokens] == [issued.token_id]

    assert await identity.revocations.run_once()  # what each service's loop does every few seconds
    error = await expect(grpc.StatusCode.UNAUTHENTICATED, identity.stub.GetOrganization(get_org, metadata=as_worker(issued.token)))
    assert "revoked" in error.details()


async def test_another_organisations_token_cannot_be_revoked(identity):
    owner = await identity.sign_up()
    agent = await agent_of(identity, owner.user.id, owner.organization.id)
    issued = await identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=agent), metadata=OPERATOR)
    stranger = (await identity.sign_up("Stranger")).user.id
    await expect(grpc.StatusCode.NOT_FOUND, identity.stub.RevokeWorkerToken(pb.RevokeWorkerTokenRequest(token_id=issued.token_id), metadata=as_user(stranger)))
    await expect(grpc.StatusCode.PERMISSION_DENIED, identity.stub.RevokeWorkerToken(pb.RevokeWorkerTokenRequest(token_id=issued.token_id), metadata=as_worker(issued.token)))
    await expect(grpc.StatusCode.PERMISSION_DENIED, identity.stub.ListRevokedWorkerTokens(pb.ListRevokedWorkerTokensRequest(), metadata=as_user(owner.user.id)))


async def test_agents_are_listed_to_members_only(identity):
    owner = await identity.sign_up()
    agents = {await agent_of(identity, owner.user.id, owner.organization.id) for _ in range(3)}
    listed = await identity.stub.ListAgents(pb.ListAgentsRequest(organization_id=owner.organization.id, page_size=2), metadata=as_user(owner.user.id))
    rest = await identity.stub.ListAgents(
        pb.ListAgentsRequest(organization_id=owner.organization.id, page_size=2, page_token=listed.next_page_token), metadata=as_user(owner.user.id)
    )
    assert {a.id for a in [*listed.agents, *rest.agents]} == agents and not rest.next_page_token
    stranger = (await identity.sign_up("Stranger")).user.id
    await expect(grpc.StatusCode.PERMISSION_DENIED, identity.stub.ListAgents(pb.ListAgentsRequest(organization_id=owner.organization.id), metadata=as_user(stranger)))
    await expect(grpc.StatusCode.NOT_FOUND, identity.stub.GetAgent(pb.GetAgentRequest(agent_id=next(iter(agents))), metadata=as_user(stranger)))

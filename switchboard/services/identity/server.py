"""The identity service's gRPC servicers: thin (parse, authorise, call the domain, encode)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
import grpc

from switchboard.services.identity import access, bots, convert, organizations, store, tokens
from switchboard.services.identity.slugs import slug_problem
from switchboard.shared.auth import WorkerTokenIssuer, current_principal
from switchboard.shared.authz import SIGNED_IN, Role, Target, current_access, policy
from switchboard.shared.errors import NotFound
from switchboard.shared.pagination import decode_page_token, page_of
from switchboard.shared.validation import Violations
from switchboard.identity.v1 import identity_service_pb2_grpc
from switchboard.identity.v1 import identity_service_pb2 as pb

Context = grpc.aio.ServicerContext
NAME_MAX = 100
# Calls on an agent are authorised in the agent's organisation.
AGENT = Target("agent_id", locate="organization_of_agent", noun="agent")


def _role(violations: Violations, field: str, value: int) -> str:
    role = convert.ROLE_FROM_PROTO.get(value)
    if role is None:
        violations.add(field, "must be ROLE_OWNER, ROLE_ADMIN or ROLE_MEMBER")
        return "member"
    return role


class IdentityService(identity_service_pb2_grpc.IdentityServiceServicer):
    """switchboard.identity.v1.IdentityService."""

    def __init__(self, pool: asyncpg.Pool, worker_tokens: WorkerTokenIssuer, bot_users: bots.BotUsers):
        self._pool = pool
        self._worker_tokens = worker_tokens
        self._bot_users = bot_users

    # -- users and organisations ---------------------------------------------------------------

    @policy()
    async def SignUp(self, request: pb.SignUpRequest, context: Context) -> pb.SignUpResponse:
        v = Violations()
        email = v.email("email", request.email)
        display_name = v.text("display_name", request.display_name, max_length=NAME_MAX)
        v.check()
        user, organization, created = await organizations.sign_up(self._pool, email, display_name)
        return pb.SignUpResponse(user=convert.user(user), organization=convert.organization(organization), created=created)

    @policy(operator=False, user=SIGNED_IN)
    async def CreateOrganization(self, request: pb.CreateOrganizationRequest, context: Context) -> pb.CreateOrganizationResponse:
        v = Violations()
        name = v.text("name", request.name, max_length=NAME_MAX)
        slug = request.slug.strip()
        if slug and (problem := slug_problem(slug)):
            v.add("slug", problem)
        if request.visibility not in convert.VISIBILITY_FROM_PROTO:
            v.add("visibility", "must be VISIBILITY_PUBLIC or VISIBILITY_PRIVATE")
        v.check()
        owner = current_access().user_id  # the policy admits acting users only
        assert owner is not None
        row = await organizations.create_organization(
            self._pool, owner, name, slug or None, convert.VISIBILITY_FROM_PROTO[request.visibility]
        )
        return pb.CreateOrganizationResponse(organization=convert.organization(row))

    @policy(user=SIGNED_IN, worker="organization")
    async def GetOrganization(self, request: pb.GetOrganizationRequest, context: Context) -> pb.GetOrganizationResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        v.check()
        row = await store.organization_get(self._pool, organization_id)
        if row is None or (
            row["visibility"] != "public" and await access.standing(self._pool, current_principal(), organization_id) == "none"
        ):
            raise NotFound(f"organization {organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND")
        return pb.GetOrganizationResponse(organization=convert.organization(row))

    # -- memberships ---------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def AddMember(self, request: pb.AddMemberRequest, context: Context) -> pb.AddMemberResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        user_id = v.uuid("user_id", request.user_id)
        role = _role(v, "role", request.role)
        v.check()
        async with self._pool.acquire() as conn, conn.transaction():
            actor = await organizations.lock_for_membership_change(conn, current_principal(), organization_id)
            row = await organizations.add_member(conn, actor, organization_id, user_id, role)
        return pb.AddMemberResponse(membership=convert.membership(row))

    @policy(user=Role.ADMIN, target="organization_id")
    async def RemoveMember(self, request: pb.RemoveMemberRequest, context: Context) -> pb.RemoveMemberResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        user_id = v.uuid("user_id", request.user_id)
        v.check()
        async with self._pool.acquire() as conn, conn.transaction():
            actor = await organizations.lock_for_membership_change(conn, current_principal(), organization_id)
            row = await organizations.remove_member(conn, actor, organization_id, user_id)
        return pb.RemoveMemberResponse(membership=convert.membership(row))

    @policy(user=Role.ADMIN, target="organization_id")
    async def ChangeRole(self, request: pb.ChangeRoleRequest, context: Context) -> pb.ChangeRoleResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        user_id = v.uuid("user_id", request.user_id)
        role = _role(v, "role", request.role)
        v.check()
        async with self._pool.acquire() as conn, conn.transaction():
            actor = await organizations.lock_for_membership_change(conn, current_principal(), organization_id)
            row = await organizations.change_role(conn, actor, organization_id, user_id, role)
        return pb.ChangeRoleResponse(membership=convert.membership(row))

    @policy(user=Role.MEMBER, worker="organization", target="organization_id")
    async def ListMembers(self, request: pb.ListMembersRequest, context: Context) -> pb.ListMembersResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        page_size = v.page_size("page_size", request.page_size)
        v.check()
        after = decode_page_token(request, (datetime, uuid.UUID))
        await self._require_organization(organization_id)
        rows = await store.membership_list(
            self._pool, organization_id, include_bots=request.include_bots, after=after, limit=page_size + 1
        )
        rows, next_token = page_of(rows, page_size, lambda r: (r["created_at"], str(r["user_id"])), request)
        return pb.ListMembersResponse(memberships=[convert.membership(r) for r in rows], next_page_token=next_token)

    @policy()
    async def GetMembership(self, request: pb.GetMembershipRequest, context: Context) -> pb.GetMembershipResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        user_id = v.uuid("user_id", request.user_id)
        v.check()
        row = await store.membership_get(self._pool, organization_id, user_id)
        if row is None:
            raise NotFound(f"user {user_id} is not a member of organization {organization_id}", reason="MEMBERSHIP_NOT_FOUND")
        return pb.GetMembershipResponse(membership=convert.membership(row))

    # -- support bots --------------------------------------------------------------------------

    @policy(user=Role.MEMBER, worker="organization", target="organization_id")
    async def ProvisionSupportBot(self, request: pb.ProvisionSupportBotRequest, context: Context) -> pb.ProvisionSupportBotResponse:
        organization_id = self._organization_id(request.organization_id)
        await self._require_organization(organization_id)
        bot_user_id, created = await bots.provision_support_bot(self._pool, self._bot_users, organization_id)
        return pb.ProvisionSupportBotResponse(bot_user_id=bot_user_id, created=created)

    @policy(user=Role.MEMBER, worker="organization", target="organization_id")
    async def GetSupportBot(self, request: pb.GetSupportBotRequest, context: Context) -> pb.GetSupportBotResponse:
        organization_id = self._organization_id(request.organization_id)
        await self._require_organization(organization_id)
        return pb.GetSupportBotResponse(bot_user_id=await store.bot_get(self._pool, organization_id) or "")

    # -- agents --------------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def CreateAgent(self, request: pb.CreateAgentRequest, context: Context) -> pb.CreateAgentResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        name = v.text("name", request.name, max_length=NAME_MAX)
        v.check()
        await self._require_organization(organization_id)
        return pb.CreateAgentResponse(agent=convert.agent(await store.agent_insert(self._pool, organization_id, name)))

    @policy(user=Role.MEMBER, worker="agent", target=AGENT, agent="agent_id")
    async def GetAgent(self, request: pb.GetAgentRequest, context: Context) -> pb.GetAgentResponse:
        v = Violations()
        agent_id = v.uuid("agent_id", request.agent_id)
        v.check()
        row = await store.agent_get(self._pool, agent_id)
        if row is None:
            raise NotFound(f"agent {agent_id} does not exist", reason="AGENT_NOT_FOUND")
        return pb.GetAgentResponse(agent=convert.agent(row))

    @policy(user=Role.MEMBER, worker="organization", target="organization_id")
    async def ListAgents(self, request: pb.ListAgentsRequest, context: Context) -> pb.ListAgentsResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        page_size = v.page_size("page_size", request.page_size)
        v.check()
        after = decode_page_token(request, (datetime, uuid.UUID))
        await self._require_organization(organization_id)
        rows = await store.agent_list(self._pool, organization_id, after=after, limit=page_size + 1)
        rows, next_token = page_of(rows, page_size, lambda r: (r["created_at"], str(r["id"])), request)
        return pb.ListAgentsResponse(agents=[convert.agent(r) for r in rows], next_page_token=next_token)

    @policy()
    async def ResolveAgentOrganization(
        self, request: pb.ResolveAgentOrganizationRequest, context: Context
    ) -> pb.ResolveAgentOrganizationResponse:
        v = Violations()
        agent_id = v.uuid("agent_id", request.agent_id)
        v.check()
        row = await store.agent_get(self._pool, agent_id)
        if row is None:
            raise NotFound(f"agent {agent_id} does not exist", reason="AGENT_NOT_FOUND")
        return pb.ResolveAgentOrganizationResponse(organization_id=str(row["organization_id"]))

    # -- worker tokens -------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target=AGENT)
    async def IssueWorkerToken(self, request: pb.IssueWorkerTokenRequest, context: Context) -> pb.IssueWorkerTokenResponse:
        v = Violations()
        agent_id = v.uuid("agent_id", request.agent_id)
        connection_id = v.uuid("connection_id", request.connection_id, required=False) or None
        ttl = timedelta(seconds=request.ttl_seconds) if request.ttl_seconds else tokens.DEFAULT_TTL
        if request.ttl_seconds < 0 or ttl > tokens.MAX_TTL:
            v.add("ttl_seconds", f"must be from 1 to {int(tokens.MAX_TTL.total_seconds())} (0 means 3600)")
        v.check()
        issued = await tokens.issue(self._pool, self._worker_tokens, agent_id, connection_id, ttl)
        return pb.IssueWorkerTokenResponse(
            token=issued.token, token_id=issued.token_id, expires_at=convert.timestamp(issued.expires_at)
        )

    @policy(user=Role.ADMIN, target=Target("token_id", locate="organization_of_token", noun="worker token"))
    async def RevokeWorkerToken(self, request: pb.RevokeWorkerTokenRequest, context: Context) -> pb.RevokeWorkerTokenResponse:
        v = Violations()
        token_id = v.uuid("token_id", request.token_id)
        v.check()
        row = await store.worker_token_get(self._pool, token_id)
        if row is None:
            raise NotFound(f"worker token {token_id} was not issued", reason="TOKEN_NOT_FOUND")
        revoked_at = await store.worker_token_revoke(self._pool, token_id)
        if revoked_at is not None:
            return pb.RevokeWorkerTokenResponse(revoked=True, revoked_at=convert.timestamp(revoked_at))
        return pb.RevokeWorkerTokenResponse(revoked=False, revoked_at=convert.timestamp(row["revoked_at"]))

    @policy()
    async def ListRevokedWorkerTokens(
        self, request: pb.ListRevokedWorkerTokensRequest, context: Context
    ) -> pb.ListRevokedWorkerTokensResponse:
        v = Violations()
        page_size = v.page_size("page_size", request.page_size)
        since = v.timestamp("revoked_since", request)
        v.check()
        after = decode_page_token(request, (datetime, uuid.UUID))
        rows = await store.worker_token_list_revoked(self._pool, since=since, after=after, limit=page_size + 1)
        rows, next_token = page_of(rows, page_size, lambda r: (r["revoked_at"], str(r["id"])), request)
        return pb.ListRevokedWorkerTokensResponse(
            revoked_tokens=[
                pb.RevokedWorkerToken(
                    token_id=str(r["id"]),
                    revoked_at=convert.timestamp(r["revoked_at"]),
                    expires_at=convert.timestamp(r["expires_at"]),
                )
                for r in rows
            ],
            next_page_token=next_token,
        )

    # -- where resources live (for the policies' targets) ------------------------------------

    async def organization_of_agent(self, agent_id: str) -> str | None:
        row = await store.agent_get(self._pool, agent_id)
        return str(row["organization_id"]) if row else None

    async def organization_of_token(self, token_id: str) -> str | None:
        row = await store.worker_token_get(self._pool, token_id)
        return str(row["organization_id"]) if row else None

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _organization_id(raw: str) -> str:
        v = Violations()
        organization_id = v.uuid("organization_id", raw)
        v.check()
        return organization_id

    async def _require_organization(self, organization_id: str) -> None:
        if await store.organization_get(self._pool, organization_id) is None:
            raise NotFound(f"organization {organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND")

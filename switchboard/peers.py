"""The platform's two questions to the identity service, asked over its gRPC contract: which
worker tokens are revoked, and which role a user has in an organisation. The platform
(switchboard/shared) keeps the caches and loops and takes these as plain functions, so that it
imports no service's contract; `switchboard serve` and the tests wire them in."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.identity.v1 import identity_service_pb2, identity_service_pb2_grpc, resources_pb2
from switchboard.shared import memberships, revocations
from switchboard.shared.authz import Role
from switchboard.shared.errors import Unavailable

LOOKUP_TIMEOUT_SECONDS = 2.0


def remote_revocations(channel: grpc.aio.Channel) -> revocations.Fetch:
    """A revocations Fetch that pages through the identity service's ListRevokedWorkerTokens."""
    stub = identity_service_pb2_grpc.IdentityServiceStub(channel)

    async def fetch(since: datetime | None) -> list[revocations.Revocation]:
        request = identity_service_pb2.ListRevokedWorkerTokensRequest(page_size=1000)
        if since is not None:
            stamp = Timestamp()
            stamp.FromDatetime(since)
            request.revoked_since.CopyFrom(stamp)
        found: list[revocations.Revocation] = []
        while True:
            # wait_for_ready: while identity is still starting, wait for it (within the timeout)
            # instead of failing at once.
            reply = await stub.ListRevokedWorkerTokens(request, timeout=5, wait_for_ready=True)
            found += [
                revocations.Revocation(
                    t.token_id, t.revoked_at.ToDatetime(tzinfo=UTC), t.expires_at.ToDatetime(tzinfo=UTC)
                )
                for t in reply.revoked_tokens
            ]
            if not reply.next_page_token:
                return found
            request.page_token = reply.next_page_token

    return fetch


def remote_fetch(channel: grpc.aio.Channel, *, timeout_seconds: float = LOOKUP_TIMEOUT_SECONDS) -> memberships.Fetch:
    """A role lookup through identity's GetMembership over ``channel`` (which carries the token)."""
    stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
    roles = {resources_pb2.ROLE_MEMBER: Role.MEMBER, resources_pb2.ROLE_ADMIN: Role.ADMIN, resources_pb2.ROLE_OWNER: Role.OWNER}

    async def fetch(organization_id: str, user_id: str) -> Role | None:
        try:
            response = await stub.GetMembership(
                identity_service_pb2.GetMembershipRequest(organization_id=organization_id, user_id=user_id), timeout=timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise Unavailable(
                "cannot resolve the acting user's role: the identity service did not answer; retry shortly",
                reason="IDENTITY_UNAVAILABLE",
            ) from None
        return roles.get(response.membership.role)

    return fetch

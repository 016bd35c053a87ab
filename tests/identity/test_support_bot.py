"""Support bots: lazy, idempotent, race-safe, one per organisation, no orphans."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import grpc
import pytest

from switchboard.shared.errors import field_violations
from switchboard.identity.v1 import identity_service_pb2 as pb
from tests.identity.conftest import OPERATOR, as_user


async def bot_state(pool: asyncpg.Pool, organization_id: str) -> tuple[int, int]:
    """(bot memberships of the org, bot users anywhere)."""
    memberships = await pool.fetchval(
        "SELECT count(*) FROM identity.memberships WHERE organization_id = $1 AND is_bot", organization_id
    )
    users = await pool.fetchval("SELECT count(*) FROM identity.users WHERE email LIKE 'support-bot-%'")
    return memberships, users


async def test_creating_an_organisation_creates_no_bot(identity):
    organization = (await identity.sign_up()).organization
    reply = await identity.stub.GetSupportBot(pb.GetSupportBotRequest(organization_id=organization.id), metadata=OPERATOR)
    assert reply.bot_user_id == ""
    assert await bot_state(identity.pool, organization.id) == (0, 0)


async def test_fifty_concurrent_provisions_make_exactly_one_bot(identity):
    organization = (await identity.sign_up()).organization
    replies = await asyncio.gather(
        *(
            identity.stub.ProvisionSupportBot(pb.ProvisionSupportBotRequest(organization_id=organization.id), metadata=OPERATOR)
            for _ in range(50)
        )
    )
    assert len({r.bot_user_id for r in replies}) == 1
    assert sum(r.created for r in replies) == 1
    assert await bot_state(identity.pool, organization.id) == (1, 1)
    row = await identity.pool.fetchrow(
        "SELECT role, is_bot FROM identity.memberships WHERE organization_id = $1 AND user_id = $2",
        organization.id,
        replies[0].bot_user_id,
    )
    assert (row["role"], row["is_bot"]) == ("member", True)
    again = await identity.stub.GetSupportBot(pb.GetSupportBotRequest(organization_id=organization.id), metadata=OPERATOR)
    assert again.bot_user_id == replies[0].bot_user_id


async def test_the_database_refuses_a_second_bot_membership(identity):
    organization = (await identity.sign_up()).organization
    await identity.stub.ProvisionSupportBot(pb.ProvisionSupportBotRequest(organization_id=organization.id), metadata=OPERATOR)
    other = (await identity.sign_up("Other")).user.id
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await identity.pool.execute(
            "INSERT INTO identity.memberships (organization_id, user_id, role, is_bot) VALUES ($1, $2, 'member', true)",
            organization.id,
            other,
        )
    assert caught.value.constraint_name == "memberships_one_bot_per_organization"


async def test_bots_are_left_out_of_member_lists_unless_asked_for(identity):
    signed_up = await identity.sign_up()
    organization = signed_up.organization
    bot = await identity.stub.ProvisionSupportBot(pb.ProvisionSupportBotRequest(organization_id=organization.id), metadata=OPERATOR)
    humans = await identity.stub.ListMembers(pb.ListMembersRequest(organization_id=organization.id), metadata=OPERATOR)
    assert [m.user_id for m in humans.memberships] == [signed_up.user.id]
    everyone = await identity.stub.ListMembers(
        pb.ListMembersRequest(organization_id=organization.id, include_bots=True), metadata=OPERATOR
    )
    assert {m.user_id for m in everyone.memberships} == {signed_up.user.id, bot.bot_user_id}


async def test_a_member_may_provision_and_a_stranger_may_not(identity):
    owner = await identity.sign_up()
    stranger = (await identity.sign_up("Stranger")).user.id
    request = pb.ProvisionSupportBotRequest(organization_id=owner.organization.id)
    assert (await identity.stub.ProvisionSupportBot(request, metadata=as_user(owner.user.id))).created
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await identity.stub.ProvisionSupportBot(request, metadata=as_user(stranger))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_unknown_organisation_is_not_found_by_name(identity):
    missing = str(uuid.uuid4())
    for call in (identity.stub.ProvisionSupportBot, identity.stub.GetSupportBot):
        request = (pb.ProvisionSupportBotRequest if call == identity.stub.ProvisionSupportBot else pb.GetSupportBotRequest)(
            organization_id=missing
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request, metadata=OPERATOR)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert missing in caught.value.details()
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.users") == 0


async def test_a_malformed_organisation_id_is_invalid_argument(identity):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await identity.stub.ProvisionSupportBot(pb.ProvisionSupportBotRequest(organization_id="org-1"), metadata=OPERATOR)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(caught.value)] == ["organization_id"]

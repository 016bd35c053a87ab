"""Support bots with GoTrue as identity provider, against a GoTrue-compatible admin API served on
loopback: one bot user in the end, losers' users deleted, failures leave nothing behind."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from switchboard.shared.logs import capture_log_lines
from switchboard.identity.v1 import identity_service_pb2 as pb
from tests.identity.conftest import OPERATOR, running_identity
from tests.support.asgi import serve_asgi
from tests.support.fake_gotrue import FakeGoTrue

SERVICE_ROLE_KEY = "service-role-" + "s" * 40


@pytest.fixture
async def gotrue():
    fake = FakeGoTrue(service_role_key=SERVICE_ROLE_KEY)
    async with serve_asgi(fake.app()) as url:
        fake.url = url
        yield fake
        fake.release.set()


@pytest.fixture
async def identity_gotrue(migrated_database, gotrue):
    async with running_identity(
        migrated_database,
        idp="gotrue",
        supabase_url=gotrue.url,
        supabase_service_role_key=SERVICE_ROLE_KEY,
        support_bot_email_domain="bots.example.test",
        idp_timeout_seconds=0.5,
    ) as running:
        yield running


async def provision(identity, organization_id: str) -> pb.ProvisionSupportBotResponse:
    return await identity.stub.ProvisionSupportBot(pb.ProvisionSupportBotRequest(organization_id=organization_id), metadata=OPERATOR)


async def test_fifty_concurrent_provisions_leave_one_gotrue_user(identity_gotrue, gotrue):
    organization = (await identity_gotrue.sign_up()).organization
    gotrue.create_barrier = 50
    replies = await asyncio.gather(*(provision(identity_gotrue, organization.id) for _ in range(50)))
    assert len({r.bot_user_id for r in replies}) == 1 and sum(r.created for r in replies) == 1
    bot_id = replies[0].bot_user_id
    assert list(gotrue.users) == [bot_id]
    assert len(gotrue.deleted) == 49  # every loser created a user in GoTrue, and deleted it again
    user = gotrue.users[bot_id]
    assert user["email"].startswith("support-bot-") and user["email"].endswith("@bots.example.test")
    assert len(user["email"].split("@")[0].removeprefix("support-bot-")) == 32
    assert user["email_confirmed_at"] and not user["has_password"]
    assert user["app_metadata"] == {"is_support_bot": True, "organization_id": organization.id}
    assert user["user_metadata"] == {"display_name": "Support Bot"}
    assert await identity_gotrue.pool.fetchval(
        "SELECT count(*) FROM identity.memberships WHERE organization_id = $1 AND is_bot", organization.id
    ) == 1
    assert await identity_gotrue.pool.fetchval(
        "SELECT count(*) FROM identity.users WHERE id = $1", bot_id
    ) == 1  # mirrored into the identity schema with GoTrue's id


@pytest.mark.parametrize(
    "status, code",
    [(422, grpc.StatusCode.FAILED_PRECONDITION), (500, grpc.StatusCode.UNAVAILABLE), (503, grpc.StatusCode.UNAVAILABLE)],
)
async def test_gotrue_refusals_and_failures_leave_nothing_behind(identity_gotrue, gotrue, status, code):
    organization = (await identity_gotrue.sign_up()).organization
    gotrue.fail_create_with = status
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provision(identity_gotrue, organization.id)
    assert caught.value.code() == code and f"HTTP {status}" in caught.value.details()
    assert SERVICE_ROLE_KEY not in caught.value.details()
    assert gotrue.users == {}
    assert await identity_gotrue.pool.fetchval("SELECT count(*) FROM identity.memberships WHERE is_bot") == 0
    gotrue.fail_create_with = None
    assert (await provision(identity_gotrue, organization.id)).created  # nothing blocks a retry


async def test_a_gotrue_timeout_is_unavailable(identity_gotrue, gotrue):
    organization = (await identity_gotrue.sign_up()).organization
    gotrue.hang_create = True
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provision(identity_gotrue, organization.id)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "did not answer in time" in caught.value.details()
    assert await identity_gotrue.pool.fetchval("SELECT count(*) FROM identity.memberships WHERE is_bot") == 0


async def test_a_failed_cleanup_is_logged_not_raised(identity_gotrue, gotrue):
    organization = (await identity_gotrue.sign_up()).organization
    gotrue.create_barrier = 10
    gotrue.fail_delete_with = 500
    with capture_log_lines() as logs:
        replies = await asyncio.gather(*(provision(identity_gotrue, organization.id) for _ in range(10)))
    assert len({r.bot_user_id for r in replies}) == 1 and sum(r.created for r in replies) == 1
    assert logs.getvalue().count('"gotrue_user_cleanup_failed"') == 9
    assert SERVICE_ROLE_KEY not in logs.getvalue()
    assert len(gotrue.users) == 10  # the nine orphans stayed in GoTrue, each one logged


async def test_missing_configuration_fails_at_call_time_naming_the_variable(migrated_database):
    async with running_identity(migrated_database, idp="gotrue", supabase_url=None, supabase_service_role_key=None) as identity:
        organization = (await identity.sign_up()).organization
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await provision(identity, organization.id)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY" in caught.value.details()

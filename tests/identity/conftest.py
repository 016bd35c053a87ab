"""A real identity service for each test: fresh migrated database, real gRPC server on port 0."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest

from switchboard.catalog import configure
from switchboard.services.identity import app as identity_app
from switchboard.shared.auth import Authenticator
from switchboard.shared.db import create_pool
from switchboard.shared.revocations import RevocationSync, RevokedTokens
from switchboard.identity.v1 import identity_service_pb2 as pb
from switchboard.identity.v1 import identity_service_pb2_grpc, resources_pb2
from tests.conftest import INTERNAL_TOKEN
from tests.support.serving import serving
from tests.support.worker_keys import PUBLIC_KEYS_SETTING, SIGNING_KEY_SETTING, verifier

OPERATOR = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)


def as_user(user_id: str) -> tuple[tuple[str, str], ...]:
    return (*OPERATOR, ("x-switchboard-user-id", user_id))


def as_worker(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Identity:
    stub: identity_service_pb2_grpc.IdentityServiceStub
    pool: asyncpg.Pool
    revocations: RevocationSync
    channel: grpc.aio.Channel
    port: int = 0

    async def sign_up(self, name: str = "Zoe Doe", email: str | None = None) -> pb.SignUpResponse:
        email = email or f"{uuid.uuid4().hex[:10]}@example.com"
        return await self.stub.SignUp(pb.SignUpRequest(email=email, display_name=name), metadata=OPERATOR)

    async def member(self, organization_id: str, role: int = resources_pb2.ROLE_MEMBER) -> str:
        """A new user added to the organisation with ``role``; their id."""
        user = (await self.sign_up("Member")).user.id
        await self.stub.AddMember(pb.AddMemberRequest(organization_id=organization_id, user_id=user, role=role), metadata=OPERATOR)
        return user


@contextlib.asynccontextmanager
async def running_identity(database_url: str, **overrides: object) -> AsyncIterator[Identity]:
    configuration = configure(
        database_url=database_url,
        internal_token=INTERNAL_TOKEN,
        worker_token_signing_key=SIGNING_KEY_SETTING,
        worker_token_public_keys=PUBLIC_KEYS_SETTING,
        db_pool_max_size=30,
    ).replace(**overrides)
    settings = configuration.platform
    pool = await create_pool(settings, "identity", application_name="tests-identity")
    app = await identity_app.create(settings, pool, own=configuration.of("identity"))
    assert app.revocations is not None
    revocations = RevocationSync(RevokedTokens(max_staleness_seconds=3600), app.revocations, 3600)
    await revocations.run_once()
    authenticator = Authenticator(INTERNAL_TOKEN, verifier(), revocations.revoked)
    async with serving(app, pool, authenticator) as (port, channel):
        yield Identity(identity_service_pb2_grpc.IdentityServiceStub(channel), pool, revocations, channel, port)


@pytest.fixture
async def identity(migrated_database: str) -> AsyncIterator[Identity]:
    async with running_identity(migrated_database) as running:
        yield running

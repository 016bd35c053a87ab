"""A real secret proxy for each test: fresh migrated database, a real identity service, a real
upstream HTTP server on loopback, real gRPC channels. Every secret value and placeholder a test
makes is remembered, and the log lines of the test are checked to contain none of them."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import pytest

from switchboard.catalog import Configuration, configure
from switchboard.services.secretproxy import app as secretproxy_app
from switchboard.services.secretproxy.audit import AuditLog
from switchboard.shared.auth import Authenticator
from switchboard.shared.crypto import new_key_list
from switchboard.shared.db import create_pool
from switchboard.shared.service import ServiceApp
from switchboard.shared.logs import capture_log_lines
from switchboard.identity.v1 import identity_service_pb2 as identity_pb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN, free_port
from tests.identity.conftest import Identity, as_user, running_identity
from tests.support.asgi import serve_asgi
from tests.support.serving import serving
from tests.support.upstream import FakeUpstream
from tests.support.worker_keys import ISSUER, PUBLIC_KEYS_SETTING, verifier

OPERATOR = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)
TOKENS = ISSUER
CREDENTIALS_KEYS = new_key_list("k1")  # shared by every replica of a test, as in production


@dataclass
class Worker:
    organization_id: str | None
    agent_id: str
    token: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)


@dataclass
class Proxy:
    stub: secret_proxy_service_pb2_grpc.SecretProxyServiceStub
    pool: asyncpg.Pool
    app: ServiceApp
    upstream: FakeUpstream
    upstream_url: str
    identity: Identity
    port: int
    sensitive: list[str] = field(default_factory=list)  # every value and placeholder made

    @property
    def audit(self) -> AuditLog:
        return self.app.component(AuditLog)

    def worker(self, organization_id: str | None, agent_id: str | None = None) -> Worker:
        agent_id = agent_id or str(uuid.uuid4())
        token = TOKENS.issue(organization_id=organization_id, agent_id=agent_id, connection_id=None, ttl=timedelta(minutes=10)).token
        return Worker(organization_id, agent_id, token)

    async def put_secret(self, organization_id: str, value: str, *, name: str | None = None, agent_id: str = "") -> tuple[str, str]:
        """(secret id, placeholder)"""
        reply = await self.stub.PutSecret(
            pb.PutSecretRequest(organization_id=organization_id, agent_id=agent_id, name=name or f"S_{uuid.uuid4().hex[:8]}", value=value),
            metadata=OPERATOR,
        )
        self.sensitive += [value, reply.placeholder]
        return reply.secret_id, reply.placeholder

    async def put_credential(self, organization_id: str, value: str, *, provider: str = "echo", priority: int = 0) -> pb.ProviderCredential:
        reply = await self.stub.PutProviderCredential(
            pb.PutProviderCredentialRequest(organization_id=organization_id, provider=provider, value=value, priority=priority),
            metadata=OPERATOR,
        )
        self.sensitive.append(value)
        return reply.provider_credential

    async def allow(self, organization_id: str, host: str = "127.0.0.1", **rule: object) -> pb.EgressPolicy:
        reply = await self.stub.SetEgressPolicy(
            pb.SetEgressPolicyRequest(
                organization_id=organization_id, rules=[pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern=host, **rule)]
            ),
            metadata=OPERATOR,
        )
        return reply.policy

    async def org_ready(self, *, credential: bool | str = False) -> str:
        """A new organisation whose policy allows the loopback upstream, with a credential for it
        if asked (a given value, or True for a new one)."""
        organization_id = str(uuid.uuid4())
        await self.allow(organization_id)
        if credential:
            await self.put_credential(organization_id, credential if isinstance(credential, str) else f"cred-{uuid.uuid4().hex}")
        return organization_id

    async def agent(self) -> tuple[str, str]:
        """A real agent in identity: (organisation id, agent id)."""
        owner = await self.identity.sign_up()
        reply = await self.identity.stub.CreateAgent(
            identity_pb.CreateAgentRequest(organization_id=owner.organization.id, name="Helper"), metadata=as_user(owner.user.id)
        )
        return owner.organization.id, reply.agent.id

    async def forward(
        self,
        worker: Worker | None,
        path: str = "/v1/things",
        *,
        method: str = "GET",
        upstream: str = "echo",
        headers: Sequence[tuple[str, str]] = (),
        chunks: Sequence[bytes] = (),
        metadata: Sequence[tuple[str, str]] = (),
        source_address: str = "",
    ) -> Answer:
        """One HTTP exchange through Forward. Raises AioRpcError for a refusal."""
        call = self.stub.Forward(metadata=(*(worker.metadata if worker else ()), *metadata))
        await call.write(
            pb.ForwardRequest(
                head=pb.ForwardRequestHead(
                    method=method, upstream=upstream, path=path, source_address=source_address,
                    headers=[pb.HttpHeader(name=n, value=v) for n, v in headers],
                )
            )
        )
        for chunk in chunks:
            await call.write(pb.ForwardRequest(body_chunk=chunk))
        await call.done_writing()
        status, response_headers, body = 0, [], b""
        async for message in call:
            kind = message.WhichOneof("kind")
            if kind == "head":
                status = message.head.status_code
                response_headers = [(h.name, h.value) for h in message.head.headers]
            elif kind == "body_chunk":
                body += message.body_chunk
        return Answer(status, response_headers, body)

    async def audit_rows(self) -> list[asyncpg.Record]:
        await self.audit.flush()
        return await self.pool.fetch("SELECT * FROM secretproxy.audit_records ORDER BY id")


def proxy_settings(database_url: str, upstream_url: str, identity_port: int, **overrides: object) -> Configuration:
    upstreams = {
        "echo": {"base_url": upstream_url, "allow_private": True},
        # The same loopback server, not exempted from the deny of private addresses.
        "loopback-denied": upstream_url,
        "closed": {"base_url": f"http://127.0.0.1:{free_port()}", "allow_private": True},
        "header-key": {"base_url": upstream_url, "allow_private": True, "credential_header": "x-api-key"},
    }
    return configure(
        database_url=database_url,
        internal_token=INTERNAL_TOKEN,
        worker_token_public_keys=PUBLIC_KEYS_SETTING,
        credentials_keys=CREDENTIALS_KEYS,
        identity_target=f"127.0.0.1:{identity_port}",
        proxy_upstreams=json.dumps(upstreams),
        db_pool_max_size=20,
    ).replace(**overrides)


@contextlib.asynccontextmanager
async def running_proxy(database_url: str, identity: Identity, upstream: FakeUpstream, upstream_url: str, **overrides: object) -> AsyncIterator[Proxy]:
    configuration = proxy_settings(database_url, upstream_url, identity.port, **overrides)
    pool = await create_pool(configuration.platform, "secretproxy", application_name="tests-secretproxy")
    app = await secretproxy_app.create(configuration.platform, pool, own=configuration.of("secretproxy"))
    authenticator = Authenticator(INTERNAL_TOKEN, verifier(require_organization=False))
    # The audit writer runs; the retention loop is tested on its own.
    async with serving(app, pool, authenticator, shutdown_grace_seconds=2, components=[app.component(AuditLog)]) as (port, channel):
        yield Proxy(secret_proxy_service_pb2_grpc.SecretProxyServiceStub(channel), pool, app, upstream, upstream_url, identity, port)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream()
    async with serve_asgi(fake.app()) as url:
        yield fake, url
    fake.stall.set()


@pytest.fixture
async def identity(migrated_database: str) -> AsyncIterator[Identity]:
    async with running_identity(migrated_database) as running:
        yield running


@pytest.fixture
async def proxy(migrated_database: str, identity: Identity, upstream) -> AsyncIterator[Proxy]:
    fake, url = upstream
    with capture_log_lines() as lines:
        async with running_proxy(migrated_database, identity, fake, url) as running:
            yield running
    leaked = [s for s in running.sensitive if s in lines.getvalue()]
    assert not leaked, "a secret value or placeholder appeared in a log line"

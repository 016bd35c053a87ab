"""Worker tokens across every service, each behind a real gRPC server and authenticating as
`switchboard serve` makes it (``authenticator_from`` the settings; identity's signer from its
own): a token of identity's current key is accepted everywhere, every forgery is refused
everywhere, keys rotate without downtime, and no process but identity can hold a private key."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from switchboard.catalog import configure
from switchboard.services.edge.app import create_app
from switchboard.services.edge.upstreams import Upstreams
from switchboard.services.identity import app as identity_app
from switchboard.services.interactions import app as interactions_app
from switchboard.services.runs import app as runs_app
from switchboard.services.secretproxy import app as secretproxy_app
from switchboard.shared.auth import WorkerTokenIssuer
from switchboard.shared.config import ConfigError, Settings
from switchboard.shared.crypto import new_key_list
from switchboard.shared.db import create_pool
from switchboard.shared.errors import reason_of
from switchboard.shared.grpc.client import open_channel
from switchboard.shared.worker_keys import SigningKey, public_keys_setting
from switchboard.identity.v1 import identity_service_pb2 as identity_pb
from switchboard.identity.v1 import identity_service_pb2_grpc
from switchboard.interactions.v1 import interaction_service_pb2, interaction_service_pb2_grpc
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc
from switchboard.secretproxy.v1 import secret_proxy_service_pb2, secret_proxy_service_pb2_grpc
from switchboard.serve import authenticator_from, serve_edge, serve_grpc
from tests.conftest import INTERNAL_TOKEN
from tests.support.asgi import serve_asgi
from tests.support.serving import serving

OPERATOR = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)
APPS = {"identity": identity_app, "interactions": interactions_app, "secretproxy": secretproxy_app, "runs": runs_app}
K1, K2 = SigningKey.generate("k1"), SigningKey.generate("k2")
OLD_SHARED_KEY = "test-worker-token-key-" + "k" * 32  # what every service held under HS256


@dataclass
class Deployment:
    """The four services (and the edge) of one configuration, on one database."""

    channels: dict[str, grpc.aio.Channel]
    edge: httpx.AsyncClient

    async def issue(self, agent_id: str) -> str:
        """A token as workers get one: from identity's IssueWorkerToken."""
        stub = identity_service_pb2_grpc.IdentityServiceStub(self.channels["identity"])
        return (await stub.IssueWorkerToken(identity_pb.IssueWorkerTokenRequest(agent_id=agent_id), metadata=OPERATOR)).token

    async def outcomes(self, token: str, org: str, agent: str) -> dict[str, tuple[str, str]]:
        """(status, reason) of one call with ``token`` to each service and to the edge."""
        metadata = (("authorization", f"Bearer {token}"),)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "identity": lambda: identity_service_pb2_grpc.IdentityServiceStub(self.channels["identity"]).GetAgent(
                identity_pb.GetAgentRequest(agent_id=agent), metadata=metadata
            ),
            "interactions": lambda: interaction_service_pb2_grpc.InteractionServiceStub(self.channels["interactions"]).ListConnections(
                interaction_service_pb2.ListConnectionsRequest(organization_id=org), metadata=metadata
            ),
            "secretproxy": lambda: secret_proxy_service_pb2_grpc.SecretProxyServiceStub(self.channels["secretproxy"]).ListSecrets(
                secret_proxy_service_pb2.ListSecretsRequest(organization_id=org), metadata=metadata
            ),
            "runs": lambda: run_service_pb2_grpc.RunServiceStub(self.channels["runs"]).GetRun(
                run_service_pb2.GetRunRequest(run_id=str(uuid.uuid4())), metadata=metadata
            ),
        }
        found = {}
        for service, call in calls.items():
            try:
                await call()
                found[service] = ("OK", "")
            except grpc.aio.AioRpcError as error:
                found[service] = (error.code().name, reason_of(error) or "")
        # The edge reads the token itself (SSE): a refusal there is its own 401; a stream the
        # worker may not open is the interactions service's answer, after the edge accepted it.
        reply = await self.edge.get(f"/v1/streams/agents/{uuid.uuid4()}/events", headers={"authorization": f"Bearer {token}"})
        found["edge"] = ("UNAUTHENTICATED" if reply.status_code == 401 else str(reply.status_code), reply.json().get("detail", ""))
        return found


@contextlib.asynccontextmanager
async def deployed(database_url: str, *, signing: SigningKey, published: list[SigningKey]) -> AsyncIterator[Deployment]:
    """Every service configured as an operator would: identity with ``signing``, every process
    with the public keys of ``published``."""
    common = Settings(
        database_url=database_url,
        internal_token=INTERNAL_TOKEN,
        worker_token_public_keys=public_keys_setting({key.kid: key.public_key for key in published}),
        credentials_keys=new_key_list(),
        db_pool_max_size=4,
    )
    async with contextlib.AsyncExitStack() as stack:
        ports: dict[str, int] = {}
        for name, module in APPS.items():  # identity first: the others reach it
            if name == "identity":
                settings = dataclasses.replace(common, worker_token_signing_key=signing.setting())
            else:
                settings = dataclasses.replace(common, identity_target=f"127.0.0.1:{ports['identity']}")
            pool = await create_pool(settings, module.SCHEMA, application_name=f"tests-{name}")
            app = await module.create(settings, pool)
            authenticator = authenticator_from(settings, worker_tokens=app.worker_tokens)
            ports[name], _ = await stack.enter_async_context(
                serving(app, pool, authenticator, shutdown_grace_seconds=1, components=())
            )
        channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()}
        for channel in channels.values():
            stack.push_async_callback(channel.close)
        upstreams = Upstreams({name: open_channel(f"127.0.0.1:{port}", token=INTERNAL_TOKEN) for name, port in ports.items()})
        url = await stack.enter_async_context(serve_asgi(create_app(common, upstreams=upstreams)))
        edge = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
        yield Deployment(channels, edge)


async def an_agent(deployment: Deployment) -> tuple[str, str]:
    """(organisation, agent) made through identity by an operator."""
    identity = identity_service_pb2_grpc.IdentityServiceStub(deployment.channels["identity"])
    signed_up = await identity.SignUp(identity_pb.SignUpRequest(email=f"{uuid.uuid4().hex[:10]}@example.com", display_name="Zoe"), metadata=OPERATOR)
    org = signed_up.organization.id
    agent = await identity.CreateAgent(identity_pb.CreateAgentRequest(organization_id=org, name="helper"), metadata=OPERATOR)
    return org, agent.agent.id


NOT_VALID = ("UNAUTHENTICATED", "TOKEN_INVALID")
EVERY_PART = ["identity", "interactions", "secretproxy", "runs", "edge"]


def assert_accepted_everywhere(outcomes: dict[str, tuple[str, str]]) -> None:
    # Past authentication each answers as its handler decides (OK, NOT_FOUND, …), never
    # UNAUTHENTICATED.
    assert set(outcomes) == set(EVERY_PART)
    assert {part: outcome for part, outcome in outcomes.items() if outcome[0] == "UNAUTHENTICATED"} == {}


NOT_VALID_EVERYWHERE = {part: NOT_VALID for part in EVERY_PART if part != "edge"} | {
    "edge": ("UNAUTHENTICATED", "the bearer token is not valid")
}


def assert_refused_everywhere_as_not_valid(outcomes: dict[str, tuple[str, str]]) -> None:
    assert outcomes == NOT_VALID_EVERYWHERE


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(header: dict, claims: dict, secret: bytes) -> str:
    """HS256 signed by hand, as an attacker would (PyJWT refuses to key HMAC with a public key)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def forgeries(genuine: str) -> dict[str, str]:
    """Tokens with the claims of a genuine one (signed with K1) that no service may accept."""
    claims = jwt.decode(genuine, K1.public_key, algorithms=["EdDSA"], audience="switchboard")
    public_raw = K1.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public_pem = K1.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    return {
        "hs256-keyed-with-the-public-key": hs256(header, claims, public_raw),
        "hs256-keyed-with-the-public-key-pem": hs256(header, claims, public_pem),
        "hs256-keyed-with-the-public-key-setting": hs256(header, claims, K1.public_setting().encode()),
        "unknown-kid": WorkerTokenIssuer(SigningKey.generate("k9")).issue(
            organization_id=claims["org"], agent_id=claims["agent"], connection_id=None, ttl=timedelta(minutes=5)
        ).token,
        "another-key-under-a-trusted-kid": WorkerTokenIssuer(SigningKey.generate("k1")).issue(
            organization_id=claims["org"], agent_id=claims["agent"], connection_id=None, ttl=timedelta(minutes=5)
        ).token,
        "no-kid": jwt.encode(claims, K1.private_key, algorithm="EdDSA"),
        "hs256-old-shared-key": jwt.encode(claims, OLD_SHARED_KEY, algorithm="HS256"),
        "alg-none": jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"}),
        "internal-token-mistyped": INTERNAL_TOKEN[:-1] + ("y" if INTERNAL_TOKEN[-1] != "y" else "z"),
    }


async def test_identitys_tokens_are_accepted_and_every_forgery_is_refused_by_every_service(migrated_database):
    async with deployed(migrated_database, signing=K1, published=[K1]) as deployment:
        org, agent = await an_agent(deployment)
        genuine = await deployment.issue(agent)
        assert jwt.get_unverified_header(genuine) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}
        assert_accepted_everywhere(await deployment.outcomes(genuine, org, agent))
        refused = {name: await deployment.outcomes(forged, org, agent) for name, forged in forgeries(genuine).items()}
        assert refused == dict.fromkeys(refused, NOT_VALID_EVERYWHERE)


async def test_rotating_the_signing_key_keeps_tokens_of_the_previous_key_until_they_expire(migrated_database):
    async with deployed(migrated_database, signing=K1, published=[K1]) as deployment:
        org, agent = await an_agent(deployment)
        old = await deployment.issue(agent)
    expired_old = WorkerTokenIssuer(K1).issue(
        organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=1), now=datetime.now(UTC) - timedelta(hours=1)
    ).token
    # Step 1: the new public key is published everywhere; identity still signs with the old key.
    async with deployed(migrated_database, signing=K1, published=[K1, K2]) as deployment:
        assert_accepted_everywhere(await deployment.outcomes(old, org, agent))
    # Step 2: identity signs with the new key; the old key's tokens stay valid while it is listed.
    async with deployed(migrated_database, signing=K2, published=[K1, K2]) as deployment:
        new = await deployment.issue(agent)
        assert jwt.get_unverified_header(new)["kid"] == "k2"
        assert_accepted_everywhere(await deployment.outcomes(new, org, agent))
        assert_accepted_everywhere(await deployment.outcomes(old, org, agent))
        expired = await deployment.outcomes(expired_old, org, agent)
        assert {part: outcome[0] for part, outcome in expired.items()} == dict.fromkeys(EVERY_PART, "UNAUTHENTICATED")
        assert {expired[part][1] for part in EVERY_PART if part != "edge"} == {"TOKEN_EXPIRED"}
    # Step 3: once the old key's tokens have expired, its public key is removed.
    async with deployed(migrated_database, signing=K2, published=[K2]) as deployment:
        assert_accepted_everywhere(await deployment.outcomes(new, org, agent))
        assert_refused_everywhere_as_not_valid(await deployment.outcomes(old, org, agent))


@pytest.mark.parametrize(
    "signing, published, problem",
    [
        (K2, [K1], "'k2' is not in SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS"),
        (SigningKey(K1.kid, K2.private_key), [K1, K2], "listed as 'k1' in SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS is not the signing key's"),
        (None, [K1], "SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY"),
    ],
    ids=["unpublished-kid", "another-key-under-its-kid", "no-signing-key"],
)
async def test_identity_refuses_to_start_with_a_signing_key_the_services_cannot_verify(signing, published, problem):
    settings = Settings(
        internal_token=INTERNAL_TOKEN,
        worker_token_signing_key=signing.setting() if signing else None,
        worker_token_public_keys=public_keys_setting({key.kid: key.public_key for key in published}),
    )
    with pytest.raises(ConfigError, match=problem):
        await identity_app.create(settings, None)  # refused before the pool is ever used


@pytest.mark.parametrize("service", ["interactions", "secretproxy", "runs", "edge"])
async def test_no_service_but_identity_starts_with_the_private_key(service):
    # Nothing is opened before the refusal: the database URL points nowhere.
    configuration = configure(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        internal_token=INTERNAL_TOKEN,
        worker_token_public_keys=K1.public_setting(),
        worker_token_signing_key=K1.setting(),
    )
    with pytest.raises(ConfigError, match="SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY is for the identity service only"):
        if service == "edge":
            await serve_edge(configuration, port=0)
        else:
            await serve_grpc(configuration, service, port=0)


def test_services_verify_with_public_keys_only():
    settings = Settings(internal_token=INTERNAL_TOKEN, worker_token_public_keys=K1.public_setting())
    tokens = authenticator_from(settings)._worker_tokens
    assert not hasattr(tokens, "issue")
    with pytest.raises(ConfigError, match="SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS"):
        authenticator_from(Settings(internal_token=INTERNAL_TOKEN, worker_token_signing_key=K1.setting()))

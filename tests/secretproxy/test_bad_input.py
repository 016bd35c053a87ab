"""Hostile input to the secret proxy's management RPCs: text that cannot be stored in a rule, and
forged page tokens on every List RPC."""

from __future__ import annotations

import uuid

import grpc
import pytest

from switchboard.shared.errors import field_violations
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from tests.secretproxy.conftest import OPERATOR
from tests.support.page_tokens import assert_hostile_tokens_refused


async def test_a_nul_or_control_character_in_an_egress_path_prefix_is_a_field_violation(proxy):
    org = str(uuid.uuid4())
    for prefix in ("/v1\x00", "/v1/\x1b[2J", "/v1 /x"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await proxy.stub.SetEgressPolicy(
                pb.SetEgressPolicyRequest(
                    organization_id=org,
                    rules=[pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="api.example.com", path_prefix=prefix)],
                ),
                metadata=OPERATOR,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in field_violations(caught.value)] == ["rules[0].path_prefix"]
    policy = await proxy.stub.GetEgressPolicy(pb.GetEgressPolicyRequest(organization_id=org), metadata=OPERATOR)
    assert list(policy.policy.rules) == []


async def test_forged_page_tokens_are_invalid_argument_on_every_list_rpc(proxy):
    org = await proxy.org_ready(credential=True)
    await proxy.put_secret(org, "value-1")
    await assert_hostile_tokens_refused(proxy.stub.ListSecrets, pb.ListSecretsRequest(organization_id=org), (str, str, uuid.UUID), OPERATOR)
    await assert_hostile_tokens_refused(
        proxy.stub.ListProviderCredentials, pb.ListProviderCredentialsRequest(organization_id=org), (str, str, int, uuid.UUID), OPERATOR
    )

"""The secret proxy in the real process tree (`switchboard up`): a worker's request through the
edge reaches a loopback upstream with its organisation's secret, another organisation's worker is
refused, and no process's log holds a secret value, a credential or a placeholder."""

from __future__ import annotations

import json

import grpc
import httpx
import pytest

from switchboard.identity.v1 import identity_service_pb2 as identity_pb
from switchboard.identity.v1 import identity_service_pb2_grpc
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc
from tests.e2e.test_up import start_stack, stop_stack, until_serving
from tests.support.asgi import serve_asgi
from tests.support.upstream import FakeUpstream

SECRET = "sk-e2e-SECRET-value-8d1f"
CREDENTIAL = "cred-e2e-CREDENTIAL-value-77aa"


@pytest.mark.database_layouts("pgbouncer", "four_databases")
async def test_a_worker_reaches_its_provider_through_the_stack_and_nothing_secret_reaches_the_logs(tmp_path):
    upstream = FakeUpstream()
    async with serve_asgi(upstream.app()) as upstream_url:
        stack = await start_stack(
            tmp_path, extra_env={"SWITCHBOARD_PROXY_UPSTREAMS": json.dumps({"demo": {"base_url": upstream_url, "allow_private": True}})}
        )
        try:
            for service in ("identity", "secretproxy"):
                await until_serving(stack.ports[service])
            operator = (("authorization", f"Bearer {stack.internal_token}"),)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.ports['identity']}") as identity_channel, grpc.aio.insecure_channel(
                f"127.0.0.1:{stack.ports['secretproxy']}"
            ) as proxy_channel:
                identity = identity_service_pb2_grpc.IdentityServiceStub(identity_channel)
                proxy = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(proxy_channel)
                workers, placeholders = [], []
                for name in ("a", "b"):
                    owner = await identity.SignUp(identity_pb.SignUpRequest(email=f"{name}@example.com", display_name=name), metadata=operator)
                    org = owner.organization.id
                    agent = await identity.CreateAgent(
                        identity_pb.CreateAgentRequest(organization_id=org, name="Helper"),
                        metadata=(*operator, ("x-switchboard-user-id", owner.user.id)),
                    )
                    token = await identity.IssueWorkerToken(identity_pb.IssueWorkerTokenRequest(agent_id=agent.agent.id), metadata=operator)
                    workers.append(token.token)
                    await proxy.SetEgressPolicy(
                        pb.SetEgressPolicyRequest(organization_id=org, rules=[pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="127.0.0.1")]),
                        metadata=operator,
                    )
                    if name == "a":
                        put = await proxy.PutSecret(pb.PutSecretRequest(organization_id=org, name="KEY", value=SECRET), metadata=operator)
                        placeholders.append(put.placeholder)
                        await proxy.PutProviderCredential(
                            pb.PutProviderCredentialRequest(organization_id=org, provider="demo", value=CREDENTIAL), metadata=operator
                        )
            edge = f"http://127.0.0.1:{stack.ports['edge']}/v1/proxy/demo"
            async with httpx.AsyncClient(timeout=30) as client:
                ok = await client.post(
                    f"{edge}/v1/chat", headers={"X-Switchboard-Token": workers[0], "X-Api-Key": placeholders[0]}, content=b'{"q": 1}'
                )
                assert ok.status_code == 200 and ok.json()["path"] == "/v1/chat"
                seen = upstream.received[-1]
                # The placeholder is the request's own credential: the stored one is not added.
                assert seen.header("x-api-key") == SECRET and seen.header("authorization") is None
                assert SECRET not in ok.text
                # A request without a credential of its own gets the organisation's.
                stored = await client.post(f"{edge}/v1/chat", headers={"X-Switchboard-Token": workers[0]}, content=b'{"q": 2}')
                assert stored.status_code == 200 and upstream.received[-1].header("authorization") == f"Bearer {CREDENTIAL}"
                assert CREDENTIAL not in stored.text
                refused = await client.post(f"{edge}/v1/chat", headers={"X-Switchboard-Token": workers[1], "X-Api-Key": placeholders[0]})
                assert refused.status_code == 401 and refused.json()["reason"] == "UNKNOWN_PLACEHOLDER"
                assert len(upstream.received) == 2
        finally:
            assert await stop_stack(stack) == 0
    logs = stack.logs()
    assert "rpc_finished" in logs and "Forward" in logs  # the logs were captured, and cover the proxy's calls
    for needle in (SECRET, CREDENTIAL, placeholders[0], *workers):
        assert needle not in logs

"""Every RPC of every service declares its authorization policy next to its handler; a new RPC
without one fails here (and is refused to every caller at run time)."""

from __future__ import annotations

import pytest

from switchboard.services.identity.agent_server import AgentService
from switchboard.services.identity.server import IdentityService
from switchboard.services.interactions.event_server import EventService
from switchboard.services.interactions.server import InteractionService
from switchboard.services.runs.server import RunService
from switchboard.services.secretproxy.server import SecretProxyService
from switchboard.shared.authz import SIGNED_IN, policy_of
from switchboard.identity.v1 import agent_service_pb2, identity_service_pb2
from switchboard.interactions.v1 import event_service_pb2, interaction_service_pb2
from switchboard.runs.v1 import run_service_pb2
from switchboard.secretproxy.v1 import secret_proxy_service_pb2

SERVICERS = [
    (identity_service_pb2, "IdentityService", IdentityService),
    (agent_service_pb2, "AgentService", AgentService),
    (interaction_service_pb2, "InteractionService", InteractionService),
    (event_service_pb2, "EventService", EventService),
    (secret_proxy_service_pb2, "SecretProxyService", SecretProxyService),
    (run_service_pb2, "RunService", RunService),
]
METHODS = [
    (servicer, method)
    for module, name, servicer in SERVICERS
    for method in module.DESCRIPTOR.services_by_name[name].methods
]


@pytest.mark.parametrize("servicer, method", METHODS, ids=[f"{s.__name__}.{m.name}" for s, m in METHODS])
def test_every_rpc_declares_a_policy_whose_fields_exist(servicer, method):
    declared = policy_of(getattr(servicer, method.name))
    assert declared is not None, f"{servicer.__name__}.{method.name} declares no @policy"
    fields = set(method.input_type.fields_by_name)
    named = [declared.agent, declared.connection, declared.stream, declared.target.field if declared.target else None]
    for field in filter(None, named):
        assert field in fields, f"{method.name}'s policy names {field!r}, which its request does not have"
    if declared.target is not None and declared.target.locate:
        assert callable(getattr(servicer, declared.target.locate, None)), f"no locator {declared.target.locate}"
    if method.client_streaming:
        assert not (declared.target or declared.agent or declared.connection or declared.stream)
    assert declared.user in (None, SIGNED_IN) or declared.target is not None


def test_secrets_are_never_for_workers_or_mere_members():
    for name in ("PutSecret", "RotateSecret", "DeleteSecret", "ListSecrets", "PutProviderCredential",
                 "ListProviderCredentials", "DeleteProviderCredential", "SetEgressPolicy"):  # fmt: skip
        declared = policy_of(getattr(SecretProxyService, name))
        assert declared.worker is None and declared.user is not None and declared.user >= 2, name


def test_the_readme_holds_the_matrix_of_the_code():
    from switchboard.policies import render
    from tests.conftest import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- policies:begin -->\n", 1)[1].split("\n<!-- policies:end -->", 1)[0]
    assert block == render(), "README.md's matrix is stale: paste the output of `switchboard policies`"

"""The checked-in generated code is exactly what protoc makes of protos/ today."""

from __future__ import annotations

import importlib

from switchboard.codegen import REPO_ROOT, generate, generated_files

SERVICES = {
    "switchboard.identity.v1.identity_service_pb2": ["IdentityService"],
    "switchboard.identity.v1.agent_service_pb2": ["AgentService"],
    "switchboard.interactions.v1.interaction_service_pb2": ["InteractionService"],
    "switchboard.interactions.v1.event_service_pb2": ["EventService"],
    "switchboard.secretproxy.v1.secret_proxy_service_pb2": ["SecretProxyService"],
    "switchboard.runs.v1.run_service_pb2": ["RunService"],
}


def test_generated_code_is_not_stale(tmp_path):
    fresh = generate(tmp_path)
    assert fresh == generated_files(), "generated files differ from the tree: run `switchboard codegen`"
    stale = [str(p) for p in fresh if (tmp_path / p).read_bytes() != (REPO_ROOT / p).read_bytes()]
    assert not stale, f"stale against protos/: {stale}; run `switchboard codegen` and commit the result"


def test_every_context_has_its_services_with_typed_stubs():
    for module_name, services in SERVICES.items():
        module = importlib.import_module(module_name)
        assert sorted(module.DESCRIPTOR.services_by_name) == services
        grpc_module = importlib.import_module(module_name + "_grpc")
        for service in services:
            assert hasattr(grpc_module, f"{service}Stub")
        assert (REPO_ROOT / (module_name.replace(".", "/") + ".pyi")).exists()


def test_rpcs_have_one_request_and_one_response_message_each():
    seen: set[str] = set()
    for module_name in SERVICES:
        module = importlib.import_module(module_name)
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert method.input_type.name == f"{method.name}Request", method.full_name
                assert method.output_type.name == f"{method.name}Response", method.full_name
                assert method.input_type.full_name not in seen
                seen.add(method.input_type.full_name)

"""compose.yaml cannot run here (no Docker engine), so its shape is checked by reading it: every
part present, commands the CLI accepts, ports and environment consistent with the configuration."""

from __future__ import annotations

import re

import pytest
import yaml

from switchboard.catalog import load_configuration
from switchboard.shared.config import SERVICES
from switchboard.shared.crypto import new_key_list
from switchboard.shared.worker_keys import parse_public_keys, parse_signing_key
from switchboard.cli import _parser
from tests.conftest import REPO_ROOT
from tests.support.worker_keys import PUBLIC_KEYS_SETTING, SIGNING_KEY_SETTING

COMPOSE = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
PARTS = COMPOSE["services"]


def substituted(env: dict[str, str]) -> dict[str, str]:
    """Compose's ${VAR:-default} and ${VAR:?message} with nothing set in the shell."""

    def one(value: str) -> str:
        value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
        value = re.sub(r"\$\{SWITCHBOARD_CREDENTIALS_KEYS:\?[^}]*\}", new_key_list(), value)
        value = re.sub(r"\$\{SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY:\?[^}]*\}", SIGNING_KEY_SETTING, value)
        value = re.sub(r"\$\{SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS:\?[^}]*\}", PUBLIC_KEYS_SETTING, value)
        return re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "x" * 40, value)

    return {key: one(value) for key, value in env.items()}


def settings_of(environment: dict[str, str]):
    """The platform's settings of a part, every class read (an unknown name anywhere would raise)."""
    return load_configuration(environment).platform


def test_every_part_is_present():
    assert set(PARTS) == {"postgres", "migrate", *SERVICES, "edge"}
    assert PARTS["postgres"]["image"].startswith("postgres:")


@pytest.mark.parametrize("part", ["migrate", *SERVICES, "edge"])
def test_commands_are_ones_the_cli_accepts(part):
    command = PARTS[part]["command"]
    assert command[0] == "switchboard"
    args = _parser().parse_args(command[1:])
    if part == "migrate":
        assert args.command == "migrate"
    else:
        assert (args.command, args.service) == ("serve", part)


@pytest.mark.parametrize("part", [*SERVICES, "edge"])
def test_health_checks_use_the_cli_for_the_same_service(part):
    test = PARTS[part]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:] == ["switchboard", "health", part]


@pytest.mark.parametrize("part", ["migrate", *SERVICES, "edge"])
def test_environment_is_a_valid_configuration_with_consistent_ports(part):
    settings = settings_of(substituted(PARTS[part]["environment"]))  # unknown names would raise
    assert settings.database_url and "@postgres:5432/" in settings.database_url
    assert settings.bind_host == "0.0.0.0"
    for service in SERVICES:
        # Clients reach each service by its compose name, on the port the service listens on.
        assert settings.target_of(service) == f"dns:///{service}:{settings.port_of(service)}"


def test_services_start_after_migrations_and_the_edge_after_healthy_services():
    for service in SERVICES:
        assert PARTS[service]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert "replicas" in PARTS[service]["deploy"]
    assert PARTS["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert PARTS["edge"]["depends_on"] == {s: {"condition": "service_healthy"} for s in SERVICES}


def test_only_the_edge_is_published_on_the_host_at_its_configured_port():
    published = {part: spec.get("ports") for part, spec in PARTS.items() if spec.get("ports")}
    edge_port = settings_of(substituted(PARTS["edge"]["environment"])).edge_port
    assert published == {"edge": [f"${{EDGE_HOST_PORT:-8080}}:{edge_port}"]}


def test_only_identity_gets_the_private_key_and_every_part_the_public_keys():
    holders = {part for part, spec in PARTS.items() if "SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY" in spec.get("environment", {})}
    assert holders == {"identity"}
    for part in ["migrate", *SERVICES, "edge"]:
        settings = settings_of(substituted(PARTS[part]["environment"]))
        assert settings.worker_token_public_keys == PUBLIC_KEYS_SETTING
    identity = settings_of(substituted(PARTS["identity"]["environment"]))
    assert identity.worker_token_signing_key == SIGNING_KEY_SETTING
    # Both come from the operator's environment, never from a value written in the file.
    raw = PARTS["identity"]["environment"]
    assert raw["SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY"].startswith("${SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY:?")
    assert raw["SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS"].startswith("${SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS:?")
    signing = parse_signing_key(identity.worker_token_signing_key)
    assert signing.kid in parse_public_keys(identity.worker_token_public_keys)


def test_no_part_names_the_old_shared_worker_token_key():
    assert "SWITCHBOARD_WORKER_TOKEN_KEY" not in (REPO_ROOT / "compose.yaml").read_text()
    assert "WORKER_TOKEN" not in (REPO_ROOT / "Dockerfile").read_text()


def test_a_service_setting_given_in_compose_reaches_that_service_own_settings():
    environment = {**PARTS["secretproxy"]["environment"], "SWITCHBOARD_PROXY_UPSTREAMS": '{"demo": "https://demo.example"}'}
    configuration = load_configuration(substituted(environment))
    assert configuration.of("secretproxy").proxy_upstreams == '{"demo": "https://demo.example"}'
    # The compose file passes only names some settings class declares: a renamed one would raise.
    for part in ["migrate", *SERVICES, "edge"]:
        load_configuration(substituted(PARTS[part]["environment"]))

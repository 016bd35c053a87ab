"""Configuration: typed values, defaults, and a clear failure for anything malformed or unknown."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from switchboard.shared.config import ConfigError, Settings, env_names, load_settings
from switchboard.shared.worker_keys import SigningKey, parse_public_keys, parse_signing_key, same_key


def test_defaults_match_the_documented_ports():
    settings = load_settings({})
    assert [settings.port_of(s) for s in ("identity", "interactions", "secretproxy", "runs", "edge")] == [
        50051,
        50052,
        50053,
        50054,
        8080,
    ]
    assert settings.data_dir == Path(".switchboard")
    assert settings.database_url is None


def test_values_are_parsed_into_their_types():
    settings = load_settings(
        {
            "SWITCHBOARD_IDENTITY_PORT": "6000",
            "SWITCHBOARD_DEFAULT_DEADLINE_SECONDS": "2.5",
            "SWITCHBOARD_LOG_LEVEL": "DEBUG",
            "DATABASE_URL": "postgresql://u@db/x",
            "SWITCHBOARD_RUNS_TARGET": "dns:///runs:50054",
        }
    )
    assert settings.identity_port == 6000
    assert settings.default_deadline_seconds == 2.5
    assert settings.log_level == "debug"
    assert settings.target_of("runs") == "dns:///runs:50054"
    assert settings.target_of("identity") == "127.0.0.1:6000"


def test_every_problem_is_reported_at_once_with_the_variable_name():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "SWITCHBOARD_IDENTITY_PORT": "fifty",
                "SWITCHBOARD_RUNS_PORT": "70000",
                "SWITCHBOARD_LOG_LEVEL": "loud",
                "SWITCHBOARD_IDENTTY_PORT": "1",
            }
        )
    message = str(caught.value)
    assert "SWITCHBOARD_IDENTITY_PORT: expected an integer, got 'fifty'" in message
    assert "SWITCHBOARD_RUNS_PORT: expected an integer from 0 to 65535, got 70000" in message
    assert "SWITCHBOARD_LOG_LEVEL: expected one of debug, info, warning, error" in message
    assert "SWITCHBOARD_IDENTTY_PORT: unknown setting" in message


def test_a_short_secret_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as caught:
        load_settings({"SWITCHBOARD_INTERNAL_TOKEN": "hunter2"})
    assert "SWITCHBOARD_INTERNAL_TOKEN: must be at least 32 characters" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_secrets_stay_out_of_repr():
    settings = load_settings({"SWITCHBOARD_INTERNAL_TOKEN": "s" * 40, "DATABASE_URL": "postgresql://u:pw@db/x"})
    assert "s" * 40 not in repr(settings) and "pw@" not in repr(settings)


def test_require_names_the_missing_variables():
    with pytest.raises(ConfigError, match="SWITCHBOARD_INTERNAL_TOKEN, DATABASE_URL"):
        Settings().require("internal_token", "database_url")


def test_empty_values_count_as_unset():
    assert load_settings({"SWITCHBOARD_IDENTITY_PORT": ""}).identity_port == 50051


def test_every_variable_is_prefixed_or_a_known_standard_name():
    from switchboard.catalog import OWN_SETTINGS

    for name in [n for cls in (Settings, *OWN_SETTINGS.values()) for n in cls.env_names().values()]:
        assert name.startswith("SWITCHBOARD_") or name in {
            "DATABASE_URL",
            "SUPABASE_URL",
            "SUPABASE_SERVICE_ROLE_KEY",
            "SUPPORT_BOT_EMAIL_DOMAIN",
        }


def test_the_old_shared_worker_token_key_is_an_unknown_setting():
    with pytest.raises(ConfigError, match="SWITCHBOARD_WORKER_TOKEN_KEY: unknown setting"):
        load_settings({"SWITCHBOARD_WORKER_TOKEN_KEY": "k" * 48})


def test_worker_token_keys_are_read_in_every_documented_form():
    signing = SigningKey.generate("k1")
    pem_private = signing.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pem_public = signing.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    other = SigningKey.generate("k0")
    raw_public = signing.public_setting().partition(":")[2]
    forms = {
        "raw": (signing.setting(), f"{other.public_setting()}, {signing.public_setting()}"),
        "pem": (f"k1:{pem_private}", f"k1:{pem_public},{other.public_setting()}"),
        "json": (signing.setting(), json.dumps({"k1": raw_public, "k0": other.public_setting().partition(":")[2]})),
    }
    for private, public in forms.values():
        settings = load_settings({"SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY": private, "SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS": public})
        key = parse_signing_key(settings.worker_token_signing_key)
        keys = parse_public_keys(settings.worker_token_public_keys)
        assert key.kid == "k1" and set(keys) == {"k0", "k1"}
        assert same_key(keys["k1"], signing.public_key) and same_key(key.public_key, signing.public_key)


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY", "{material}", "expected 'kid:key', got an item without a key id"),
        ("SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY", "k1:{material}xx", "key 'k1': not base64"),
        ("SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY", "k 1:{material}", "a key id must be 1 to 64 letters"),
        ("SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS", "k1:{material},k1:{material}", "key 'k1': listed twice"),
        ("SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS", "k1:{short}", "key 'k1': expected a 32-byte raw Ed25519 key, got 16 bytes"),
        ("SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS", '{{"k1": 7}}', "expected a JSON object of key id"),
        ("SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS", "k1:-----BEGIN PUBLIC KEY-----\n{material}\n-----END PUBLIC KEY-----", "key 'k1': not a PEM public key"),
    ],
)
def test_a_malformed_worker_token_key_is_refused_without_echoing_it(name, value, problem):
    material = base64.b64encode(os.urandom(32)).decode()
    value = value.format(material=material, short=base64.b64encode(os.urandom(16)).decode())
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    assert f"{name}: {problem}" in str(caught.value)
    assert material not in str(caught.value) and material[:12] not in str(caught.value)


def test_the_signing_key_stays_out_of_repr():
    signing = SigningKey.generate("k1")
    settings = load_settings({"SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY": signing.setting()})
    assert signing.setting().partition(":")[2] not in repr(settings)
    assert signing.setting().partition(":")[2] not in repr(signing)

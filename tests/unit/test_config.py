"""Configuration: typed values, defaults, and a clear failure for anything malformed or unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import ConfigError, Settings, env_names, load_settings


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
    for name in env_names().values():
        assert name.startswith("SWITCHBOARD_") or name in {
            "DATABASE_URL",
            "SUPABASE_URL",
            "SUPABASE_SERVICE_ROLE_KEY",
            "SUPPORT_BOT_EMAIL_DOMAIN",
            "RUNS_REAPER_INTERVAL_SECONDS",
            "RUNS_REAPER_STALE_AFTER_SECONDS",
            "RUNS_REAPER_BATCH_SIZE",
        }

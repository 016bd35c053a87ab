"""Settings per context, read together: each service's own class under its own prefixes, every
variable a process reads checked at start (a typo anywhere under a claimed prefix stops it with
the name it most likely meant), and every problem reported in one ConfigError."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.catalog import OWN_SETTINGS, configure, load_configuration, service, services
from switchboard.services.runs.settings import RunsSettings
from switchboard.shared.config import SERVICES, Settings
from switchboard.shared.settings import ConfigError, edit_distance
from tests.conftest import REPO_ROOT

ALL_CLASSES = [Settings, *OWN_SETTINGS.values()]


@pytest.mark.parametrize(
    "typo, meant",
    [
        ("RUNS_REAPER_INTERVAL_SECOND", "RUNS_REAPER_INTERVAL_SECONDS"),
        ("RUNS_REAPR_BATCH_SIZE", "RUNS_REAPER_BATCH_SIZE"),  # under RUNS_, a prefix other programs may use
        ("SUPABASE_UR", "SUPABASE_URL"),
        ("SUPABASE_SERVICE_ROEL_KEY", "SUPABASE_SERVICE_ROLE_KEY"),
        ("SUPPORT_BOT_EMAIL_DOMIAN", "SUPPORT_BOT_EMAIL_DOMAIN"),
        ("SWITCHBOARD_EVENTS_MAX_LAGG", "SWITCHBOARD_EVENTS_MAX_LAG"),
        ("SWITCHBOARD_PROXY_UPSTREAM", "SWITCHBOARD_PROXY_UPSTREAMS"),
        ("SWITCHBOARD_EDGE_MAX_BODY_BYTE", "SWITCHBOARD_EDGE_MAX_BODY_BYTES"),
        ("SWITCHBOARD_IDP_TIMEOUT_SECOND", "SWITCHBOARD_IDP_TIMEOUT_SECONDS"),
        ("SWITCHBOARD_LGO_LEVEL", "SWITCHBOARD_LOG_LEVEL"),
    ],
)
def test_a_typo_of_any_variable_stops_start_up_naming_what_it_meant(typo, meant):
    with pytest.raises(ConfigError) as caught:
        load_configuration({typo: "1"})
    assert f"{typo}: unknown setting (did you mean {meant}?)" in str(caught.value)


def test_every_problem_of_every_context_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_configuration(
            {
                "RUNS_REAPER_INTERVAL_SECOND": "5",
                "SUPABASE_UR": "https://x.supabase.co",
                "SWITCHBOARD_EVENTS_MAX_LAG": "lots",
                "SWITCHBOARD_PROXY_UPSTREAMS": "[1]",
                "SWITCHBOARD_LOG_LEVEL": "loud",
                "SWITCHBOARD_NO_SUCH_THING": "1",
            }
        )
    problems = str(caught.value).splitlines()[1:]
    assert len(problems) == 6, problems
    message = str(caught.value)
    assert "SWITCHBOARD_EVENTS_MAX_LAG: expected an integer, got 'lots'" in message
    assert "SWITCHBOARD_PROXY_UPSTREAMS: " in message
    assert "SWITCHBOARD_NO_SUCH_THING: unknown setting (see the README's configuration table)" in message


def test_other_programs_variables_under_a_shared_prefix_are_left_alone():
    # Supabase's own tooling reads these beside ours; RUNS_ is too generic to claim whole.
    configuration = load_configuration({"SUPABASE_ANON_KEY": "k", "SUPABASE_JWT_SECRET": "s", "SUPABASE_DB_URL": "postgresql://x", "RUNS_PER_DAY": "3"})
    assert configuration.of("identity").supabase_url is None
    with pytest.raises(ConfigError, match="RUNS_REAPER_SOMETHING_NEW: unknown setting"):
        load_configuration({"RUNS_REAPER_SOMETHING_NEW": "1"})  # RUNS_REAPER_ is ours alone


def test_each_context_reads_its_own_variables_into_its_own_class():
    configuration = load_configuration(
        {
            "RUNS_REAPER_INTERVAL_SECONDS": "5",
            "SUPABASE_URL": "https://x.supabase.co/",
            "SUPPORT_BOT_EMAIL_DOMAIN": "Bots.Example.COM",
            "SWITCHBOARD_EVENTS_MAX_LAG": "7",
            "SWITCHBOARD_PROXY_MAX_BODY_BYTES": "100",
            "SWITCHBOARD_EDGE_MAX_BODY_BYTES": "2048",
            "SWITCHBOARD_IDENTITY_PORT": "6000",
        }
    )
    assert configuration.of("runs") == RunsSettings(runs_reaper_interval_seconds=5.0)
    assert configuration.of("identity").supabase_url == "https://x.supabase.co"
    assert configuration.of("identity").support_bot_email_domain == "bots.example.com"
    assert configuration.of("interactions").events_max_lag == 7
    assert configuration.of("secretproxy").proxy_max_body_bytes == 100
    assert configuration.of("edge").edge_max_body_bytes == 2048
    assert configuration.platform.identity_port == 6000
    assert not hasattr(configuration.platform, "runs_reaper_interval_seconds")


def test_every_variable_and_every_attribute_is_declared_once():
    names = [name for cls in ALL_CLASSES for name in cls.known_names()]
    attributes = [f.name for cls in ALL_CLASSES for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)) and len(attributes) == len(set(attributes))
    # Each variable is under a prefix its class claims (or is a standard name), so a typo of it is caught.
    for cls in ALL_CLASSES:
        for name in cls.known_names():
            assert name == "DATABASE_URL" or any(name.startswith(p.text) for c in ALL_CLASSES for p in c.PREFIXES), name


def test_the_runs_settings_are_read_under_their_switchboard_name_and_their_first_name():
    assert load_configuration({"SWITCHBOARD_RUNS_REAPER_BATCH_SIZE": "7"}).of("runs").runs_reaper_batch_size == 7
    assert load_configuration({"RUNS_REAPER_BATCH_SIZE": "8"}).of("runs").runs_reaper_batch_size == 8
    both = {"RUNS_REAPER_BATCH_SIZE": "9", "SWITCHBOARD_RUNS_REAPER_BATCH_SIZE": "9"}
    assert load_configuration(both).of("runs").runs_reaper_batch_size == 9
    with pytest.raises(ConfigError, match="SWITCHBOARD_RUNS_REAPER_BATCH_SIZE: set again, to another value, as RUNS_REAPER_BATCH_SIZE"):
        load_configuration({**both, "RUNS_REAPER_BATCH_SIZE": "10"})
    with pytest.raises(ConfigError, match=r"did you mean SWITCHBOARD_RUNS_REAPER_STALE_AFTER_SECONDS\?"):
        load_configuration({"SWITCHBOARD_RUNS_REAPER_STALE_AFTER_SECOND": "5"})


def test_configure_routes_each_value_to_the_class_that_declares_it():
    configuration = configure(database_url="postgresql://x/y", runs_reaper_batch_size=3, events_max_lag=4)
    assert configuration.platform.database_url == "postgresql://x/y"
    assert configuration.of("runs").runs_reaper_batch_size == 3
    assert configuration.replace(events_max_lag=5).of("interactions").events_max_lag == 5
    with pytest.raises(TypeError, match="no settings class declares 'reaper_speed'"):
        configure(reaper_speed=1)


def test_edit_distance_counts_inserts_deletes_replacements_and_swaps():
    assert edit_distance("SUPABASE_UR", "SUPABASE_URL", 2) == 1
    assert edit_distance("RUNS_REAPER_BATHC_SIZE", "RUNS_REAPER_BATCH_SIZE", 2) == 1  # one swap
    assert edit_distance("SUPABASE_DB_URL", "SUPABASE_URL", 2) == 3  # beyond the bound: not a typo


def test_every_service_declares_its_shape():
    assert [s.name for s in services()] == list(SERVICES)
    for name in SERVICES:
        declared = service(name)
        assert declared.schema == name
        assert declared.settings is OWN_SETTINGS[name]
        assert (REPO_ROOT / "switchboard" / "migrations" / name).is_dir()
        assert declared.default_port == Settings().port_of(name)
        assert declared.servicers, f"{name} serves nothing"


def test_the_platform_imports_no_service_and_no_contract():
    contexts = ("services", *SERVICES)
    for path in (REPO_ROOT / "switchboard" / "shared").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            for module in modules:
                parts = module.split(".")
                assert not (parts[0] == "switchboard" and len(parts) > 1 and parts[1] in contexts), f"{path} imports {module}"


def test_the_readme_documents_every_variable_and_no_other():
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    declared = {name for cls in ALL_CLASSES for name in cls.known_names()}
    declared_targets = {f"SWITCHBOARD_{s.upper()}_TARGET" for s in SERVICES}
    documented = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", section, flags=re.M):
        names = re.findall(r"`([A-Z_<>]+)`", cell)
        first, suffixes = names[0], [n for n in names[1:] if n.startswith("_")]
        documented |= {n for n in names[1:] if not n.startswith("_")}  # "`A` or `B`": an older name
        if first == "SWITCHBOARD_<SERVICE>_TARGET":
            documented |= declared_targets
            continue
        assert first in declared, f"{first} is in the README's table but not declared"
        documented.add(first)
        # "`A` / `_SUFFIX`" names A's siblings: the suffix replaces some of A's last words.
        words = first.split("_")
        for suffix in suffixes:
            siblings = {"_".join(words[: len(words) - k]) + suffix for k in range(len(words))} & declared
            assert siblings, f"{suffix} (after {first}) names no declared variable"
            documented |= siblings
    assert declared - documented == set(), "declared but not in the README's table"


def test_a_typo_stops_the_cli_before_anything_starts(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "RUNS_REAPER_INTERVAL_SECOND": "5", "SUPABASE_UR": "https://x"}
    cli = Path(sys.executable).parent / "switchboard"
    result = subprocess.run([str(cli), "health", "runs"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "RUNS_REAPER_INTERVAL_SECOND: unknown setting (did you mean RUNS_REAPER_INTERVAL_SECONDS?)" in result.stderr
    assert "SUPABASE_UR: unknown setting (did you mean SUPABASE_URL?)" in result.stderr


@pytest.mark.parametrize("value", ["1_000", "\u0663", "\uff11\uff10", "1e3", "0x10", ""])
def test_a_number_setting_takes_ascii_digits_only(value):
    # int() reads "1_000" and "٣" (Arabic-Indic three): a value nobody types on purpose.
    with pytest.raises(ConfigError, match="SWITCHBOARD_EDGE_SSE_MAX_CLIENTS: expected an integer"):
        load_configuration({"SWITCHBOARD_EDGE_SSE_MAX_CLIENTS": value or " "})


@pytest.mark.parametrize("value", ["1_0", "\u0663", "nan", "infinity", "0x1"])
def test_a_seconds_setting_takes_an_ascii_decimal_only(value):
    with pytest.raises(ConfigError, match="SWITCHBOARD_REVOCATION_REFRESH_SECONDS: expected"):
        load_configuration({"SWITCHBOARD_REVOCATION_REFRESH_SECONDS": value})


def test_plain_numbers_still_read():
    configuration = load_configuration(
        {"SWITCHBOARD_EDGE_SSE_MAX_CLIENTS": " 250 ", "SWITCHBOARD_REVOCATION_REFRESH_SECONDS": "2.5", "SWITCHBOARD_DEFAULT_DEADLINE_SECONDS": "1e1"}
    )
    assert configuration.of("edge").edge_sse_max_clients == 250
    assert (configuration.platform.revocation_refresh_seconds, configuration.platform.default_deadline_seconds) == (2.5, 10.0)

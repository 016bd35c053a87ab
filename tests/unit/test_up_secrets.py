"""The secrets `switchboard up` generates into its data directory, worker-token keys included."""

from __future__ import annotations

import json
import stat

from switchboard.shared.config import Settings
from switchboard.shared.worker_keys import SigningKey, parse_public_keys, parse_signing_key, same_key
from switchboard.supervisor import load_or_create_secrets, worker_token_keys


def test_a_new_data_directory_gets_a_worker_token_key_pair_once(tmp_path):
    first = load_or_create_secrets(tmp_path)
    key = parse_signing_key(first["worker_token_signing_key"])
    assert load_or_create_secrets(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    keys = worker_token_keys(Settings(), first)
    assert keys["worker_token_signing_key"] == first["worker_token_signing_key"]
    assert same_key(parse_public_keys(keys["worker_token_public_keys"])[key.kid], key.public_key)


def test_an_old_data_directory_loses_its_shared_hmac_key_and_keeps_the_rest(tmp_path):
    old = {"internal_token": "i" * 43, "worker_token_key": "w" * 64, "credentials_keys": "k1:" + "A" * 43 + "="}
    (tmp_path / "secrets.json").write_text(json.dumps(old))
    upgraded = load_or_create_secrets(tmp_path)
    assert "worker_token_key" not in upgraded and "w" * 64 not in (tmp_path / "secrets.json").read_text()
    assert (upgraded["internal_token"], upgraded["credentials_keys"]) == (old["internal_token"], old["credentials_keys"])
    parse_signing_key(upgraded["worker_token_signing_key"])


def test_keys_from_the_environment_win_over_the_data_directory(tmp_path):
    stored = load_or_create_secrets(tmp_path)
    mine, other = SigningKey.generate("mine"), SigningKey.generate("old")
    alone = worker_token_keys(Settings(worker_token_signing_key=mine.setting()), stored)
    assert alone == {"worker_token_signing_key": mine.setting(), "worker_token_public_keys": mine.public_setting()}
    published = f"{other.public_setting()},{mine.public_setting()}"
    rotating = worker_token_keys(Settings(worker_token_signing_key=mine.setting(), worker_token_public_keys=published), stored)
    assert rotating == {"worker_token_signing_key": mine.setting(), "worker_token_public_keys": published}

"""Worker tokens: what they carry, and every way a bad one is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.auth import Authenticator, InternalCaller, WorkerPrincipal, WorkerTokens
from shared.errors import Unauthenticated

KEY = "k" * 64
TOKENS = WorkerTokens(KEY)


def issue(**overrides) -> str:
    args = {"organization_id": "0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", "agent_id": "2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", "connection_id": "3f8d4a7b-9c4e-4f4b-8a4d-3e0a7c6b5d44", "ttl": timedelta(minutes=5)}
    args.update(overrides)
    return TOKENS.issue(**args).token


def test_a_token_carries_organisation_agent_connection_expiry_and_a_unique_id():
    first = TOKENS.issue(organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", agent_id="2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", connection_id="3f8d4a7b-9c4e-4f4b-8a4d-3e0a7c6b5d44", ttl=timedelta(minutes=5))
    second = TOKENS.issue(organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", agent_id="2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", connection_id="3f8d4a7b-9c4e-4f4b-8a4d-3e0a7c6b5d44", ttl=timedelta(minutes=5))
    principal = TOKENS.verify(first.token)
    assert principal == WorkerPrincipal("0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", "2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", "3f8d4a7b-9c4e-4f4b-8a4d-3e0a7c6b5d44", first.token_id, first.expires_at)
    assert first.token_id != second.token_id


def test_expired_tokens_are_refused():
    token = issue(ttl=timedelta(seconds=1), now=datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(Unauthenticated) as caught:
        TOKENS.verify(token)
    assert caught.value.reason == "TOKEN_EXPIRED"


def _reencode_claims(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_a_token_whose_claims_were_changed_is_refused():
    with pytest.raises(Unauthenticated) as caught:
        TOKENS.verify(_reencode_claims(issue(), org="1d6b2e5f-7a2c-4d2f-8e2b-1c8e5a4f3b22"))
    assert caught.value.reason == "TOKEN_INVALID"


def test_unsigned_and_foreign_algorithm_tokens_are_refused():
    claims = jwt.decode(issue(), KEY, algorithms=["HS256"], audience="switchboard")
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(Unauthenticated):
        TOKENS.verify(unsigned)
    other_alg = jwt.encode(claims, KEY, algorithm="HS512")
    with pytest.raises(Unauthenticated):
        TOKENS.verify(other_alg)


def test_a_token_without_organisation_is_refused():
    claims = jwt.decode(issue(), KEY, algorithms=["HS256"], audience="switchboard")
    del claims["org"]
    with pytest.raises(Unauthenticated) as caught:
        TOKENS.verify(jwt.encode(claims, KEY, algorithm="HS256"))
    assert caught.value.reason == "TOKEN_MALFORMED"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000])
def test_garbage_is_refused(garbage):
    with pytest.raises(Unauthenticated):
        TOKENS.verify(garbage)


def test_the_internal_token_makes_an_internal_caller():
    authenticator = Authenticator("i" * 40, TOKENS)
    assert authenticator.authenticate([("authorization", "Bearer " + "i" * 40)]) == InternalCaller(None)
    assert isinstance(authenticator.authenticate([("authorization", "Bearer " + issue())]), WorkerPrincipal)


def test_a_token_whose_ids_are_not_uuids_is_refused():
    token = jwt.encode(
        {**jwt.decode(issue(), KEY, algorithms=["HS256"], audience="switchboard"), "org": "org-1"}, KEY, algorithm="HS256"
    )
    with pytest.raises(Unauthenticated) as caught:
        TOKENS.verify(token)
    assert caught.value.reason == "TOKEN_MALFORMED"

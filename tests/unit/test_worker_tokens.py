"""Worker tokens: what they carry, which keys verify them, and every way a bad one is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

import switchboard.shared.auth
from switchboard.shared.auth import Authenticator, InternalCaller, WorkerPrincipal, WorkerTokenIssuer, WorkerTokens
from switchboard.shared.errors import Unauthenticated
from switchboard.shared.worker_keys import SigningKey

ORG, AGENT, CONNECTION = "0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", "2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", "3f8d4a7b-9c4e-4f4b-8a4d-3e0a7c6b5d44"
KEY = SigningKey.generate("k1")
ISSUER = WorkerTokenIssuer(KEY)
TOKENS = WorkerTokens({"k1": KEY.public_key})
OLD_SHARED_KEY = "test-worker-token-key-" + "k" * 32  # what every service held under HS256


def issue(issuer: WorkerTokenIssuer = ISSUER, **overrides) -> str:
    args = {"organization_id": ORG, "agent_id": AGENT, "connection_id": CONNECTION, "ttl": timedelta(minutes=5)}
    args.update(overrides)
    return issuer.issue(**args).token


def claims_of(token: str) -> dict:
    return jwt.decode(token, KEY.public_key, algorithms=["EdDSA"], audience="switchboard")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict, claims: dict, secret: bytes | None) -> str:
    """A JWT built by hand, as an attacker would (PyJWT itself refuses to key HMAC with a public
    key): HS256 over ``secret``, or no signature at all when ``secret`` is None."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def hand_signed_eddsa(header: dict, claims: dict) -> str:
    """A JWT signed with the trusted private key, whatever its header says."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return signing_input + "." + _b64(KEY.private_key.sign(signing_input.encode()))


def refused_as_not_valid(token: str, tokens: WorkerTokens = TOKENS) -> None:
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(token)
    assert (caught.value.reason, caught.value.message) == ("TOKEN_INVALID", "the bearer token is not valid")


def test_a_token_carries_organisation_agent_connection_expiry_a_unique_id_and_its_key_id():
    first = ISSUER.issue(organization_id=ORG, agent_id=AGENT, connection_id=CONNECTION, ttl=timedelta(minutes=5))
    second = ISSUER.issue(organization_id=ORG, agent_id=AGENT, connection_id=CONNECTION, ttl=timedelta(minutes=5))
    principal = TOKENS.verify(first.token)
    assert principal == WorkerPrincipal(ORG, AGENT, CONNECTION, first.token_id, first.expires_at)
    assert first.token_id != second.token_id
    assert jwt.get_unverified_header(first.token) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}


def test_expired_tokens_are_refused_as_expired():
    token = issue(ttl=timedelta(seconds=1), now=datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(Unauthenticated) as caught:
        TOKENS.verify(token)
    assert caught.value.reason == "TOKEN_EXPIRED"


def test_a_token_whose_claims_were_changed_is_refused():
    header, payload, signature = issue().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = _b64(json.dumps({**claims, "org": "1d6b2e5f-7a2c-4d2f-8e2b-1c8e5a4f3b22"}).encode())
    refused_as_not_valid(f"{header}.{forged}.{signature}")


PUBLIC_RAW = KEY.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
PUBLIC_PEM = KEY.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    "secret",
    [PUBLIC_RAW, PUBLIC_PEM, base64.b64encode(PUBLIC_RAW), KEY.public_setting().encode()],
    ids=["raw-bytes", "pem", "base64", "setting"],
)
def test_hs256_keyed_with_the_public_key_is_refused(secret):
    # The classic algorithm confusion: the public key is public, so whoever holds it must not be
    # able to use it as an HMAC secret.
    refused_as_not_valid(hand_signed({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims_of(issue()), secret))


def test_tokens_of_the_old_shared_key_scheme_are_refused():
    old = jwt.encode({**claims_of(issue())}, OLD_SHARED_KEY, algorithm="HS256")
    refused_as_not_valid(old)
    refused_as_not_valid(jwt.encode({**claims_of(issue())}, OLD_SHARED_KEY, algorithm="HS256", headers={"kid": "k1"}))


def test_unsigned_tokens_are_refused():
    refused_as_not_valid(hand_signed({"alg": "none", "typ": "JWT", "kid": "k1"}, claims_of(issue()), None))
    refused_as_not_valid(jwt.encode(claims_of(issue()), None, algorithm="none", headers={"kid": "k1"}))


def test_unknown_missing_or_odd_key_ids_are_refused():
    refused_as_not_valid(issue(WorkerTokenIssuer(SigningKey.generate("k9"))))
    no_kid = jwt.encode(claims_of(issue()), KEY.private_key, algorithm="EdDSA")  # identity's real key
    refused_as_not_valid(no_kid)
    assert TOKENS.verify(hand_signed_eddsa({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}, claims_of(issue()))).agent_id == AGENT
    for kid in (7, None, ["k1"], {"k1": "k1"}):
        refused_as_not_valid(hand_signed_eddsa({"alg": "EdDSA", "typ": "JWT", "kid": kid}, claims_of(issue())))


def test_a_token_signed_by_another_key_under_a_trusted_key_id_is_refused():
    refused_as_not_valid(issue(WorkerTokenIssuer(SigningKey.generate("k1"))))


def test_rotation_keeps_tokens_of_the_previous_key_while_its_public_key_is_published():
    new_key = SigningKey.generate("k2")
    before, after = issue(), issue(WorkerTokenIssuer(new_key))
    during = WorkerTokens({"k1": KEY.public_key, "k2": new_key.public_key})
    assert during.verify(before).organization_id == ORG and during.verify(after).organization_id == ORG
    once_expired = WorkerTokens({"k2": new_key.public_key})
    assert once_expired.verify(after).agent_id == AGENT
    refused_as_not_valid(before, once_expired)


def test_a_verifier_holds_public_keys_only_and_cannot_issue():
    assert not hasattr(TOKENS, "issue")
    with pytest.raises(ValueError, match="empty"):
        WorkerTokens({})


def test_a_token_without_organisation_is_refused_where_organisations_are_required():
    token = issue(organization_id=None)
    with pytest.raises(Unauthenticated) as caught:
        TOKENS.verify(token)
    assert caught.value.reason == "TOKEN_MALFORMED"
    assert WorkerTokens({"k1": KEY.public_key}, require_organization=False).verify(token).organization_id is None


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000, "e30.e30.", "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.AAAA"])
def test_garbage_is_refused(garbage):
    refused_as_not_valid(garbage)


def test_the_internal_token_makes_an_internal_caller():
    authenticator = Authenticator("i" * 40, TOKENS)
    assert authenticator.authenticate([("authorization", "Bearer " + "i" * 40)]) == InternalCaller(None)
    assert isinstance(authenticator.authenticate([("authorization", "Bearer " + issue())]), WorkerPrincipal)


def test_an_unknown_bearer_token_is_reported_as_not_valid_whatever_it_was_meant_to_be():
    # A mistyped internal token used to be reported as "the worker token is malformed".
    authenticator = Authenticator("i" * 40, TOKENS)
    for token in ("i" * 39 + "j", "not-a-token", "a.b.c", issue(WorkerTokenIssuer(SigningKey.generate("k9")))):
        with pytest.raises(Unauthenticated) as caught:
            authenticator.authenticate([("authorization", f"Bearer {token}")])
        assert (caught.value.reason, caught.value.message) == ("TOKEN_INVALID", "the bearer token is not valid")
        assert "worker" not in caught.value.message and "internal" not in caught.value.message


def test_a_token_whose_ids_are_not_uuids_is_refused():
    token = jwt.encode({**claims_of(issue()), "org": "org-1"}, KEY.private_key, algorithm="EdDSA", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated) as caught:
        TOKENS.verify(token)
    assert caught.value.reason == "TOKEN_MALFORMED"


def test_verified_tokens_are_cached_up_to_a_bound(monkeypatch):
    monkeypatch.setattr(switchboard.shared.auth, "_VERIFIED_CACHE_SIZE", 3)
    tokens = WorkerTokens({"k1": KEY.public_key})
    issued = [issue() for _ in range(5)]
    for token in issued:
        tokens.verify(token)
    assert list(tokens._verified) == issued[2:]  # the oldest went first
    verified = tokens._verified[issued[-1]]
    assert tokens.verify(issued[-1]) is verified  # the cached answer, not a second check

"""The worker-token keys of the tests, as a deployment has them: identity's signing key (the only
one that can mint tokens) and the verification key set every service is configured with."""

from __future__ import annotations

from switchboard.shared.auth import WorkerTokenIssuer, WorkerTokens
from switchboard.shared.worker_keys import SigningKey, parse_public_keys

SIGNING_KEY = SigningKey.generate("tests-1")
SIGNING_KEY_SETTING = SIGNING_KEY.setting()
"""SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY: the identity service's alone."""
PUBLIC_KEYS_SETTING = SIGNING_KEY.public_setting()
"""SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS: every service's."""
ISSUER = WorkerTokenIssuer(SIGNING_KEY)
"""Mints tokens as the identity service does, for tests that need a worker without identity."""


def verifier(*, require_organization: bool = True) -> WorkerTokens:
    """The verifier a service builds from PUBLIC_KEYS_SETTING."""
    return WorkerTokens(parse_public_keys(PUBLIC_KEYS_SETTING), require_organization=require_organization)


def stranger(kid: str = SIGNING_KEY.kid) -> WorkerTokenIssuer:
    """Mints tokens with a key pair no service trusts (by default under the trusted key's id, so
    that only the signature gives it away)."""
    return WorkerTokenIssuer(SigningKey.generate(kid))

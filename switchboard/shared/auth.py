"""Who is calling: internal callers with the service token, or workers with a signed token.

Two kinds of principal reach a gRPC service, both as ``authorization: Bearer <token>``:

* internal callers (the edge, other services, operators with grpcurl) present
  ``SWITCHBOARD_INTERNAL_TOKEN`` and may name the user they act for in ``x-switchboard-user-id``;
* workers present a worker token: a JWT (EdDSA over Ed25519, PyJWT) that carries their
  organisation, agent and connection and expires. Only the identity service can sign one (it
  alone holds a private key, see switchboard/shared/worker_keys.py); every service verifies it locally with
  public keys picked by the token's ``kid``, without a network call.

Anything else is UNAUTHENTICATED, and a token that is not a valid worker token is reported as
"not valid" without guessing which kind it was meant to be. Token material never appears in an
error message or a log line.
"""

from __future__ import annotations

import contextvars
import hmac
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from switchboard.shared.errors import FieldViolation, InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from switchboard.shared.headers import ACTING_USER_HEADER
from switchboard.shared.revocations import RevokedTokens
from switchboard.shared.worker_keys import SigningKey

AUTHORIZATION_HEADER = "authorization"
WORKER_TOKEN_ISSUER = "switchboard-identity"
WORKER_TOKEN_AUDIENCE = "switchboard"
# The one algorithm of worker tokens. Verification never takes it from the token: a token that
# names another ("HS256" keyed with a public key's bytes, "none") is refused before any key is used.
_ALGORITHM = "EdDSA"
_MAX_TOKEN_LENGTH = 4096
_VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class InternalCaller:
    """A trusted internal caller; ``acting_user_id`` is the user it acts for, if it named one."""

    acting_user_id: str | None = None


@dataclass(frozen=True)
class WorkerPrincipal:
    """A worker, confined to one organisation and agent by its token.

    ``organization_id`` is None only for tokens issued before tokens carried their organisation,
    and only where the verifier was told to accept those (the secret proxy, which resolves the
    agent's organisation and refuses when it cannot); every other service refuses such tokens.
    """

    organization_id: str | None
    agent_id: str
    connection_id: str | None
    token_id: str
    expires_at: datetime


Principal = InternalCaller | WorkerPrincipal

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("switchboard_principal", default=None)


def current_principal() -> Principal:
    """The authenticated caller of the RPC being handled. Raises Unauthenticated outside one."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller")
    return principal


def set_current_principal(principal: Principal | None) -> contextvars.Token:
    """Bind the caller for the current task (the request pipeline does this, tests may too)."""
    return _current.set(principal)


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)  # a credential: never in a repr, hence never in a log line
    token_id: str
    expires_at: datetime


class WorkerTokenIssuer:
    """Signs worker tokens with identity's private key; nothing else can make one."""

    def __init__(self, signing_key: SigningKey):
        self._key = signing_key

    @property
    def kid(self) -> str:
        return self._key.kid

    def issue(
        self,
        *,
        organization_id: str | None,
        agent_id: str,
        connection_id: str | None,
        ttl: timedelta,
        now: datetime | None = None,
        token_id: str | None = None,
    ) -> IssuedToken:
        """Sign a token for the given worker that expires after ``ttl``; ``token_id`` (a UUID)
        is generated unless given. ``organization_id=None`` makes a token without its
        organisation, as older issuers did (tests of the verifiers that accept them use this)."""
        issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
        expires_at = issued_at + ttl
        token_id = token_id or str(uuid.uuid4())
        claims = {
            "iss": WORKER_TOKEN_ISSUER,
            "aud": WORKER_TOKEN_AUDIENCE,
            "sub": agent_id,
            "org": organization_id,
            "agent": agent_id,
            "conn": connection_id,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": token_id,
        }
        if organization_id is None:
            del claims["org"]
        token = jwt.encode(claims, self._key.private_key, algorithm=_ALGORITHM, headers={"kid": self._key.kid})
        return IssuedToken(token=token, token_id=token_id, expires_at=expires_at)


class WorkerTokens:
    """Verifies worker tokens with public keys only (the verification key set, by kid)."""

    def __init__(
        self,
        public_keys: Mapping[str, Ed25519PublicKey],
        *,
        leeway_seconds: float = 5.0,
        require_organization: bool = True,
    ):
        if not public_keys:
            raise ValueError("the verification key set is empty")
        self._keys = dict(public_keys)
        self._leeway = leeway_seconds
        self._require_organization = require_organization
        self._verified: dict[str, WorkerPrincipal] = {}

    def verify(self, token: str) -> WorkerPrincipal:
        """The worker a token names. Raises Unauthenticated when it is not a worker token of ours
        (TOKEN_INVALID: garbage, forged, another algorithm, an unknown key), or when it is one
        but has expired (TOKEN_EXPIRED) or names no valid organisation or agent (TOKEN_MALFORMED)."""
        if len(token) > _MAX_TOKEN_LENGTH:
            raise _not_valid()
        # A worker sends the same token on every call: its signature is checked once, and the
        # answer reused until the token expires (revocation is checked on every call, elsewhere).
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at.timestamp() + self._leeway > time.time():
                return cached
            del self._verified[token]
        principal = self._verify_signed(token)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[token] = principal
        return principal

    def _verify_signed(self, token: str) -> WorkerPrincipal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _not_valid() from None
        # The key is chosen by kid, among public keys only, and the algorithm is fixed: a token
        # that names another algorithm or an unknown key never reaches a signature check.
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if header.get("alg") != _ALGORITHM or key is None:
            raise _not_valid()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=WORKER_TOKEN_AUDIENCE,
                issuer=WORKER_TOKEN_ISSUER,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "jti", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            # Only reported for a genuine signature (PyJWT checks it before the claims): a forger
            # learns nothing from it.
            raise Unauthenticated("the worker token has expired; ask for a new one", reason="TOKEN_EXPIRED") from None
        except jwt.InvalidTokenError:
            raise _not_valid() from None
        organization_id, agent_id = _uuid_claim(claims.get("org")), _uuid_claim(claims.get("agent"))
        connection_id = claims.get("conn")
        # A token without "org" is accepted only where asked for; an "org" that is there but is
        # not an id is malformed everywhere.
        organization_missing = "org" not in claims or claims["org"] is None
        bad_organization = organization_id is None and (self._require_organization or not organization_missing)
        if bad_organization or agent_id is None or (connection_id is not None and _uuid_claim(connection_id) is None):
            raise Unauthenticated("the worker token names no valid organisation or agent", reason="TOKEN_MALFORMED")
        return WorkerPrincipal(
            organization_id=organization_id,
            agent_id=agent_id,
            connection_id=_uuid_claim(connection_id),
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )


class Authenticator:
    """Turns a call's metadata into a Principal, or raises before any handler runs."""

    def __init__(self, internal_token: str, worker_tokens: WorkerTokens, revoked: RevokedTokens | None = None):
        self._internal_token = internal_token.encode()
        self._worker_tokens = worker_tokens
        self._revoked = revoked

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Principal:
        """Raises Unauthenticated (no, bad, expired or revoked token), InvalidArgument (malformed
        acting user id), PermissionDenied (a worker naming an acting user) or Unavailable (the
        revocation list is too stale to trust)."""
        bearer: str | None = None
        acting_user: str | None = None
        for key, value in metadata:
            if key == AUTHORIZATION_HEADER and isinstance(value, str):
                bearer = value
            elif key == ACTING_USER_HEADER and isinstance(value, str):
                acting_user = value
        if bearer is None:
            raise Unauthenticated(
                "missing credentials: send 'authorization: Bearer <token>' metadata", reason="TOKEN_MISSING"
            )
        scheme, _, token = bearer.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
        if hmac.compare_digest(token.encode(), self._internal_token):
            return InternalCaller(acting_user_id=_parse_user_id(acting_user) if acting_user is not None else None)
        worker = self._worker_tokens.verify(token)
        self._check_revocation(worker)
        if acting_user is not None:
            raise PermissionDenied(f"workers cannot act for a user ({ACTING_USER_HEADER} is for internal callers)")
        return worker

    def still_valid(self, principal: Principal) -> None:
        """For a long-lived call: raise as ``authenticate`` would now if the worker's token has since
        expired or been revoked (an internal caller's token does not change under a call)."""
        if not isinstance(principal, WorkerPrincipal):
            return
        if _expired(principal, 5.0):
            raise Unauthenticated("the worker token has expired; ask for a new one", reason="TOKEN_EXPIRED")
        self._check_revocation(principal)

    def _check_revocation(self, worker: WorkerPrincipal) -> None:
        if self._revoked is None:
            return
        if not self._revoked.is_fresh:
            raise Unavailable(
                "cannot confirm that the worker token is not revoked (the identity service has not "
                "been reachable); retry shortly",
                reason="REVOCATIONS_STALE",
            )
        if self._revoked.is_revoked(worker.token_id):
            raise Unauthenticated("the worker token was revoked; ask for a new one", reason="TOKEN_REVOKED")


def _not_valid() -> Unauthenticated:
    # One answer for every token that is not a worker token of ours (a mistyped internal token,
    # garbage, a forgery): it does not say which kind of token the caller meant to send.
    return Unauthenticated("the bearer token is not valid", reason="TOKEN_INVALID")


def _expired(worker: WorkerPrincipal, leeway_seconds: float) -> bool:
    return worker.expires_at.timestamp() + leeway_seconds <= time.time()


def _uuid_claim(value: object) -> str | None:
    """A claim that must be an id: its canonical UUID text, or None."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _parse_user_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise InvalidArgument(FieldViolation(ACTING_USER_HEADER, "must be a user id (a UUID)")) from None

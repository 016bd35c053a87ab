"""The keys of worker tokens: Ed25519 key pairs named by a key id (``kid``).

Only the identity service holds a private key, the *signing key*
(``SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY``); every service, identity included, holds the
*verification key set* (``SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS``) and picks the public key by the
kid in a token's header. A replica that is not identity can therefore check a token but never
make one.

Formats (whitespace around items is ignored):

* signing key: ``kid:<base64 of the 32-byte raw private key>`` or ``kid:<PEM "PRIVATE KEY">``;
* public keys: ``kid:<base64 of the 32-byte raw public key>[,kid:…]`` (PEM allowed as the value
  too), or a JSON object ``{"kid": "<base64 or PEM>", …}``.

Rotation without downtime: add the new public key to every service's set, then give identity the
new private key; tokens signed with the previous key stay valid until they expire (24 h at most)
as long as its public key stays in the set, then remove it.

Error messages name the key id and the problem, never key material.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_RAW_KEY_BYTES = 32


@dataclass(frozen=True, eq=False)  # two keys are never "equal" by their kid alone
class SigningKey:
    """The private key that signs worker tokens, and the id that names it in their header."""

    kid: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        """A fresh key; its kid is random unless given (kids must never be reused across keys)."""
        return cls(_check_kid(kid or new_kid()), Ed25519PrivateKey.generate())

    def setting(self) -> str:
        """The key as SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY takes it: ``kid:<base64 raw>``."""
        raw = self.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return f"{self.kid}:{base64.b64encode(raw).decode()}"

    def public_setting(self) -> str:
        """Its public half as one SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS item: ``kid:<base64 raw>``."""
        return public_keys_setting({self.kid: self.public_key})


def new_kid() -> str:
    """A key id that no other key will have."""
    return f"ed25519-{secrets.token_hex(4)}"


def parse_signing_key(raw: str) -> SigningKey:
    """The signing key of ``kid:<base64 raw key or PEM>``. Raises ValueError naming the problem."""
    kid, material = _split_item(raw.strip())
    if material.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(material.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError(f"key {kid!r}: not a PEM private key without a password") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"key {kid!r}: not an Ed25519 private key")
        return SigningKey(kid, key)
    return SigningKey(kid, Ed25519PrivateKey.from_private_bytes(_raw_key(kid, material)))


def parse_public_keys(raw: str) -> dict[str, Ed25519PublicKey]:
    """The verification key set: kid → public key. Raises ValueError naming the problem."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise ValueError("not a JSON object of key id → public key") from None
        if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
            raise ValueError("expected a JSON object of key id → public key (base64 or PEM text)")
        items = [(_check_kid(kid), material.strip()) for kid, material in document.items()]
    else:
        items = [_split_item(item.strip()) for item in text.split(",")]
    keys: dict[str, Ed25519PublicKey] = {}
    for kid, material in items:
        if kid in keys:
            raise ValueError(f"key {kid!r}: listed twice")
        keys[kid] = _public_key(kid, material)
    if not keys:
        raise ValueError("no key")
    return keys


def public_keys_setting(keys: Mapping[str, Ed25519PublicKey]) -> str:
    """``keys`` as SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS takes them: ``kid:<base64 raw>,…``."""
    return ",".join(
        f"{kid}:{base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()}"
        for kid, key in keys.items()
    )


def same_key(a: Ed25519PublicKey, b: Ed25519PublicKey) -> bool:
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    return a.public_bytes(*raw) == b.public_bytes(*raw)


def _public_key(kid: str, material: str) -> Ed25519PublicKey:
    if material.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(material.encode())
        except ValueError:
            raise ValueError(f"key {kid!r}: not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"key {kid!r}: not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_raw_key(kid, material))


def _split_item(item: str) -> tuple[str, str]:
    kid, colon, material = item.partition(":")
    if not colon or not material.strip():
        raise ValueError(f"expected 'kid:key', got an item {'named ' + repr(kid) if colon else 'without a key id'}")
    return _check_kid(kid.strip()), material.strip()


def _check_kid(kid: str) -> str:
    if not _KID.fullmatch(kid):
        raise ValueError("a key id must be 1 to 64 letters, digits, '.', '_' or '-'")
    return kid


def _raw_key(kid: str, material: str) -> bytes:
    try:
        # Standard or URL-safe alphabet, padding optional: both are common in key tooling.
        normalized = material.replace("-", "+").replace("_", "/")
        key = base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"key {kid!r}: not base64 (nor PEM)") from None
    if len(key) != _RAW_KEY_BYTES:
        raise ValueError(f"key {kid!r}: expected a {_RAW_KEY_BYTES}-byte raw Ed25519 key, got {len(key)} bytes")
    return key

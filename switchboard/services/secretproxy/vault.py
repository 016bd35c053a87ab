"""Sealing secrets and provider credentials at rest (AES-256-GCM through shared.crypto.KeyRing).

The associated data binds a sealed value to its row's id and organisation (and a credential's to
its provider): a value copied into another organisation's row does not open.
"""

from __future__ import annotations

from switchboard.shared.crypto import KeyRing
from switchboard.shared.errors import FailedPrecondition


def require_keys(keys: KeyRing | None) -> KeyRing:
    """The key ring, or FailedPrecondition when none is configured (nothing can be sealed or opened)."""
    if keys is None:
        raise FailedPrecondition(
            "SWITCHBOARD_CREDENTIALS_KEYS is not configured: secrets cannot be sealed or opened", reason="NO_CREDENTIALS_KEY"
        )
    return keys


def secret_aad(secret_id: str, organization_id: str | None) -> bytes:
    return f"secret:{secret_id}:{organization_id or ''}".encode()


def credential_aad(credential_id: str, organization_id: str, provider: str) -> bytes:
    return f"credential:{credential_id}:{organization_id}:{provider}".encode()


def seal(keys: KeyRing, value: str, associated: bytes) -> tuple[str, bytes]:
    """(key id, sealed bytes)."""
    return keys.seal(value.encode(), associated)


def open_value(keys: KeyRing, key_id: str, sealed: bytes, associated: bytes) -> str:
    """The plaintext. Raises KeyError (key no longer configured) or InvalidTag (tampered or moved)."""
    return keys.open(key_id, sealed, associated).decode()

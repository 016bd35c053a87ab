"""Secrets at rest: AES-256-GCM (cryptography) with key ids, so keys can be rotated.

Keys come from configuration as ``kid:base64key`` pairs; the first encrypts, every one decrypts
(rows name the key that sealed them). The associated data binds a ciphertext to its row, so a
sealed value copied into another row (another organisation's) does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class KeyRing:
    """Seals and opens small secrets. Raises ValueError on a malformed key list."""

    def __init__(self, keys: str):
        parsed: dict[str, AESGCM] = {}
        order: list[str] = []
        for item in keys.split(","):
            kid, _, encoded = item.strip().partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise ValueError(f"key {kid!r}: not base64") from None
            if not kid or len(key) != 32:
                raise ValueError(f"key {kid!r}: expected 'id:base64' with a 32-byte key")
            parsed[kid] = AESGCM(key)
            order.append(kid)
        if not order:
            raise ValueError("no key")
        self._keys = parsed
        self.current = order[0]

    def seal(self, plaintext: bytes, associated: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext)."""
        nonce = os.urandom(_NONCE_BYTES)
        return self.current, nonce + self._keys[self.current].encrypt(nonce, plaintext, associated)

    def open(self, kid: str, sealed: bytes, associated: bytes) -> bytes:
        """The plaintext. Raises KeyError for an unknown key id, InvalidTag for a tampered or
        misplaced value."""
        return self._keys[kid].decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated)


def new_key_list(kid: str = "k1") -> str:
    """A fresh one-key list for configuration (``switchboard up`` writes one into its data dir)."""
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"

"""Placeholders: what workers hold instead of secrets, how they are stored and found in headers.

A placeholder is ``sb_secret_`` and 192 random bits (URL-safe base64). Only its SHA-256 is stored:
a database dump does not yield usable placeholders, and a lookup is one index probe. SHA-256
without a key suffices because the input is random, not guessable.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "sb_secret_"
_RANDOM_BYTES = 24
# Anything that looks like a placeholder counts as one, also inside a longer value ("Bearer …",
# "prefix-sb_secret_…"): an unknown one is refused, never forwarded as it is.
PATTERN = re.compile(r"sb_secret_[A-Za-z0-9_-]{16,128}")


def new_placeholder() -> str:
    return PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def placeholder_hash(placeholder: str) -> bytes:
    return hashlib.sha256(placeholder.encode()).digest()


def find(values: list[str]) -> set[str]:
    """Every placeholder in ``values``."""
    found: set[str] = set()
    for value in values:
        if PREFIX in value:
            found.update(PATTERN.findall(value))
    return found


def substitute(value: str, replacements: dict[str, str]) -> str:
    """``value`` with each placeholder replaced by its secret (every placeholder must be known)."""
    if PREFIX not in value:
        return value
    return PATTERN.sub(lambda match: replacements[match.group(0)], value)


def redact(text: str) -> str:
    """``text`` with placeholders blanked out, for anything that is logged or audited."""
    return PATTERN.sub(PREFIX + "…", text) if PREFIX in text else text

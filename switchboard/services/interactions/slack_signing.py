"""Slack request signing v0: is a webhook request Slack's, and fresh? (pure, no I/O)
https://api.slack.com/authentication/verifying-requests-from-slack"""

from __future__ import annotations

import hashlib
import hmac

from switchboard.shared.validation import ascii_int

# Slack's own replay window: a captured request is refused once it is 5 minutes old.
SLACK_WINDOW_SECONDS = 300


def slack_signature_ok(signing_secret: str, timestamp: str, signature: str, body: bytes, *, now: float) -> bool:
    """Slack request signing v0: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`, compared in
    constant time, and a timestamp within 5 minutes of now (replays are refused)."""
    stamp = ascii_int(timestamp, maximum=10**12)
    if stamp is None or abs(now - stamp) > SLACK_WINDOW_SECONDS:
        return False
    digest = hmac.new(signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={digest}".encode(), signature.encode())

"""Slack request signing (v0): a request is Slack's when its signature is `v0=` and the hex
HMAC-SHA256, under the connection's signing secret, of `v0:{timestamp}:{body}`, and its timestamp
(seconds, ASCII digits) is within 5 minutes of now, so a captured request cannot be replayed later.
https://api.slack.com/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.services.interactions.slack_signing import SLACK_WINDOW_SECONDS, slack_signature_ok

FAST = settings(max_examples=60, derandomize=True, database=None, deadline=None)
NOW = 1_760_000_000.0
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's side, written from its documentation."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


secrets = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
bodies = st.binary(max_size=300)
offsets = st.integers(-SLACK_WINDOW_SECONDS, SLACK_WINDOW_SECONDS)


def test_slacks_documented_example_is_accepted():
    """The signing secret, timestamp, body and signature of Slack's documentation page."""
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    timestamp = "1531420618"
    signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert sign(SECRET, timestamp, body) == signature
    assert slack_signature_ok(SECRET, timestamp, signature, body, now=1531420618.0)
    assert slack_signature_ok(SECRET, timestamp, signature, body, now=1531420618.0 + SLACK_WINDOW_SECONDS)
    assert not slack_signature_ok(SECRET, timestamp, signature, body, now=1531420618.0 + SLACK_WINDOW_SECONDS + 1)


@FAST
@given(secrets, bodies, offsets)
def test_a_request_signed_with_the_secret_within_the_window_is_accepted(secret: str, body: bytes, offset: int):
    timestamp = str(int(NOW) + offset)
    assert slack_signature_ok(secret, timestamp, sign(secret, timestamp, body), body, now=NOW)


@FAST
@given(secrets, bodies, offsets, st.data())
def test_a_tampered_body_is_refused(secret: str, body: bytes, offset: int, data):
    timestamp = str(int(NOW) + offset)
    signature = sign(secret, timestamp, body)
    tampered = data.draw(bodies.filter(lambda other: other != body), label="tampered body")
    assert not slack_signature_ok(secret, timestamp, signature, tampered, now=NOW)


@FAST
@given(secrets, bodies, offsets, offsets)
def test_a_signature_moved_to_another_timestamp_is_refused(secret: str, body: bytes, offset: int, other: int):
    signed_at, claimed = str(int(NOW) + offset), str(int(NOW) + other)
    if signed_at != claimed:
        assert not slack_signature_ok(secret, claimed, sign(secret, signed_at, body), body, now=NOW)
    # The same instant spelt with a leading zero is another text, so another signature.
    assert not slack_signature_ok(secret, "0" + signed_at, sign(secret, signed_at, body), body, now=NOW)


@FAST
@given(secrets, secrets, bodies)
def test_a_signature_under_another_secret_is_refused(secret: str, other: str, body: bytes):
    timestamp = str(int(NOW))
    if other != secret:
        assert not slack_signature_ok(secret, timestamp, sign(other, timestamp, body), body, now=NOW)


@FAST
@given(bodies, st.data())
def test_any_change_to_the_signature_is_refused(body: bytes, data):
    timestamp = str(int(NOW))
    signature = sign(SECRET, timestamp, body)
    position = data.draw(st.integers(0, len(signature) - 1), label="position")
    replacement = data.draw(st.characters(exclude_categories=["Cs"]).filter(lambda c: c != signature[position]), label="char")
    changed = signature[:position] + replacement + signature[position + 1 :]
    assert not slack_signature_ok(SECRET, timestamp, changed, body, now=NOW)
    assert not slack_signature_ok(SECRET, timestamp, signature[:-1], body, now=NOW)
    assert not slack_signature_ok(SECRET, timestamp, signature + "0", body, now=NOW)


@pytest.mark.parametrize(
    "signature",
    ["", "v0=", "v1=" + "0" * 64, "V0=" + "0" * 64, "0" * 64, "v0=" + "é" * 64, "v0=\x00", "v0=" + "0" * 100_000],
)
def test_malformed_signatures_are_refused(signature: str):
    assert not slack_signature_ok(SECRET, str(int(NOW)), signature, b"x=1", now=NOW)


def test_the_signature_is_compared_as_slack_sends_it():
    body, timestamp = b"x=1", str(int(NOW))
    signature = sign(SECRET, timestamp, body)
    assert not slack_signature_ok(SECRET, timestamp, signature.upper(), body, now=NOW)
    assert not slack_signature_ok(SECRET, timestamp, " " + signature, body, now=NOW)


@FAST
@given(secrets, bodies, st.integers(SLACK_WINDOW_SECONDS + 1, 10**12))
def test_a_request_outside_the_window_is_refused_however_well_signed(secret: str, body: bytes, distance: int):
    """A replay of a captured request, once its five minutes are over; or one dated ahead."""
    for stamp in (int(NOW) - distance, int(NOW) + distance):
        if stamp >= 0:
            timestamp = str(stamp)
            assert not slack_signature_ok(secret, timestamp, sign(secret, timestamp, body), body, now=NOW)


@pytest.mark.parametrize("offset", [-SLACK_WINDOW_SECONDS, SLACK_WINDOW_SECONDS])
def test_the_window_includes_its_edges(offset: int):
    timestamp = str(int(NOW) + offset)
    assert slack_signature_ok(SECRET, timestamp, sign(SECRET, timestamp, b""), b"", now=NOW)
    # Half a second further is outside.
    assert not slack_signature_ok(SECRET, timestamp, sign(SECRET, timestamp, b""), b"", now=NOW - offset / abs(offset) * 0.5)


# Characters that str.isdigit() or int() take for digits, and number-like spellings int() reads.
_NOT_ASCII_DIGITS = st.text(st.characters(categories=["Nd", "No"]).filter(lambda c: not "0" <= c <= "9"), min_size=1, max_size=12)


@FAST
@given(_NOT_ASCII_DIGITS)
def test_timestamps_in_other_digits_are_refused_even_when_signed(timestamp: str):
    assert not slack_signature_ok(SECRET, timestamp, sign(SECRET, timestamp, b"x=1"), b"x=1", now=NOW)


@pytest.mark.parametrize(
    "timestamp",
    [
        "",
        "١٧٦٠٠٠٠٠٠٠",  # Arabic-Indic digits: int() reads them as 1760000000
        "１７６００００００００",  # full-width digits, also read by int()
        "1760000000.0",
        "+1760000000",
        "-1760000000",
        " 1760000000",
        "1760000000\n",
        "1_760_000_000",
        "0x68e6f480",
        "1.76e9",
        "9" * 20,  # more than 64 bits
        "9" * 5000,  # more than int() reads without a ValueError
        "1" + "0" * 12 + "1",
    ],
)
def test_timestamps_that_are_not_plain_ascii_seconds_are_refused(timestamp: str):
    assert not slack_signature_ok(SECRET, timestamp, sign(SECRET, timestamp, b"x=1"), b"x=1", now=NOW)


def test_a_huge_now_or_timestamp_is_refused_without_an_error():
    timestamp = str(10**12)
    signature = sign(SECRET, timestamp, b"")
    assert slack_signature_ok(SECRET, timestamp, signature, b"", now=float(10**12))
    assert not slack_signature_ok(SECRET, str(10**12 + 1), sign(SECRET, str(10**12 + 1), b""), b"", now=float(10**12))
    assert not slack_signature_ok(SECRET, timestamp, signature, b"", now=float("inf"))

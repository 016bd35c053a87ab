"""The secret proxy's redactor: an injected secret that the upstream echoes never reaches the
worker, however the response body is cut into chunks, and nothing else in the body changes.

The reference is the whole body redacted at once: at each position, left to right, the longest
secret that starts there is replaced by the marker. For one secret that is ``bytes.replace``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.services.secretproxy.redaction import REDACTED, Redactor

# Bounded and reproducible: the same examples on every run and in CI, a second or two in all.
FAST = settings(max_examples=100, derandomize=True, database=None, deadline=None)

# A secret made of bytes that the marker does not hold: then no secret can be formed by the marker
# and the bytes around it, and "the secret is not in the output" is a property the output can have.
# (For secrets of any bytes, the exact equality with the reference is checked below.)
_MARKER_FREE = bytes(b for b in range(256) if b not in REDACTED)
marker_free_secrets = st.binary(min_size=1, max_size=20).map(lambda raw: bytes(_MARKER_FREE[b % len(_MARKER_FREE)] for b in raw))
# Secrets from a small alphabet repeat their own bytes ("abab", "aab"): the cases where a held tail
# overlaps itself.
repetitive_secrets = st.text(alphabet="ab]", min_size=1, max_size=8).map(str.encode)


def redact_at_once(body: bytes, secrets: list[bytes]) -> bytes:
    """The reference: the whole body at once, left to right, the longest secret at each position."""
    out, i = [], 0
    while i < len(body):
        matching = [s for s in secrets if s and body.startswith(s, i)]
        if matching:
            out.append(REDACTED)
            i += max(map(len, matching))
        else:
            out.append(body[i : i + 1])
            i += 1
    return b"".join(out)


def streamed(secrets: list[bytes], chunks: list[bytes]) -> bytes:
    redactor = Redactor(secrets)
    return b"".join(redactor.feed(chunk) for chunk in chunks) + redactor.flush()


def cut(body: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted(min(p, len(body)) for p in points), len(body)]
    return [body[a:b] for a, b in zip(edges, edges[1:])]


@st.composite
def bodies_around(draw, secrets: list[bytes], max_fragments: int = 8) -> bytes:
    """A body of the secrets, their prefixes and suffixes (the near misses a hold-back must get
    right) and arbitrary bytes, in any order."""
    fragments = []
    for _ in range(draw(st.integers(0, max_fragments))):
        secret = draw(st.sampled_from(secrets))
        kind = draw(st.sampled_from(["whole", "prefix", "suffix", "bytes"]))
        if kind == "whole":
            fragments.append(secret)
        elif kind == "prefix":
            fragments.append(secret[: draw(st.integers(0, len(secret)))])
        elif kind == "suffix":
            fragments.append(secret[draw(st.integers(0, len(secret))) :])
        else:
            fragments.append(draw(st.binary(max_size=6)))
    return b"".join(fragments)


@st.composite
def secret_and_body(draw, secrets=marker_free_secrets, max_fragments: int = 8):
    secret = draw(secrets)
    return secret, draw(bodies_around([secret], max_fragments))


@FAST
@given(secret_and_body())
def test_a_secret_split_at_any_one_boundary_never_leaks(case):
    secret, body = case
    expected = body.replace(secret, REDACTED)
    for i in range(len(body) + 1):
        out = streamed([secret], [body[:i], body[i:]])
        assert secret not in out, f"split at {i}"
        assert out == expected, f"split at {i}"


@settings(FAST, max_examples=40)
@given(secret_and_body(max_fragments=5))
def test_a_secret_split_at_any_two_boundaries_never_leaks(case):
    secret, body = case
    expected = body.replace(secret, REDACTED)
    for i in range(len(body) + 1):
        for j in range(i, len(body) + 1):
            out = streamed([secret], [body[:i], body[i:j], body[j:]])
            assert secret not in out, f"split at {i} and {j}"
            assert out == expected, f"split at {i} and {j}"


@FAST
@given(secret_and_body(), st.data())
def test_a_secret_across_several_chunks_never_leaks(case, data):
    secret, body = case
    points = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    out = streamed([secret], cut(body, points))
    assert secret not in out
    assert out == body.replace(secret, REDACTED)


@FAST
@given(secret_and_body())
def test_a_body_fed_byte_by_byte_is_redacted_like_the_whole(case):
    secret, body = case
    out = streamed([secret], [body[i : i + 1] for i in range(len(body))])
    assert secret not in out
    assert out == body.replace(secret, REDACTED)


@FAST
@given(secret_and_body(secrets=repetitive_secrets), st.data())
def test_any_secret_of_any_bytes_is_redacted_as_the_whole_body_would_be(case, data):
    """Secrets that overlap themselves or the marker ("]a" after the marker's "]"): the stream
    says exactly what the whole body redacted at once says, marker bytes are never rescanned."""
    secret, body = case
    points = data.draw(st.lists(st.integers(0, len(body)), max_size=6))
    assert streamed([secret], cut(body, points)) == body.replace(secret, REDACTED)


def test_the_marker_is_never_searched_again():
    """The marker ends in "]": a secret "]x" held back across a chunk's end must be the body's own
    bytes, not the marker's last byte and the next one (which redacted an "x" that was no secret)."""
    assert streamed([b"]x"], [b"]x", b"x"]) == REDACTED + b"x"
    assert streamed([b"d]x"], [b"d]x", b"x"]) == REDACTED + b"x"


@st.composite
def nested_secrets_and_body(draw):
    """Two or three secrets, some inside others (a key and the key with its secret part)."""
    outer = draw(marker_free_secrets.filter(lambda s: len(s) >= 2))
    secrets = [outer]
    for _ in range(draw(st.integers(1, 2))):
        start = draw(st.integers(0, len(outer) - 1))
        end = draw(st.integers(start + 1, len(outer)))
        secrets.append(outer[start:end])
    secrets += draw(st.lists(marker_free_secrets, max_size=1))
    return secrets, draw(bodies_around(secrets))


@FAST
@given(nested_secrets_and_body(), st.data())
def test_several_secrets_one_inside_another_never_leak(case, data):
    secrets, body = case
    expected = redact_at_once(body, secrets)
    points = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    out = streamed(secrets, cut(body, points))
    assert out == expected
    for secret in secrets:
        assert secret not in out
    for i in range(len(body) + 1):
        assert streamed(secrets, [body[:i], body[i:]]) == expected, f"split at {i}"


def test_a_secret_that_begins_with_another_is_replaced_whole_when_the_chunk_ends_between_them():
    """The shorter secret is complete at the end of the chunk, the longer one is not yet: replacing
    the shorter one there would pass the rest of the longer one on unredacted."""
    assert streamed([b"key", b"key:secret"], [b"id=key", b":secret&x"]) == b"id=" + REDACTED + b"&x"
    assert streamed([b"key", b"key:secret"], [b"id=key", b"&x"]) == b"id=" + REDACTED + b"&x"
    # The body ends while the shorter secret waits for the longer one: it is redacted all the same.
    assert streamed([b"key", b"key:secret"], [b"id=key"]) == b"id=" + REDACTED
    assert streamed([b"key", b"key:secret"], [b"id=key:sec"]) == b"id=" + REDACTED + b":sec"


def test_bytes_that_could_start_no_secret_are_passed_on_at_once():
    """An event stream is not delayed: only a tail that could begin a secret waits."""
    redactor = Redactor([b"sk-live-123"])
    assert redactor.feed(b"data: hello\n\n") == b"data: hello\n\n"
    assert redactor.feed(b"data: sk-li") == b"data: "
    assert redactor.feed(b"ve-123 and sk") == REDACTED + b" and "
    assert redactor.feed(b"y\n") == b"sky\n"
    assert redactor.flush() == b""


def test_the_held_tail_comes_out_at_the_end_of_the_body():
    redactor = Redactor([b"sk-live-123"])
    assert redactor.feed(b"ends with sk-live") == b"ends with "
    assert redactor.flush() == b"sk-live"


def test_header_values_are_redacted_whole():
    redactor = Redactor([b"key", b"key:secret"])
    assert redactor.text("Basic key:secret, key") == f"Basic {REDACTED.decode()}, {REDACTED.decode()}"
    assert Redactor([]).active is False
    assert Redactor([b""]).active is False

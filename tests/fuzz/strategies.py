"""Hypothesis strategies for every request message, built field by field from the proto
descriptors, with the hostile values this platform has to survive.

A request is a value tree (see ``wire.py``): each field present or absent, strings drawn by what
their name says they hold (ids of real rows mixed with random and hostile ones, JSON, page tokens,
Slack timestamps, paths …), integers at their extremes, enums with numbers the schema lacks,
Timestamps and Durations outside their ranges, repeated fields empty, small or oversize.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from tests.fuzz.wire import Raw, _is_repeated

# Invalid UTF-8 as a client can put it on the wire: a lone surrogate (encoded the only way one can
# be), a stray continuation byte, a truncated sequence, an overlong encoding, 0xFF.
INVALID_UTF8 = [
    Raw("\ud800".encode("utf-8", "surrogatepass")),
    Raw(b"abc\xed\xb2\x80def"),
    Raw(b"\x80"),
    Raw(b"caf\xc3"),
    Raw(b"\xc0\xaf"),
    Raw(b"\xff\xfe\xfd"),
]
DEEP_JSON = ["[" * 5000, "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, '{"a": [' * 2000]
HOSTILE_TEXT = [
    "", " ", "\x00", "a\x00b", "\n", "\r\n", "\t", "null", "None", "-1", "0", "²", "١٢٣", "٣", "9" * 5000,
    "' OR 1=1 --", "%s%n%x", "${jndi:ldap://x}", "../../etc/passwd", "/", "//", "..", "\\", "%00", "%2F",
    "🙂" * 50, "é", "ｅｘａｍｐｌｅ", "\u202e", "\ufeff", "\uffff", "x" * 4097, "x" * 100_000,
    "NaN", "Infinity", "1e999999", "-0", "true", "{}", "[]",
]  # fmt: skip
HUGE = ["x" * (1 << 20)]  # 1 MiB: under gRPC's 4 MiB message limit, over most field limits
JSON_TEXT = [
    "{}", "[]", "null", "1", '"x"', "true", '{"a": 1}', "1e999999", "-1e999999", "9" * 5000, "NaN", "Infinity",
    '{"a": "\\u0000"}', '{"\\u0000": 1}', '{"a": "\\ud800"}', '{"a": 1, "a": 2}', "{", "[1,]", "", " ", "\x00",
    '{"a": ' + '"' + "x" * 200_000 + '"}',
]  # fmt: skip
PAGE_TOKENS = [
    "", "x", "0", "-1", "AAAA", "////", "====", "eyJ0IjoiMDAwMS0wMS0wMVQwMDowMDowMCswMTQ6MDAifQ", "\x00", "\ud800",
    "MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",
    "OTk5OS0xMi0zMVQyMzo1OTo1OS05OTk5OTl8eA", "eyJhIjogWzFdfQ==", "%%%", "a" * 10_000,
]  # fmt: skip


def _token(*values: object) -> str:
    """A page token as the services encode theirs (base64 of a JSON list), with a forged position."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


_U = "00000000-0000-0000-0000-000000000000"
# Forged positions: timestamps at the calendar's ends with extreme offsets, naive ones, NUL and
# lone surrogates in a text key, ints at int32's end, wrong arity and types.
FORGED_PAGE_TOKENS = [
    _token("0001-01-01T00:00:00+14:00", _U), _token("9999-12-31T23:59:59-14:00", _U), _token("2026-01-01T00:00:00", _U),
    _token("\x00", _U), _token("x\x00y"), _token("\ud800"), _token("\ud800", _U), _token(2**31 - 1), _token(2**31 - 1, _U),
    _token("2026-01-01T00:00:00+00:00", "\x00"), _token(None, None), _token([], {}), _token("2026-01-01T00:00:00+00:00", _U, 1),
]
PAGE_TOKENS += FORGED_PAGE_TOKENS
INT32 = [0, 1, -1, 2, 100, 1000, 10_000, 2**31 - 1, -(2**31), 2**15, 65536]
INT64 = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 10**15]
UNKNOWN_ENUM = [-1, 99, 1000, 2**31 - 1, -(2**31)]
# Timestamp seconds: the epoch, now-ish, year 1 and 9999 (the documented range) and one past each,
# and int64's extremes.
TIMESTAMP_SECONDS = [0, -1, 1_700_000_000, 1_800_000_000, -62135596800, -62135596801, 253402300799, 253402300800, 2**63 - 1, -(2**63)]
# Duration seconds: zero, a second, a day, 10 000 years (the documented maximum) and past it.
DURATION_SECONDS = [0, 1, -1, 86400, 315_576_000_000, 315_576_000_001, -315_576_000_001, 2**63 - 1, -(2**63)]
NANOS = [0, 1, 999_999_999, 1_000_000_000, -1, -999_999_999, 2**31 - 1, -(2**31)]
OVERSIZE = [100, 1000, 10_000]
HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE", "get", "G E T", "", "X" * 300]
PATHS = [
    "/", "/v1/things", "/v1/chat/completions?model=x", "/echo-headers", "/status", "/big", "/break", "/sse",
    "/../secret", "/a/../b", "//x", "/a;b", "/a%2Fb", "/a\\b", "", "no-slash", "/%00", "/\x00", "/?a=" + "b" * 5000,
    "/x#frag", "http://evil.example/", "/" + "a/" * 2000,
]  # fmt: skip
UPSTREAMS = ["echo", "closed", "nowhere", "loopback-denied", "header-key", "", "ECHO", "echo/..", "openai", "anthropic"]
HEADER_NAMES = ["authorization", "x-api-key", "content-type", "content-length", "host", "transfer-encoding", "x-switchboard-token", "connection", "", "bad name", "x\x00y", "é"]


@dataclass
class Pools:
    """Values from the seeded world that a principal may be given, besides random ones.

    For the operator these are organisation A's only (an operator may legitimately act on any
    organisation, and B is the one nothing may touch); for A's worker and A's user, both A's and
    B's, since neither may reach B whatever it sends.
    """

    ids: list[str]
    streams: list[str]
    placeholders: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    team_ids: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)  # A's real id for a field name (the corpus' baseline)


def _hostile_text() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.sampled_from(INVALID_UTF8),
        st.text(max_size=40),
        st.sampled_from(DEEP_JSON),
        st.sampled_from(HUGE),
    )


def _uuids() -> st.SearchStrategy[str]:
    return st.one_of(
        st.uuids().map(str),
        st.sampled_from(["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"]),
        st.uuids().map(lambda u: str(u).upper()),
        st.uuids().map(lambda u: u.hex),
        st.uuids().map(lambda u: "{" + str(u) + "}"),
    )


def _json_text() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
    trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
    return st.one_of(st.sampled_from(JSON_TEXT), st.sampled_from(DEEP_JSON), trees.map(json.dumps), st.sampled_from(INVALID_UTF8))


def string_strategy(name: str, pools: Pools) -> st.SearchStrategy[Any]:
    """A string field's values, chosen by what its name says it holds."""
    hostile = _hostile_text()
    if name == "stream":
        return st.one_of(st.sampled_from(pools.streams), st.uuids().map(lambda u: f"agents/{u}"), hostile)
    if name.endswith("_id") or name in ("id", "token_id"):
        real = [st.sampled_from(pools.ids)] if pools.ids else []
        if name == "team_id" and pools.team_ids:
            real.append(st.sampled_from(pools.team_ids))
        return st.one_of(*real, *real, _uuids(), hostile)  # real rows weighted up
    if name.endswith("_json"):
        return _json_text()
    if name == "page_token":
        return st.one_of(st.sampled_from(PAGE_TOKENS), st.binary(max_size=48).map(lambda b: base64.urlsafe_b64encode(b).decode()), hostile)
    if name == "email":
        return st.one_of(st.emails(), st.sampled_from(pools.emails or ["a@example.com"]), st.just("A@EXAMPLE.COM\x00"), hostile)
    if name == "timestamp":  # a Slack request timestamp: digits, other digits, huge
        return st.one_of(st.integers(0, 2**70).map(str), st.sampled_from(["²", "١٧٠٠٠٠٠٠٠٠", "9" * 5000, "-1", "+1", " 1", "1.5"]), hostile)
    if name == "path":
        return st.one_of(st.sampled_from(PATHS), hostile)
    if name == "method":
        return st.one_of(st.sampled_from(HTTP_METHODS), hostile)
    if name == "upstream":
        return st.one_of(st.sampled_from(UPSTREAMS), hostile)
    if name == "api_base_url":
        return st.one_of(st.sampled_from([*pools.urls, "http://127.0.0.1:1", "https://slack.com/api", "ftp://x", "http://[::1", "http://x\x00y"]), hostile)
    if name in ("value", "name") and pools.placeholders:
        # Header values and secret values: a placeholder of either organisation, inside or alone.
        return st.one_of(
            st.sampled_from(pools.placeholders),
            st.sampled_from(pools.placeholders).map(lambda p: f"Bearer {p}"),
            st.sampled_from(HEADER_NAMES),
            hostile,
        )
    return hostile


def _int_strategy(values: list[int], low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(values), st.integers(low, high))


def scalar_strategy(fd: FieldDescriptor, pools: Pools) -> st.SearchStrategy[Any]:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return string_strategy(fd.name, pools)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(
            st.binary(max_size=64),
            st.sampled_from([b"", b"\x00", b"\xff" * 10, b"payload=%7B%7D", b"payload=" + b"%5B" * 5000, b"x" * (1 << 20)]),
            st.sampled_from(DEEP_JSON).map(str.encode),
        )
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(UNKNOWN_ENUM))
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return _int_strategy(INT32, -(2**31), 2**31 - 1)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return _int_strategy([0, 1, 2**32 - 1], 0, 2**32 - 1)
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return _int_strategy(INT64, -(2**63), 2**63 - 1)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return _int_strategy([0, 1, 2**64 - 1], 0, 2**64 - 1)
    return st.floats()


def _well_known(descriptor: Descriptor) -> st.SearchStrategy[dict] | None:
    if descriptor.full_name == "google.protobuf.Timestamp":
        seconds = st.one_of(st.sampled_from(TIMESTAMP_SECONDS), st.integers(-(2**63), 2**63 - 1))
    elif descriptor.full_name == "google.protobuf.Duration":
        seconds = st.one_of(st.sampled_from(DURATION_SECONDS), st.integers(-(2**63), 2**63 - 1))
    else:
        return None
    return st.fixed_dictionaries({}, optional={"seconds": seconds, "nanos": st.sampled_from(NANOS)})


def _small(fd: FieldDescriptor, pools: Pools) -> st.SearchStrategy[Any]:
    """An element of an oversize list: small, so that ten thousand of them stay a few hundred KiB
    (a huge element ten thousand times would only measure the test machine's memory)."""
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return plausible_strategy(fd.message_type, pools, 2)
    if fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return st.sampled_from(["", "x", "\x00", "GET", "²"]) if fd.type == FieldDescriptor.TYPE_STRING else st.just(b"x")
    return scalar_strategy(fd, pools)


def field_strategy(fd: FieldDescriptor, pools: Pools, depth: int) -> st.SearchStrategy[Any]:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        one = message_strategy(fd.message_type, pools, depth + 1)
    else:
        one = scalar_strategy(fd, pools)
    if not _is_repeated(fd):
        return one
    return st.one_of(
        st.lists(one, max_size=3),
        # Oversize: one small element repeated, cheap to generate however long the list is.
        st.tuples(_small(fd, pools), st.sampled_from(OVERSIZE)).map(lambda pair: [pair[0]] * pair[1]),
    )


def message_strategy(descriptor: Descriptor, pools: Pools, depth: int = 0) -> st.SearchStrategy[dict]:
    """Value trees of ``descriptor``: every field optional, each drawn by its type."""
    well_known = _well_known(descriptor)
    if well_known is not None:
        return well_known
    if depth > 4:
        return st.just({})
    return st.fixed_dictionaries({}, optional={fd.name: field_strategy(fd, pools, depth) for fd in descriptor.fields})


def _plausible_string(name: str, pools: Pools) -> st.SearchStrategy[str]:
    if name == "stream":
        return st.sampled_from(pools.streams)
    if name.endswith("_id") or name in ("id",):
        if name == "team_id" and pools.team_ids:
            return st.sampled_from(pools.team_ids)
        return st.sampled_from(pools.ids) if pools.ids else st.uuids().map(str)
    if name.endswith("_json"):
        return st.sampled_from(["{}", '{"a": 1}', "[]"])
    if name == "email":
        return st.emails()
    if name == "slug":
        return st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
    if name == "method" or name == "methods":
        return st.sampled_from(["GET", "POST"])
    if name == "upstream" or name == "provider":
        return st.sampled_from(["echo", "header-key"])
    if name == "path":
        return st.sampled_from(["/v1/things", "/echo-headers", "/v1/chat/completions"])
    if name == "host_pattern":
        return st.sampled_from(["127.0.0.1", "*.example.com"])
    if name == "api_base_url" and pools.urls:
        return st.sampled_from(pools.urls)
    if name in ("value", "name") and pools.placeholders:
        return st.one_of(st.sampled_from(pools.placeholders), st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True))
    if name == "page_token":
        return st.just("")
    return st.from_regex(r"[A-Za-z0-9 ._-]{1,20}", fullmatch=True)


def plausible_strategy(descriptor: Descriptor, pools: Pools, depth: int = 0) -> st.SearchStrategy[dict]:
    """Requests a well-meaning client might send: every field set to a value of its kind, ids of
    real rows. Mutated one field at a time, they reach the code behind the validation."""
    well_known = _well_known(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.integers(1_700_000_000, 1_900_000_000).map(lambda s: {"seconds": s})
    if descriptor.full_name == "google.protobuf.Duration":
        return st.sampled_from([{"seconds": 86400}, {"seconds": 3600}])
    assert well_known is None
    fields = {}
    for fd in descriptor.fields:
        if depth > 3 and fd.type == FieldDescriptor.TYPE_MESSAGE:
            continue
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            one = plausible_strategy(fd.message_type, pools, depth + 1)
        elif fd.type == FieldDescriptor.TYPE_STRING:
            one = _plausible_string(fd.name, pools)
        elif fd.type == FieldDescriptor.TYPE_ENUM:
            known = [v.number for v in fd.enum_type.values if v.number != 0] or [0]
            one = st.sampled_from(known)
        elif fd.type == FieldDescriptor.TYPE_BOOL:
            one = st.booleans()
        elif fd.type == FieldDescriptor.TYPE_BYTES:
            one = st.just(b"{}")
        else:
            one = st.integers(0, 100) if not fd.name.endswith("attempt") else st.integers(1, 3)
        fields[fd.name] = st.lists(one, min_size=1, max_size=2) if _is_repeated(fd) else one
    return st.fixed_dictionaries(fields)


def mutated_strategy(descriptor: Descriptor, pools: Pools) -> st.SearchStrategy[dict]:
    """A plausible request with one top-level field replaced by a fuzzed value (or dropped)."""
    if not descriptor.fields:
        return st.just({})

    @st.composite
    def build(draw: st.DrawFn) -> dict:
        tree = dict(draw(plausible_strategy(descriptor, pools)))
        fd = draw(st.sampled_from(list(descriptor.fields)))
        if draw(st.integers(0, 5)) == 0:
            tree.pop(fd.name, None)
        else:
            tree[fd.name] = draw(field_strategy(fd, pools, 0))
        return tree

    return build()


def request_strategy(descriptor: Descriptor, pools: Pools) -> st.SearchStrategy[dict]:
    """Requests of ``descriptor``: fully random trees, and plausible ones with one field fuzzed."""
    return st.one_of(message_strategy(descriptor, pools), mutated_strategy(descriptor, pools), plausible_strategy(descriptor, pools))

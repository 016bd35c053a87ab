"""A fixed corpus beside the random search: for each field of a request, a well-formed request
with that one field set to each of the values this platform is known to choke on. Deterministic,
so that every run (not only a lucky one) tries every known-hostile value in every field."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tests.fuzz.strategies import FORGED_PAGE_TOKENS, HUGE, Pools
from tests.fuzz.wire import Raw, _is_repeated

TEXT = [Raw(b"\xff\xfe"), "\ud800", "a\x00b", "[" * 5000, "²", "9" * 5000, HUGE[0]]
INTS = {32: [-(2**31), 2**31 - 1, -1], 64: [-(2**63), 2**63 - 1, -1]}
TIMESTAMPS = [{"seconds": -62135596801}, {"seconds": 253402300800, "nanos": 10**9}, {"seconds": 2**63 - 1}, {"seconds": -(2**63)}]
DURATIONS = [{}, {"seconds": 315_576_000_001}, {"seconds": -(2**63)}, {"seconds": 2**63 - 1}, {"nanos": -1}]


def _base_string(name: str, pools: Pools) -> str:
    if name in pools.named:
        return pools.named[name]
    if name == "stream":
        return pools.streams[0]
    if name == "team_id" and pools.team_ids:
        return pools.team_ids[0]
    if name.endswith("_id") or name == "id":
        return pools.ids[0]
    if name.endswith("_json"):
        return "{}"
    return {
        "email": "fuzz@example.com", "method": "GET", "upstream": "echo", "path": "/v1/things", "host_pattern": "127.0.0.1",
        "path_prefix": "/v1/", "api_base_url": pools.urls[0] if pools.urls else "https://slack.com/api", "slug": "fuzz",
        "timestamp": str(int(time.time())),
    }.get(name, "fuzz")  # fmt: skip


def base_value(fd: FieldDescriptor, pools: Pools) -> Any:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        one: Any = baseline(fd.message_type, pools)
    elif fd.type == FieldDescriptor.TYPE_STRING:
        one = _base_string(fd.name, pools)
    elif fd.type == FieldDescriptor.TYPE_BYTES:
        one = b"{}"
    elif fd.type == FieldDescriptor.TYPE_ENUM:
        one = next((v.number for v in fd.enum_type.values if v.number), 0)
    elif fd.type == FieldDescriptor.TYPE_BOOL:
        one = True
    else:
        # Zero: "the default" for page sizes and limits; a claimed run's attempt is 1.
        one = 1 if fd.name == "attempt" else 0
    return [one] if _is_repeated(fd) else one


def baseline(descriptor: Descriptor, pools: Pools) -> dict:
    """A well-formed request: every field set to an ordinary value of its kind."""
    if descriptor.full_name == "google.protobuf.Timestamp":
        return {"seconds": int(time.time())}
    if descriptor.full_name == "google.protobuf.Duration":
        return {"seconds": 86400}
    return {fd.name: base_value(fd, pools) for fd in descriptor.fields}


def hostile_values(fd: FieldDescriptor, pools: Pools) -> list[Any]:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        name = fd.message_type.full_name
        values: list[Any] = TIMESTAMPS if name == "google.protobuf.Timestamp" else DURATIONS if name == "google.protobuf.Duration" else []
    elif fd.type == FieldDescriptor.TYPE_STRING:
        values = TEXT + FORGED_PAGE_TOKENS if fd.name == "page_token" else TEXT
    elif fd.type == FieldDescriptor.TYPE_BYTES:
        values = [b"\xff" * 8, b"[" * 5000, b"payload=" + b"%5B" * 5000]
    elif fd.type == FieldDescriptor.TYPE_ENUM:
        values = [99, -1]
    elif fd.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        values = INTS[64]
    elif fd.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        values = INTS[32]
    else:
        values = []
    if not _is_repeated(fd):
        return values
    # One hostile element each, and an oversize list of ordinary ones.
    return [[value] for value in values] + [base_value(fd, pools) * 10_000]


def cases(descriptor: Descriptor, pools: Pools) -> Iterator[tuple[str, dict]]:
    """(label, request): the baseline, then each top-level field (and each field of a nested
    message, one level down) set to each hostile value in turn."""
    base = baseline(descriptor, pools)
    yield "baseline", base
    for fd in descriptor.fields:
        for i, value in enumerate(hostile_values(fd, pools)):
            yield f"{fd.name}#{i}", {**base, fd.name: value}
        if fd.type == FieldDescriptor.TYPE_STRING and not _is_repeated(fd):
            # A NUL at the end of an otherwise valid value: past the format checks, into the SQL.
            yield f"{fd.name}+NUL", {**base, fd.name: f"{base[fd.name]}\x00"}
        if fd.type == FieldDescriptor.TYPE_MESSAGE and not fd.message_type.full_name.startswith("google.protobuf."):
            # One level down (in the first element of a repeated message): the same, field by field.
            element = base[fd.name][0] if _is_repeated(fd) else base[fd.name]
            for inner in fd.message_type.fields:
                variants = list(enumerate(hostile_values(inner, pools)))
                if inner.type == FieldDescriptor.TYPE_STRING and not _is_repeated(inner):
                    variants.append(("NUL", f"{element[inner.name]}\x00"))
                for i, value in variants:
                    changed = {**element, inner.name: value}
                    yield f"{fd.name}.{inner.name}#{i}", {**base, fd.name: [changed] if _is_repeated(fd) else changed}

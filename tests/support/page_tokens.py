"""Forged page tokens, as an attacker would make them: every List RPC must refuse each one with
INVALID_ARGUMENT on `page_token` (never INTERNAL), whether or not the token is bound to the request."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

import grpc
import pytest

from switchboard.shared.errors import field_violations
from switchboard.shared.pagination import request_digest

GOOD = {datetime: "2026-01-01T00:00:00+00:00", uuid.UUID: str(uuid.uuid4()), str: "a", int: 1}
BAD = {
    datetime: ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00\x00", "\ud800", 5, None],
    uuid.UUID: ["\x00", "\ud800", 7, "not-a-uuid", None],
    str: ["a\x00", "\ud800", 7, ["x"], "x" * 5000, None],
    int: [True, -1, 2**31, 2**70, "1", 1.5, None],
}


def _token(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def hostile_tokens(request, kinds: tuple[type, ...]) -> list[str]:
    """Tokens with one bad value each (the others good), in the old unbound form and bound to
    ``request`` (so that the binding is not what refuses them), plus tokens of the wrong shape."""
    tokens = []
    for index, kind in enumerate(kinds):
        for bad in BAD[kind]:
            values = [GOOD[k] for k in kinds]
            values[index] = bad
            tokens += [_token(values), _token([request_digest(request), *values])]
    good = [GOOD[k] for k in kinds]
    tokens += [
        _token(good),  # unbound
        _token([request_digest(request), *good, "extra"]),
        _token({"a": 1}),
        _token([[[[[]]]]] * 3),
        "%%%not-base64",
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
        "A" * 5000,
    ]
    return tokens


async def assert_hostile_tokens_refused(method, request, kinds: tuple[type, ...], metadata) -> int:
    """Call ``method`` with each hostile token in ``request``; each must be INVALID_ARGUMENT on
    page_token. Returns how many were tried."""
    tokens = hostile_tokens(request, kinds)
    for token in tokens:
        request.page_token = token
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await method(request, metadata=metadata)
            pytest.fail(f"accepted: {base64.urlsafe_b64decode(token + '=' * (-len(token) % 4))!r}")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (token, caught.value.code(), caught.value.details())
        assert [v.field for v in field_violations(caught.value)] == ["page_token"], token
    request.page_token = ""
    return len(tokens)

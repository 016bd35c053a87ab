"""Opaque page tokens for keyset pagination: the position after the last item of a page, bound to
the request that produced it.

A token carries a digest of its request with ``page_token`` and ``page_size`` cleared (AIP-158:
every other field must be the same on the next call), so a token of one organisation's or one
filter's listing is refused on another. Every value in it is checked for type and range before it
reaches SQL: a token is client input like any other (a forged one moves a position, never a scope,
which the SQL predicates hold on their own).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from switchboard.shared.errors import FieldViolation, InvalidArgument
from switchboard.shared.validation import is_utf8

MAX_TOKEN_CHARS = 2048
MAX_TEXT_VALUE = 1024
_UTC_ISOFORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?\+00:00")
_NOT_BOUND_FIELDS = ("page_token", "page_size")
# Positions come from rows: timestamps PostgreSQL stored, far from Python's year 1 and 9999 (where
# converting an offset overflows).
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def request_digest(request: Message) -> str:
    """What binds a token to its request: a digest of every field but the page token and size."""
    bound = type(request)()
    bound.CopyFrom(request)
    for name in _NOT_BOUND_FIELDS:
        if name in bound.DESCRIPTOR.fields_by_name:
            bound.ClearField(name)
    return hashlib.sha256(bound.SerializeToString(deterministic=True)).hexdigest()[:32]


def encode_page_token(request: Message, *position: str | int | datetime) -> str:
    """A token for ``position`` (the sort key of the last item returned) of ``request``'s listing."""
    values = [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in position]
    text = json.dumps([request_digest(request), *values], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_page_token(request: Message, kinds: tuple[type, ...], *, field: str = "page_token") -> list[Any] | None:
    """The position in ``request.page_token`` with each value of the matching type in ``kinds``
    (str, int as a non-negative int32, datetime, or uuid.UUID for a UUID in text); None when the
    request has no token. Raises InvalidArgument on ``field`` for any token that this module did
    not make for a request with the same fields, or whose values are out of range."""
    token = getattr(request, field)
    if not token:
        return None
    invalid = InvalidArgument(FieldViolation(field, "is not a page token returned by this method"))
    if len(token) > MAX_TOKEN_CHARS:
        raise invalid
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError, RecursionError):
        raise invalid from None
    if not isinstance(values, list) or len(values) != len(kinds) + 1:
        raise invalid
    if values[0] != request_digest(request):
        raise InvalidArgument(
            FieldViolation(field, "was returned for a request with other fields; repeat every field but page_size with the token")
        )
    try:
        return [_typed(v, kind) for v, kind in zip(values[1:], kinds, strict=True)]
    except (ValueError, TypeError, OverflowError):
        raise invalid from None


def _typed(value: Any, kind: type) -> Any:
    if kind is datetime:
        # Tokens are written in UTC, as isoformat() writes it: any other offset or form is not ours
        # (fromisoformat alone accepts a trailing NUL, and offsets that overflow at year 1 or 9999).
        if not isinstance(value, str) or not _UTC_ISOFORMAT.fullmatch(value):
            raise ValueError("not a UTC timestamp")
        parsed = datetime.fromisoformat(value)
        if not _EARLIEST <= parsed <= _LATEST:
            raise ValueError("out of range")
        return parsed
    if kind is uuid.UUID:
        if not isinstance(value, str) or len(value) > 36:
            raise TypeError("not a UUID")
        return str(uuid.UUID(value))
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise ValueError("out of range")
        return value
    if kind is str:
        if not isinstance(value, str) or len(value) > MAX_TEXT_VALUE or "\x00" in value or not is_utf8(value):
            raise ValueError("not storable text")
        return value
    raise TypeError(f"unsupported kind {kind.__name__}")


def page_of(rows: list, page_size: int, position: Callable[[Any], tuple], request: Message) -> tuple[list, str]:
    """Cut a result fetched with ``LIMIT page_size + 1`` to one page; the page and the token for
    the next one ("" when this is the last). ``position`` gives a row's sort key; ``request`` is
    the List request the page answers (the token is bound to it)."""
    if len(rows) <= page_size:
        return rows, ""
    rows = rows[:page_size]
    return rows, encode_page_token(request, *position(rows[-1]))

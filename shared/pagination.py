"""Opaque page tokens for keyset pagination: the position after the last item of a page."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.errors import FieldViolation, InvalidArgument


def encode_page_token(*position: str | int | datetime) -> str:
    """A token for ``position`` (the sort key of the last item returned)."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in position]
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_page_token(token: str, kinds: tuple[type, ...], *, field: str = "page_token") -> list[Any] | None:
    """The position in ``token`` with each value of the matching type in ``kinds`` (str, int as a
    non-negative int32, datetime, or uuid.UUID for a UUID in text); None for an empty token. Raises InvalidArgument for any token this module did not
    make with the same kinds."""
    if not token:
        return None
    invalid = InvalidArgument(FieldViolation(field, "is not a page token returned by this method"))
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise invalid
        return [_typed(v, kind) for v, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError, OverflowError):
        raise invalid from None


def _typed(value: Any, kind: type) -> Any:
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is uuid.UUID:
        return str(uuid.UUID(value))
    if kind is int:
        if not isinstance(value, int) or not 0 <= value < 2**31:
            raise ValueError("out of range")
        return value
    if not isinstance(value, kind):
        raise TypeError(type(value).__name__)
    return value


def page_of(rows: list, page_size: int, position: Callable[[Any], tuple]) -> tuple[list, str]:
    """Cut a result fetched with ``LIMIT page_size + 1`` to one page; the page and the token for
    the next one ("" when this is the last). ``position`` gives a row's sort key."""
    if len(rows) <= page_size:
        return rows, ""
    rows = rows[:page_size]
    return rows, encode_page_token(*position(rows[-1]))

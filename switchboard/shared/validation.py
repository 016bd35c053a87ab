"""Request validation that reports every bad field at once, as BadRequest field violations."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from switchboard.shared.errors import FieldViolation, InvalidArgument

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
# C0 controls and DEL: never part of a name, an id or an address (and NUL cannot be stored).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URL = re.compile(r"^https?://[^\s/?#@]+(?:/[^\s]*)?\Z")
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")  # at most 19 digits: within 64 bits before int() runs

MAX_JSON_DEPTH = 64
"""Nesting deeper than this is refused before parsing: ``json.loads`` recurses once per level, and
~3 000 levels exhaust the interpreter's stack (a RecursionError, not a ValueError). No payload a
person designs needs more than a few levels."""

# JSON strings (escapes included, an unterminated one running to the end), then the brackets.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonRejected(ValueError):
    """The text is not acceptable JSON; ``str(exc)`` says why, in words fit for a field violation."""


def ascii_int(text: str, *, maximum: int = 2**63 - 1) -> int | None:
    """``text`` as a non-negative integer of ASCII digits only, at most ``maximum``; None for
    anything else. (``str.isdigit()`` accepts "²" and "٣", which ``int()`` then refuses or reads,
    and ``int()`` refuses more than 4 300 digits with a ValueError: never parse a header with them.)"""
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be stored: a lone surrogate (from a JSON escape such as "\\ud800") has
    no UTF-8 form, and PostgreSQL or protobuf would fail on it far from where it came in."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def json_depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (0 for a scalar): a scan in C, no parsing,
    so that hostile nesting is measured in linear time and without recursion."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def parse_json(text: str | bytes, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``text`` parsed, after checking its size and nesting depth *before* parsing. Raises
    JsonRejected (a ValueError) for text too large, too deep or not JSON. The one JSON gate of the
    services and the edge: every JSON a caller sends passes here."""
    size = len(text) if isinstance(text, bytes) else len(text.encode(errors="surrogatepass"))
    if size > max_bytes:
        raise JsonRejected(f"must be at most {max_bytes:,} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise JsonRejected("must be UTF-8") from None
    # Fewer opening brackets than the bound cannot nest beyond it: skip the scan (most payloads).
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise JsonRejected(f"must not nest arrays and objects more than {max_depth} deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # ValueError: also for numbers of over 4 300 digits
        raise JsonRejected("must be valid JSON") from None


class Violations:
    """Collects field violations while a request is parsed; ``check()`` raises them together."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def uuid(self, field: str, value: str, *, required: bool = True) -> str:
        """``value`` as a canonical UUID string; "" when optional and empty."""
        if not value:
            if required:
                self.add(field, "is required")
            return ""
        try:
            return str(uuid.UUID(value))
        except ValueError:
            self.add(field, "must be a UUID")
            return ""

    def text(self, field: str, value: str, *, max_length: int, required: bool = True) -> str:
        """``value`` stripped; checked for presence, length and control characters."""
        stripped = value.strip()
        if not stripped:
            if required:
                self.add(field, "is required")
        elif len(stripped) > max_length:
            self.add(field, f"must be at most {max_length} characters")
        elif _CONTROL.search(stripped):
            self.add(field, "must not contain control characters")
        elif not is_utf8(stripped):
            self.add(field, "must be valid Unicode text (no lone surrogates)")
        return stripped

    def email(self, field: str, value: str) -> str:
        """``value`` trimmed and lower-cased, checked to look like an address."""
        normalized = value.strip().lower()
        if not normalized:
            self.add(field, "is required")
        elif len(normalized) > 254:
            self.add(field, "must be at most 254 characters")
        elif _CONTROL.search(normalized) or not _EMAIL.match(normalized):
            self.add(field, "must be an email address")
        return normalized

    def url(self, field: str, value: str, *, max_length: int = 2048, required: bool = False) -> str:
        """An absolute http(s) URL without spaces, controls or user info; trailing '/' removed."""
        stripped = value.strip().rstrip("/")
        if not stripped:
            if required:
                self.add(field, "is required")
        elif len(stripped) > max_length:
            self.add(field, f"must be at most {max_length} characters")
        elif _CONTROL.search(stripped) or not _URL.match(stripped):
            self.add(field, "must be an absolute http(s) URL")
        return stripped

    def timestamp(self, field: str, message: object) -> datetime | None:
        """A google.protobuf.Timestamp field as an aware datetime; None when unset or invalid."""
        if not message.HasField(field):  # type: ignore[attr-defined]
            return None
        try:
            return getattr(message, field).ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            self.add(field, "must be a valid time between the years 1 and 9999")
            return None

    def document(self, field: str, value: str, *, max_length: int, required: bool = False) -> str:
        """Free text kept as written (newlines and all): checked for length and NUL only."""
        if not value.strip():
            if required:
                self.add(field, "is required")
        elif len(value) > max_length:
            self.add(field, f"must be at most {max_length:,} characters")
        elif "\x00" in value:
            self.add(field, "must not contain NUL characters")
        elif not is_utf8(value):
            self.add(field, "must be valid Unicode text (no lone surrogates)")
        return value

    def json(self, field: str, value: str, *, max_bytes: int, object_only: bool = False, required: bool = False) -> str:
        """JSON text within ``max_bytes`` and ``MAX_JSON_DEPTH`` (checked before parsing), an
        object when ``object_only``; ``{}`` when optional and empty. Returns the text as given."""
        if not value:
            if required:
                self.add(field, "is required")
            return "{}"
        try:
            parsed = parse_json(value, max_bytes=max_bytes)
        except JsonRejected as exc:
            self.add(field, str(exc))
            return "{}"
        if object_only and not isinstance(parsed, dict):
            self.add(field, "must be a JSON object")
        return value

    def json_object(self, field: str, value: str, *, max_bytes: int, required: bool = False) -> str:
        """JSON text that parses as an object, within ``max_bytes``; ``{}`` when optional and empty."""
        return self.json(field, value, max_bytes=max_bytes, object_only=True, required=required)

    def page_size(self, field: str, value: int, *, default: int = 50, maximum: int = 1000) -> int:
        """0 means the default; above the maximum is lowered to it (AIP-158); negative is an error."""
        if value < 0:
            self.add(field, "must not be negative")
            return default
        return min(value or default, maximum)

    def check(self) -> None:
        """Raise InvalidArgument with every violation collected, if any."""
        if self.items:
            raise InvalidArgument(self.items)

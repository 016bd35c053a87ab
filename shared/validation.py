"""Request validation that reports every bad field at once, as BadRequest field violations."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

from shared.errors import FieldViolation, InvalidArgument

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
        elif any(ord(ch) < 32 for ch in stripped):
            self.add(field, "must not contain control characters")
        return stripped

    def email(self, field: str, value: str) -> str:
        """``value`` trimmed and lower-cased, checked to look like an address."""
        normalized = value.strip().lower()
        if not normalized:
            self.add(field, "is required")
        elif len(normalized) > 254:
            self.add(field, "must be at most 254 characters")
        elif not _EMAIL.match(normalized):
            self.add(field, "must be an email address")
        return normalized

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
        return value

    def json_object(self, field: str, value: str, *, max_bytes: int, required: bool = False) -> str:
        """JSON text that parses as an object, within ``max_bytes``; ``{}`` when optional and empty."""
        if not value:
            if required:
                self.add(field, "is required")
            return "{}"
        if len(value.encode()) > max_bytes:
            self.add(field, f"must be at most {max_bytes:,} bytes")
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            self.add(field, "must be valid JSON")
            return value
        if not isinstance(parsed, dict):
            self.add(field, "must be a JSON object")
        return value

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

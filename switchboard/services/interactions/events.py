"""Event streams: names, validation, subscriber limits (no I/O). Who may use which stream is
declared on the EventService methods (a worker: its own agent's streams only)."""

from __future__ import annotations

import re

from switchboard.shared.subscriber_limits import SubscriberLimits
from switchboard.shared.validation import Violations

__all__ = ["SubscriberLimits", "event_type", "payload", "stream_name"]

STREAM = re.compile(r"^[A-Za-z0-9_.:-](?:[A-Za-z0-9_.:/-]{0,198}[A-Za-z0-9_.:-])?\Z")
TYPE = re.compile(r"^[A-Za-z0-9._-]{1,100}\Z")
MAX_PAYLOAD = 1 << 20
MAX_BATCH = 100
MAX_BATCH_BYTES = 3 << 20


def stream_name(v: Violations, field: str, value: str) -> str:
    if not STREAM.match(value) or "//" in value:
        v.add(field, "must be 1 to 200 letters, digits or -_.:/ with no leading, trailing or double '/'")
    return value


def event_type(v: Violations, field: str, value: str) -> str:
    if not TYPE.match(value):
        v.add(field, "must be 1 to 100 letters, digits or ._-")
    return value


def payload(v: Violations, field: str, value: str) -> str:
    """An event's JSON payload: at most 1 MiB, bounded in depth (empty is refused as not JSON)."""
    if not value:
        v.add(field, "must be valid JSON")
        return value
    v.json(field, value, max_bytes=MAX_PAYLOAD)
    return value


def one_event(request) -> tuple[str, str, str, str]:
    """The checked fields of one event to publish (a PublishRequest or a PublishStreamRequest):
    (organization_id, stream, type, payload). Raises InvalidArgument naming every bad field."""
    v = Violations()
    stream = stream_name(v, "stream", request.stream)
    organization_id = v.uuid("organization_id", request.organization_id)
    kind = event_type(v, "type", request.type)
    body = payload(v, "payload_json", request.payload_json)
    v.check()
    return organization_id, stream, kind, body

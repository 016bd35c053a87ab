"""Conversions between database values and protobuf messages that every servicer needs."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp of ``value`` (naive values are taken as UTC); None (the field stays
    unset) for None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # Integer arithmetic on the timedelta: exact, and ~7x faster than Timestamp.FromDatetime
    # (which goes through calendar.timegm), which counted when runs are leased in batches.
    since = value - _EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)

"""The shared window of one stream inside a process: the events after a position, as one reader
read them from the table, for every local subscriber to take from at its own position.

The window holds *every* stored event after ``base`` up to its last one (``tail``), exactly as a
read of the table after ``base`` returned them; gaps inside it are events that retention trimmed
before they were read. So, for any position between ``base`` and ``tail``, the window's events
after that position are what a read of the table would return: a subscriber there reads memory,
not the table. A subscriber before ``base`` reads the table itself (catch-up) until it is inside.

Bounded: at most ``max_rows`` events and ``max_bytes`` of payload (the newest event is always
kept, so that the subscribers waiting for it can take it); older ones are dropped from the front
and ``base`` moves up with them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable


class StreamItem:
    """What a subscription yields: an event, or a notice (trimmed, reset).

    Events read by the shared reader are one object per event per process, given to every local
    subscriber: ``wire`` is where the servicer keeps the event's encoded message, so that it is
    encoded once, not once per subscriber."""

    __slots__ = ("sequence", "type", "payload_json", "created_at", "trimmed_after", "reset_after", "wire")

    def __init__(
        self,
        sequence: int,
        type: str = "",
        payload_json: str = "",
        created_at: object = None,
        trimmed_after: int | None = None,
        reset_after: int | None = None,
    ):
        self.sequence = sequence
        self.type = type
        self.payload_json = payload_json
        self.created_at = created_at
        self.trimmed_after = trimmed_after  # set on the trimmed notice: the sequence that was asked for
        self.reset_after = reset_after  # set on the reset notice (``sequence`` is then the head)
        self.wire: object = None

    def __repr__(self) -> str:
        return f"StreamItem(sequence={self.sequence}, type={self.type!r}, trimmed_after={self.trimmed_after}, reset_after={self.reset_after})"


def _sequence(item: StreamItem) -> int:
    return item.sequence


class Window:
    """Every stored event of one stream after ``base`` up to ``tail`` (see the module's note).
    ``generation`` is the listening connection's generation it was read under: a window of an
    earlier one may hold events of a database that since came back reset, and is not used."""

    __slots__ = ("base", "generation", "_items", "_bytes", "_max_rows", "_max_bytes")

    def __init__(self, base: int, generation: int, *, max_rows: int, max_bytes: int):
        self.base = base
        self.generation = generation
        self._items: list[StreamItem] = []
        self._bytes = 0
        self._max_rows = max_rows
        self._max_bytes = max_bytes

    @property
    def tail(self) -> int:
        return self._items[-1].sequence if self._items else self.base

    def __len__(self) -> int:
        return len(self._items)

    def covers(self, position: int) -> bool:
        """Whether the events after ``position`` are all in the window (those up to ``tail``)."""
        return self.base <= position <= self.tail

    def after(self, position: int, limit: int) -> list[StreamItem]:
        """At most ``limit`` of the window's events after ``position`` (which it must cover)."""
        start = bisect_right(self._items, position, key=_sequence)
        return self._items[start : start + limit]

    def extend(self, items: Iterable[StreamItem]) -> None:
        """Append what a read of the table after ``tail`` returned, then drop the oldest beyond
        the bounds."""
        for item in items:
            self._items.append(item)
            self._bytes += len(item.payload_json)
        drop = 0
        size = len(self._items)
        while size - drop > 1 and (size - drop > self._max_rows or self._bytes > self._max_bytes):
            self._bytes -= len(self._items[drop].payload_json)
            drop += 1
        if drop:
            self.base = self._items[drop - 1].sequence
            del self._items[:drop]

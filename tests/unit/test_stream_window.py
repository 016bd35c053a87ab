"""A stream's shared window (no I/O): what it covers, what it gives each position, and its bounds."""

from __future__ import annotations

from switchboard.services.interactions.window import StreamItem, Window


def items(*sequences: int, size: int = 10) -> list[StreamItem]:
    return [StreamItem(s, "t", "x" * size) for s in sequences]


def test_a_window_gives_each_position_the_events_after_it_and_covers_only_its_range():
    window = Window(10, generation=1, max_rows=100, max_bytes=1 << 20)
    assert window.covers(10) and not window.covers(9) and not window.covers(11)  # empty: only its base
    window.extend(items(11, 12, 13))
    assert [window.covers(p) for p in (9, 10, 13, 14)] == [False, True, True, False]
    assert [i.sequence for i in window.after(10, 100)] == [11, 12, 13]
    assert [i.sequence for i in window.after(12, 100)] == [13]
    assert window.after(13, 100) == []
    assert [i.sequence for i in window.after(10, 2)] == [11, 12]  # a page at most


def test_a_gap_in_the_window_is_kept_so_that_a_reader_sees_it_as_trimmed():
    window = Window(10, generation=1, max_rows=100, max_bytes=1 << 20)
    window.extend(items(11, 15, 16))  # 12 to 14 were trimmed before the reader read them
    assert [i.sequence for i in window.after(11, 100)] == [15, 16]
    assert window.covers(13)  # inside: the next event it is given (15) tells it what was trimmed


def test_the_oldest_events_go_beyond_the_rows_or_bytes_and_the_base_moves_up_with_them():
    window = Window(0, generation=1, max_rows=3, max_bytes=1 << 20)
    window.extend(items(1, 2, 3, 4, 5))
    assert (window.base, window.tail, len(window)) == (2, 5, 3)
    assert not window.covers(1) and window.covers(2)
    by_bytes = Window(0, generation=1, max_rows=100, max_bytes=25)
    by_bytes.extend(items(1, 2, 3))  # 30 bytes
    assert (by_bytes.base, len(by_bytes)) == (1, 2)
    huge = Window(0, generation=1, max_rows=100, max_bytes=25)
    huge.extend(items(1, size=1000))  # the newest stays, however large
    assert (huge.base, huge.tail, len(huge)) == (0, 1, 1)

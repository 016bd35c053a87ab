"""The input gates with no I/O: JSON measured before it is parsed, integers read as ASCII digits,
page tokens bound to their request and range-checked."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime

import pytest

from switchboard.shared.errors import InvalidArgument
from switchboard.shared.pagination import decode_page_token, encode_page_token, page_of
from switchboard.shared.validation import MAX_JSON_DEPTH, JsonRejected, Violations, ascii_int, json_depth, parse_json
from switchboard.runs.v1 import run_service_pb2 as pb


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "]]", "\\"[[["]', 1),  # brackets inside strings, escaped quotes, do not count
        ('"unterminated [[[[', 0),
        ("[" * 100, 100),  # unbalanced still measures (json.loads then refuses it)
    ],
)
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert json_depth(text) == depth


def test_json_nested_beyond_the_bound_is_refused_before_parsing_in_linear_time():
    deep = "[" * 500_000 + "]" * 500_000  # ~1 MB: json.loads would raise RecursionError
    started = time.perf_counter()
    with pytest.raises(JsonRejected, match="more than 64 deep"):
        parse_json(deep, max_bytes=1 << 20)
    assert time.perf_counter() - started < 2
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, max_bytes=1 << 20) is not None
    assert sys.getrecursionlimit() > MAX_JSON_DEPTH * 4  # the bound leaves room to parse


@pytest.mark.parametrize(
    ("value", "max_bytes", "description"),
    [
        ('"' + "x" * 98 + "é", 100, "must be at most 100 bytes"),  # 100 characters, 101 bytes
        ("{", 100, "must be valid JSON"),
        ("1" * 5000, 10_000, "must be valid JSON"),  # beyond int()'s 4 300 digits: a ValueError, caught
        (b"\xff", 100, "must be UTF-8"),
        ("[" * 65 + "]" * 65, 1000, "must not nest arrays and objects more than 64 deep"),
    ],
)
def test_parse_json_says_why(value, max_bytes, description):
    with pytest.raises(JsonRejected) as caught:
        parse_json(value, max_bytes=max_bytes)
    assert str(caught.value) == description


def test_violations_json_and_text_refuse_what_cannot_be_stored():
    v = Violations()
    v.json_object("a", "[1]", max_bytes=100)
    v.json("b", "[" * 100 + "]" * 100, max_bytes=1000)
    v.email("c", "a\x00b@example.com")
    v.text("d", "ok\ud800", max_length=10)
    v.document("e", "line\ud800", max_length=10)
    v.url("f", "http://host\x00/x")
    v.url("g", "javascript:alert(1)")
    assert [(i.field, i.description) for i in v.items] == [
        ("a", "must be a JSON object"),
        ("b", "must not nest arrays and objects more than 64 deep"),
        ("c", "must be an email address"),
        ("d", "must be valid Unicode text (no lone surrogates)"),
        ("e", "must be valid Unicode text (no lone surrogates)"),
        ("f", "must be an absolute http(s) URL"),
        ("g", "must be an absolute http(s) URL"),
    ]
    assert Violations().url("h", " https://slack.example/api/ ") == "https://slack.example/api"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("1700000000", 1700000000), (str(2**63 - 1), 2**63 - 1), (str(2**63), None), ("²", None), ("١٢", None),
     ("9" * 5000, None), ("-1", None), ("+1", None), (" 1", None), ("1_000", None), ("", None)],
)
def test_ascii_int_reads_ascii_digits_within_range_only(text, expected):
    assert ascii_int(text) == expected


def test_a_page_token_round_trips_for_its_request_and_any_page_size():
    request = pb.ListRunsRequest(organization_id=str(uuid.uuid4()), lanes=[pb.LANE_ACTION], page_size=2)
    at = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    row_id = str(uuid.uuid4())
    rows, token = page_of([1, 2, 3], 2, lambda r: (at, row_id), request)
    assert rows == [1, 2] and token
    again = pb.ListRunsRequest(organization_id=request.organization_id, lanes=[pb.LANE_ACTION], page_size=50, page_token=token)
    assert decode_page_token(again, (datetime, uuid.UUID)) == [at, row_id]
    assert page_of([1, 2], 2, lambda r: (at, row_id), request) == ([1, 2], "")


def test_a_page_token_is_refused_for_a_request_with_other_fields():
    request = pb.ListRunsRequest(organization_id=str(uuid.uuid4()), lanes=[pb.LANE_ACTION])
    token = encode_page_token(request, datetime.now(UTC), str(uuid.uuid4()))
    for other in (
        pb.ListRunsRequest(organization_id=request.organization_id, page_token=token),
        pb.ListRunsRequest(organization_id=request.organization_id, lanes=[pb.LANE_ACTION], subject_id="s", page_token=token),
        pb.ListRunsRequest(organization_id=str(uuid.uuid4()), lanes=[pb.LANE_ACTION], page_token=token),
    ):
        with pytest.raises(InvalidArgument) as caught:
            decode_page_token(other, (datetime, uuid.UUID))
        assert caught.value.violations[0].field == "page_token"

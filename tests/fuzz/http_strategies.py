"""Hypothesis strategies for the edge's HTTP routes: bodies and headers of every shape a chat
platform, a worker or anyone on the internet may send, hostile ones included."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

from tests.fuzz.strategies import DEEP_JSON, HOSTILE_TEXT
from tests.support.slack import slack_signed_headers

INVALID_UTF8_BYTES = [b"\xff\xfe", b"\xed\xa0\x80", b"caf\xc3", b"\xc0\xaf", b"\x80"]
ODD_NUMBERS = ["²", "١٢٣", "9" * 5000, str(2**63), str(2**64), "-1", "+5", " 7", "0x10", "1e3", "", "NaN", "٣", "1.5"]
# What a header value can carry on the wire: visible ASCII and any byte from 0x80 (invalid UTF-8
# included), never a NUL, CR or LF (HTTP/1.1 itself forbids them, and clients refuse to send them).
HEADER_VALUE = st.one_of(
    st.sampled_from(["", "x", "Bearer", "Bearer ", "Bearer x", "application/json", "-1", "0", "chunked", "close", "a" * 8000]),
    st.sampled_from(ODD_NUMBERS),
    st.sampled_from(INVALID_UTF8_BYTES),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF), min_size=1, max_size=10).map(lambda s: s.encode("utf-8")),
)
HEADER_NAME = st.one_of(
    st.sampled_from(["x-anything", "accept", "accept-encoding", "content-type", "cookie", "x-forwarded-for", "x-request-id", "origin", "range", "expect"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True),
)


def odd_headers() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(HEADER_NAME, HEADER_VALUE, max_size=4)


def _json_value() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from([2**64, -(2**63) - 1, 10**400]), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


def hostile_body() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from([b"", b"{}", b"[]", b"null", b"\x00", b"{", b"x" * (1 << 20), b"9" * 5000, b"1e999999"]),
        st.sampled_from(DEEP_JSON).map(str.encode),
        st.sampled_from(INVALID_UTF8_BYTES),
        st.binary(max_size=64),
        _json_value().map(lambda v: json.dumps(v).encode()),
    )


def slack_payload(team_ids: list[str], question_ids: list[str]) -> st.SearchStrategy[Any]:
    """Slack interaction payloads: block_actions clicks on real and unknown questions, and every
    shape a field may take instead of the one Slack sends."""
    question = st.one_of(st.sampled_from(question_ids), st.uuids().map(str), st.sampled_from(HOSTILE_TEXT[:25]))
    action = st.fixed_dictionaries(
        {},
        optional={"action_id": st.one_of(st.sampled_from(["yes", "no"]), _json_value()), "block_id": question, "value": st.one_of(question, _json_value())},
    )
    actions = st.one_of(st.lists(action, max_size=2), st.sampled_from(["yes", [7], None, {}, [None], [[]], 7, [""]]))
    real_team = st.sampled_from(team_ids).map(lambda t: {"id": t})
    team = st.one_of(real_team, real_team, real_team, st.sampled_from([None, "T1", [], {}, {"id": None}, {"id": 7}, {"id": "\x00"}]))
    user = st.one_of(st.sampled_from([{"id": "U1"}, {"id": "U2"}]), st.sampled_from([None, "U1", {}, {"id": ["U1"]}, {"id": 10**30}]))
    shaped = st.fixed_dictionaries(
        {"type": st.sampled_from(["block_actions", "block_actions", "view_submission", "", None, 7]), "team": team},
        optional={"user": user, "actions": actions},
    )
    return st.one_of(
        shaped,
        shaped,
        shaped,
        _json_value(),
        st.sampled_from(DEEP_JSON),
    )


def slack_request(team_ids: list[str], question_ids: list[str], secrets: dict[str, str]) -> st.SearchStrategy[tuple[bytes, dict[str, Any]]]:
    """(body, headers) of a Slack webhook call: form-encoded payloads signed with the right secret
    (so that they reach the code past the signature check), badly signed, or not Slack's at all."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
        payload = draw(slack_payload(team_ids, question_ids))
        kind = draw(st.sampled_from(["form", "form", "form", "raw-json", "hostile"]))
        if kind == "form":
            text = payload if isinstance(payload, str) else json.dumps(payload)
            body = urlencode({"payload": text}).encode()
        elif kind == "raw-json":
            body = json.dumps(payload).encode() if not isinstance(payload, str) else payload.encode()
        else:
            body = draw(st.one_of(hostile_body(), st.sampled_from([b"payload=" + b"%5B" * 5000, b"payload=%ff%fe", b"payload=", b"payload=1&payload=2", b"a=b"])))
        team = payload.get("team") if isinstance(payload, dict) else None
        secret = secrets.get(team.get("id")) if isinstance(team, dict) and isinstance(team.get("id"), str) else None
        signing = draw(st.sampled_from(["signed", "signed", "signed", "stale", "odd-timestamp", "odd-timestamp", "bad-signature", "none"]))
        headers: dict[str, Any] = {"content-type": "application/x-www-form-urlencoded"}
        if signing in ("signed", "stale") and secret:
            stamp = int(time.time()) - (0 if signing == "signed" else 3600)
            headers.update({k.lower(): v for k, v in slack_signed_headers(secret, body, timestamp=stamp).items()})
        elif signing == "odd-timestamp":
            headers["x-slack-request-timestamp"] = draw(st.sampled_from(ODD_NUMBERS))
            headers["x-slack-signature"] = draw(st.sampled_from(["v0=" + "0" * 64, "v0=", "", "v1=abc", "v0=" + "g" * 64]))
        elif signing == "bad-signature":
            headers["x-slack-request-timestamp"] = str(int(time.time()))
            headers["x-slack-signature"] = draw(st.one_of(HEADER_VALUE, st.just("v0=" + "0" * 64)))
        headers.update(draw(odd_headers()))
        return body, headers

    return build()


def telegram_update(question_ids: list[str]) -> st.SearchStrategy[bytes]:
    data = st.one_of(
        st.sampled_from(question_ids).map(lambda q: f"{q}:yes"),
        st.uuids().map(lambda u: f"{u}:yes"),
        st.sampled_from(["", ":", "::", "x:y:z", "\x00:yes", "9" * 5000]),
        _json_value(),
    )
    callback = st.one_of(
        st.fixed_dictionaries({}, optional={"id": st.one_of(st.text(max_size=8), _json_value()), "from": st.one_of(st.just({"id": 42}), _json_value()), "data": data}),
        _json_value(),
    )
    update = st.one_of(st.fixed_dictionaries({"update_id": st.integers()}, optional={"callback_query": callback, "message": _json_value()}), _json_value())
    return st.one_of(update.map(lambda u: json.dumps(u).encode()), hostile_body())


def path_segment() -> st.SearchStrategy[str]:
    """A path segment as sent: ids, odd text, percent-encoded bytes of any kind."""
    return st.one_of(
        st.uuids().map(str),
        st.sampled_from(["", "x", "..", ".", "%00", "%ff%fe", "%2F", "a%20b", "%C0%AF", "9" * 300, "x" * 5000]),
        st.text(max_size=20).map(lambda s: quote(s, safe="")),
    )

"""The secret proxy's request-head parser and header filter: only canonical paths (the egress
policy judges the path the upstream will act on), bounded heads, every bad field named at once;
hop-by-hop headers never travel."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.services.secretproxy.head import HOP_BY_HOP, MAX_HEADER_BYTES, MAX_HEADER_FIELDS, MAX_PATH_BYTES, forwardable, parse_head
from switchboard.shared.errors import InvalidArgument
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb

FAST = settings(max_examples=100, derandomize=True, database=None, deadline=None)


def head(path: str = "/v1/chat", *, method: str = "POST", upstream: str = "openai", headers=(), source_address: str = ""):
    return pb.ForwardRequestHead(
        method=method,
        upstream=upstream,
        path=path,
        headers=[pb.HttpHeader(name=n, value=v) for n, v in headers],
        source_address=source_address,
    )


def refused_fields(message: pb.ForwardRequestHead) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        parse_head(message)
    return [violation.field for violation in caught.value.violations]


# Segments made of the pieces that make paths ambiguous: dots, encoded dots and slashes, empty
# segments, backslashes, semicolons, and ordinary text.
_PIECES = ["v1", "admin", ".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%2f", "%2F", "%5c", "\\", ";", "%3b", "%25", "a.b", "~", "%61", ""]
segments = st.lists(st.sampled_from(_PIECES), min_size=1, max_size=3).map("".join)
tricky_paths = st.builds(
    lambda parts, query: "/" + "/".join(parts) + query,
    st.lists(segments, min_size=1, max_size=5),
    st.sampled_from(["", "?q=1", "?next=/../admin", "?a=%2f"]),
)


@FAST
@given(tricky_paths)
def test_an_accepted_path_is_the_path_the_upstream_acts_on(path: str):
    """What the policy judges (the URL's decoded path) has the raw path's segments, none of them
    '.', '..' or empty, and nothing that servers read differently ('\\', ';', an encoded '/')."""
    try:
        parsed = parse_head(head(path))
    except InvalidArgument as refused:
        assert [v.field for v in refused.violations] == ["head.path"]
        raw = path.split("?")[0]
        decoded = urllib.parse.unquote(raw).split("/")[1:]
        assert (
            "\\" in raw or ";" in raw or "%2f" in raw.lower() or "%5c" in raw.lower()
            or any(s in ("", ".", "..") for s in decoded[:-1]) or decoded[-1] in (".", "..")
        ), f"{path!r} was refused but is canonical"
        return
    assert parsed.path == path
    raw = path.split("?")[0]
    for bad in ("\\", ";", "%2f", "%5c"):
        assert bad not in raw.lower()
    seen = httpx.URL("http://upstream.invalid" + path).path
    assert seen == urllib.parse.unquote(raw)
    assert seen.count("/") == raw.count("/")
    inner, last = seen.split("/")[1:-1], seen.split("/")[-1]
    assert all(s not in ("", ".", "..") for s in inner) and last not in (".", "..")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/../admin",
        "/v1/%2e%2e/admin",
        "/v1/.%2E/admin",
        "/v1/./admin",
        "/v1/..",
        "/v1/.",
        "/v1//admin",
        "//v1",
        "/v1%2fadmin",
        "/v1%2Fadmin",
        "/v1%5cadmin",
        "/v1\\admin",
        "/v1/admin;jsessionid=x",
        "v1/admin",
        "",
        "/v1#fragment",
        "/v1/a b",
        "/v1/\tadmin",
        "/v1/\x00",
        "/v1/\x7f",
        "/v1/\u2028",
        "/" + "a" * MAX_PATH_BYTES,
        "/" + "é" * (MAX_PATH_BYTES // 2),  # 8 KiB of characters, but over 8 KiB of bytes
    ],
)
def test_paths_that_are_not_canonical_or_not_bounded_are_refused(path: str):
    assert refused_fields(head(path)) == ["head.path"]


@pytest.mark.parametrize(
    "path",
    ["/", "/v1/", "/v1/chat/completions?stream=true", "/v1?next=/../admin", "/v1/%61dmin", "/a.b/~x", "/" + "a" * (MAX_PATH_BYTES - 1)],
)
def test_canonical_paths_are_kept_as_received(path: str):
    assert parse_head(head(path)).path == path


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (head(method="get"), "head.method"),
        (head(method=""), "head.method"),
        (head(method="G" * 17), "head.method"),
        (head(method="GET "), "head.method"),
        (head(upstream="OpenAI"), "head.upstream"),
        (head(upstream=""), "head.upstream"),
        (head(upstream="_x"), "head.upstream"),
        (head(upstream="a" * 65), "head.upstream"),
        (head(upstream="open/ai"), "head.upstream"),
        (head(headers=[("x y", "1")]), "head.headers[0].name"),
        (head(headers=[("ok", "1"), ("", "1")]), "head.headers[1].name"),
        (head(headers=[("x-a", "1\r\nx-b: 2")]), "head.headers[0].value"),
        (head(headers=[("x-a", "1\n")]), "head.headers[0].value"),
        (head(headers=[("x-a", "\x00")]), "head.headers[0].value"),
        (head(headers=[("x-a", "€")]), "head.headers[0].value"),
        (head(headers=[("x-a", "1")] * (MAX_HEADER_FIELDS + 1)), "head.headers"),
        (head(headers=[("x-a", "v" * (MAX_HEADER_BYTES // 2)), ("x-b", "v" * (MAX_HEADER_BYTES // 2))]), "head.headers"),
        (head(source_address="not-an-address"), "head.source_address"),
        (head(source_address="10.0.0.1:443"), "head.source_address"),
    ],
)
def test_a_bad_field_is_named(message: pb.ForwardRequestHead, field: str):
    assert refused_fields(message) == [field]


def test_every_bad_field_is_named_at_once():
    message = head("/../x", method="get", upstream="A", headers=[("bad name", "a\rb")], source_address="x")
    assert refused_fields(message) == [
        "head.method",
        "head.upstream",
        "head.path",
        "head.headers[0].name",
        "head.headers[0].value",
        "head.source_address",
    ]


def test_a_head_at_its_bounds_is_accepted():
    fields = [("x-a", "v")] * MAX_HEADER_FIELDS
    assert len(parse_head(head(headers=fields)).headers) == MAX_HEADER_FIELDS
    big = [("x-a", "v" * (MAX_HEADER_BYTES // 2 - 3)), ("x-b", "v" * (MAX_HEADER_BYTES // 2 - 3))]
    assert parse_head(head(headers=big)).headers == big
    assert parse_head(head(method="G" * 16, upstream="a" * 64)).method == "G" * 16


def test_headers_keep_their_order_and_duplicates_and_addresses_are_canonical():
    parsed = parse_head(head(headers=[("Accept", "a"), ("X-Dup", "1"), ("x-dup", "2"), ("X-Latin", "café")], source_address="2001:DB8::1"))
    assert parsed.headers == [("Accept", "a"), ("X-Dup", "1"), ("x-dup", "2"), ("X-Latin", "café")]
    assert parsed.source_address == "2001:db8::1"
    assert parse_head(head()).source_address is None


# Header names: hop-by-hop ones in any case, ordinary ones, and ones a Connection header may name.
_NAMES = sorted(HOP_BY_HOP) + ["Connection", "TE", "Transfer-Encoding", "Keep-Alive", "Content-Type", "X-Custom", "x-custom", "Accept", "X-Secret"]
header_lists = st.lists(
    st.tuples(
        st.sampled_from(_NAMES),
        st.one_of(st.sampled_from(["1", "close", "x-custom", " X-Secret , keep-alive", "accept,,"]), st.text("abc, -", max_size=8)),
    ),
    max_size=10,
)


@FAST
@given(header_lists, st.lists(st.sampled_from(["content-length", "Accept", "x-none"]), max_size=2))
def test_hop_by_hop_headers_and_those_connection_names_never_travel(headers, also_drop):
    kept = forwardable(headers, also_drop=also_drop)
    named = {token.strip().lower() for name, value in headers if name.lower() == "connection" for token in value.split(",")}
    dropped = set(HOP_BY_HOP) | named | {name.lower() for name in also_drop}
    # Nothing dropped travels; everything else travels, in order, duplicates kept.
    assert kept == [(name, value) for name, value in headers if name.lower() not in dropped]
    assert not {name.lower() for name, _ in kept} & (set(HOP_BY_HOP) | {"connection"})


def test_a_connection_header_drops_the_fields_it_names():
    headers = [("Connection", "close, X-Secret"), ("X-Secret", "s"), ("x-secret", "t"), ("TE", "trailers"), ("Accept", "a")]
    assert forwardable(headers) == [("Accept", "a")]
    assert forwardable([("Host", "evil"), ("Content-Length", "5"), ("Accept", "a")], also_drop=["content-length"]) == [("Accept", "a")]

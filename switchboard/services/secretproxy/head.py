"""A worker's request head: validation, and the headers that may travel (hop-by-hop ones never do).

Everything here is about the shape of the request, before any secret or policy is looked at.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from switchboard.services.secretproxy.upstreams import Upstream
from switchboard.shared.validation import Violations
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb

MAX_PATH_BYTES = 8 * 1024
MAX_HEADER_FIELDS = 100
MAX_HEADER_BYTES = 64 * 1024
_METHOD = re.compile(r"^[A-Z]{1,16}\Z")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}\Z")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_UPSTREAM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded. Host is set from the URL.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
        "te", "trailer", "transfer-encoding", "upgrade", "host",
    }
)
# The body's framing is the proxy's to set for its own connection (a worker's Content-Length that
# disagrees with the body it sends would break the upstream request mid-way).
REQUEST_FRAMING = ("content-length", "expect")


@dataclass(frozen=True)
class RequestHead:
    method: str
    upstream: str
    path: str  # as received, with the query string
    headers: list[tuple[str, str]]
    source_address: str | None

    def url(self, upstream: Upstream) -> httpx.URL:
        return httpx.URL(str(upstream.base_url) + self.path)


def parse_head(message: pb.ForwardRequestHead) -> RequestHead:
    """Raises InvalidArgument naming each bad field."""
    v = Violations()
    if not _METHOD.match(message.method):
        v.add("head.method", "must be an uppercase HTTP method such as GET or POST")
    if not _UPSTREAM.match(message.upstream):
        v.add("head.upstream", "must be an upstream name: 1 to 64 of a-z, 0-9, '_' and '-'")
    path = message.path
    if not path.startswith("/") or len(path.encode()) > MAX_PATH_BYTES or any(c.isspace() or ord(c) < 0x20 for c in path) or "#" in path:
        v.add("head.path", "must start with '/', be at most 8 KiB and hold no whitespace, control character or fragment")
    else:
        try:
            httpx.URL("http://upstream.invalid" + path)
            valid = True
        except httpx.InvalidURL:
            valid = False
        if not valid:
            v.add("head.path", "is not a valid URL path")
        elif not _canonical(path.split("?")[0]):
            # The policy must judge the path the upstream will act on. "/../" would climb out of
            # the upstream's base path (https://api.groq.com/openai); "//", "\\", ";" and encoded
            # slashes are read differently by different servers (nginx merges slashes, Tomcat
            # drops ";…"), so a deny of /v1/admin could be walked around.
            v.add("head.path", "must be a canonical path: no '.', '..' or empty segments, no '\\', ';' or encoded slash")
    if len(message.headers) > MAX_HEADER_FIELDS:
        v.add("head.headers", f"at most {MAX_HEADER_FIELDS} fields")
    total = 0
    for i, header in enumerate(message.headers):
        total += len(header.name) + len(header.value)
        if not _HEADER_NAME.match(header.name):
            v.add(f"head.headers[{i}].name", "must be an HTTP header field name")
        if _FORBIDDEN_IN_VALUE.search(header.value) or not _latin1(header.value):
            v.add(f"head.headers[{i}].value", "must hold no CR, LF or NUL and only Latin-1 characters")
    if total > MAX_HEADER_BYTES:
        v.add("head.headers", "at most 64 KiB in all")
    source = message.source_address or None
    if source is not None:
        try:
            source = str(ipaddress.ip_address(source))
        except ValueError:
            v.add("head.source_address", "must be an IP address")
    v.check()
    return RequestHead(message.method, message.upstream, path, [(h.name, h.value) for h in message.headers], source)


def _canonical(raw_path: str) -> bool:
    lowered = raw_path.lower()
    if "\\" in raw_path or ";" in raw_path or "%2f" in lowered or "%5c" in lowered:
        return False
    segments = urllib.parse.unquote(raw_path).split("/")[1:]
    inner, last = segments[:-1], segments[-1] if segments else ""
    # An empty last segment is a trailing slash ("/v1/"), which is fine; empty inner ones are "//".
    return all(segment not in ("", ".", "..") for segment in inner) and last not in (".", "..")


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def forwardable(headers: Iterable[tuple[str, str]], *, also_drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop fields, those the Connection header names, and ``also_drop``."""
    headers = list(headers)
    drop = set(HOP_BY_HOP) | {name.lower() for name in also_drop}
    for name, value in headers:
        if name.lower() == "connection":
            drop.update(token.strip().lower() for token in value.split(","))
    return [(name, value) for name, value in headers if name.lower() not in drop]

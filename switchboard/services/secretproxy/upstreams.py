"""Named upstreams: where `Forward` sends a worker's request, and how a provider credential goes in.

Workers address a request as (upstream name, path), never as a URL: the proxy only ever talks to
hosts an operator named. The common LLM APIs are built in; ``SWITCHBOARD_PROXY_UPSTREAMS`` (a JSON
object) adds upstreams or overrides built-in ones:

    {"openai": "https://openai-gateway.internal",
     "echo": {"base_url": "http://127.0.0.1:9000", "allow_private": true,
              "credential_header": "x-api-key", "credential_prefix": ""}}

An entry that overrides a built-in upstream keeps its credential header and prefix unless it names
its own. ``allow_private`` exempts an upstream from the global deny of private, loopback and link-local
destinations (an internal gateway, a loopback server in tests); nothing else is exempt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")


@dataclass(frozen=True)
class Upstream:
    """One upstream: its base URL, and the header a provider credential is sent in."""

    name: str
    base_url: httpx.URL
    credential_header: str = "authorization"
    credential_prefix: str = "Bearer "
    allow_private: bool = False

    @property
    def host(self) -> str:
        return self.base_url.host

    @property
    def port(self) -> int:
        return self.base_url.port or (443 if self.base_url.scheme == "https" else 80)

    def credential_value(self, credential: str) -> str:
        return f"{self.credential_prefix}{credential}"


def _builtin(name: str, url: str, header: str = "authorization", prefix: str = "Bearer ") -> Upstream:
    return Upstream(name, httpx.URL(url), header, prefix)


BUILTIN_UPSTREAMS: Mapping[str, Upstream] = {
    u.name: u
    for u in (
        _builtin("openai", "https://api.openai.com"),
        _builtin("anthropic", "https://api.anthropic.com", "x-api-key", ""),
        _builtin("mistral", "https://api.mistral.ai"),
        _builtin("groq", "https://api.groq.com/openai"),
        _builtin("openrouter", "https://openrouter.ai/api"),
        _builtin("gemini", "https://generativelanguage.googleapis.com", "x-goog-api-key", ""),
    )
}


def parse_upstreams(raw: str | None) -> dict[str, Upstream]:
    """The built-in upstreams with the operator's JSON applied. Raises ValueError naming the
    entry and the problem (the message never contains more than names and URLs)."""
    upstreams = dict(BUILTIN_UPSTREAMS)
    if not raw:
        return upstreams
    try:
        configured = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(configured, dict):
        raise ValueError('expected a JSON object of {"name": "https://…"} or {"name": {"base_url": …}}')
    for name, entry in configured.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"upstream name {name!r}: 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit")
        upstreams[name] = _upstream(name, {"base_url": entry} if isinstance(entry, str) else entry, BUILTIN_UPSTREAMS.get(name))
    return upstreams


def _upstream(name: str, entry: object, builtin: Upstream | None) -> Upstream:
    """``builtin``: the built-in upstream of that name, whose credential header and prefix an
    override keeps unless it names its own (a gateway in front of Anthropic still wants x-api-key)."""
    if not isinstance(entry, dict):
        raise ValueError(f"upstream {name!r}: expected a URL or an object with base_url")
    unknown = set(entry) - {"base_url", "credential_header", "credential_prefix", "allow_private"}
    if unknown:
        raise ValueError(f"upstream {name!r}: unknown field(s) {', '.join(sorted(unknown))}")
    base_url = entry.get("base_url")
    if not isinstance(base_url, str):
        raise ValueError(f"upstream {name!r}: base_url is required")
    try:
        url = httpx.URL(base_url.rstrip("/"))
    except httpx.InvalidURL:
        raise ValueError(f"upstream {name!r}: base_url is not a URL") from None
    if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment or url.userinfo:
        raise ValueError(f"upstream {name!r}: base_url must be http(s)://host[:port][/path], without query or credentials")
    header = entry.get("credential_header", builtin.credential_header if builtin else "authorization")
    if not isinstance(header, str) or not _HEADER.match(header):
        raise ValueError(f"upstream {name!r}: credential_header must be a header name")
    if "credential_prefix" in entry:
        prefix = entry["credential_prefix"]
    elif builtin is not None and header.lower() == builtin.credential_header:
        prefix = builtin.credential_prefix
    else:
        prefix = "Bearer " if header.lower() == "authorization" else ""
    if not isinstance(prefix, str) or any(c in prefix for c in "\r\n"):
        raise ValueError(f"upstream {name!r}: credential_prefix must be a string without line breaks")
    allow_private = entry.get("allow_private", False)
    if not isinstance(allow_private, bool):
        raise ValueError(f"upstream {name!r}: allow_private must be true or false")
    return Upstream(name, url, header.lower(), prefix, allow_private)

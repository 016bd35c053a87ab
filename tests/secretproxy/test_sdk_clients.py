"""Providers' own SDKs, unchanged, through the edge's proxy route: the `anthropic` and `openai`
Python SDKs are pointed at `/v1/proxy/<upstream>`, with the worker token as a default header and a
placeholder as their API key, and complete a streaming request against a loopback provider. The
provider sees the real key; the SDK gets the stream, and never the key (the provider quotes it
back, and the proxy redacts it)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anthropic
import openai
import pytest

from switchboard.services.secretproxy.redaction import REDACTED
from switchboard.services.secretproxy.upstreams import parse_upstreams
from switchboard.shared.logs import capture_log_lines
from tests.secretproxy.conftest import Proxy, running_proxy
from tests.secretproxy.test_edge_proxy import edge_for
from tests.support.asgi import serve_asgi
from tests.support.upstream import FakeProvider

REAL_KEY = "sk-real-provider-key-5f2e9c"
STORED_CREDENTIAL = "org-stored-credential-a71d"
QUOTED = f"Hello from the loopback provider; you sent {REDACTED.decode()}"


@dataclass
class Stack:
    proxy: Proxy
    provider: FakeProvider
    edge_url: str


@pytest.fixture
async def stack(migrated_database, identity) -> AsyncIterator[Stack]:
    provider = FakeProvider(key=REAL_KEY)
    async with serve_asgi(provider.app()) as provider_url:
        # The built-in upstreams, moved to loopback: each keeps its credential header (x-api-key
        # for anthropic, Authorization for openai).
        upstreams = json.dumps({name: {"base_url": provider_url, "allow_private": True} for name in ("anthropic", "openai")})
        with capture_log_lines() as lines:
            async with running_proxy(migrated_database, identity, None, provider_url, proxy_upstreams=upstreams) as proxy:
                async with edge_for(proxy) as edge:
                    yield Stack(proxy, provider, str(edge.base_url).rstrip("/"))
        logged = lines.getvalue()
        assert not [s for s in (*proxy.sensitive, REAL_KEY) if s in logged], "a key or placeholder appeared in a log line"


async def _worker_with_placeholder(proxy: Proxy, *, stored_credential_for: str | None) -> tuple[str, str]:
    """(worker token, placeholder of REAL_KEY) for a new organisation that allows the loopback
    provider, with a stored credential of its own for ``stored_credential_for`` if named."""
    org = await proxy.org_ready()
    if stored_credential_for:
        await proxy.put_credential(org, STORED_CREDENTIAL, provider=stored_credential_for)
    _, placeholder = await proxy.put_secret(org, REAL_KEY)
    return proxy.worker(org).token, placeholder


def test_an_override_of_a_built_in_upstream_keeps_its_credential_header():
    upstreams = parse_upstreams(json.dumps({"anthropic": "http://127.0.0.1:9", "gemini": {"base_url": "http://127.0.0.1:9"}}))
    assert (upstreams["anthropic"].credential_header, upstreams["anthropic"].credential_prefix) == ("x-api-key", "")
    assert (upstreams["gemini"].credential_header, upstreams["gemini"].credential_prefix) == ("x-goog-api-key", "")
    own = parse_upstreams(json.dumps({"anthropic": {"base_url": "http://127.0.0.1:9", "credential_header": "authorization"}}))["anthropic"]
    assert (own.credential_header, own.credential_prefix) == ("authorization", "Bearer ")


@pytest.mark.parametrize("stored_credential", [False, True], ids=["no-stored-credential", "stored-credential-not-injected"])
@pytest.mark.parametrize("key_as", ["api_key", "x-api-key"], ids=["sdk-api-key-as-bearer", "x-api-key-header"])
async def test_the_anthropic_sdk_streams_through_the_edge_with_a_placeholder_as_its_key(stack: Stack, key_as: str, stored_credential: bool):
    token, placeholder = await _worker_with_placeholder(stack.proxy, stored_credential_for="anthropic" if stored_credential else None)
    # The current SDK sends api_key as "Authorization: Bearer …"; older ones sent X-Api-Key.
    key = {"api_key": placeholder} if key_as == "api_key" else {"default_headers": {"X-Api-Key": placeholder}}
    headers = {"X-Switchboard-Token": token, **key.pop("default_headers", {})}
    client = anthropic.AsyncAnthropic(base_url=f"{stack.edge_url}/v1/proxy/anthropic", default_headers=headers, max_retries=0, **key)
    async with client:
        raw = await client.messages.with_raw_response.create(
            model="claude-loopback", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        events = [event async for event in await raw.parse()]
    assert raw.http_response.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    assert [e.type for e in events][0] == "message_start" and events[-1].type == "message_stop"
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == QUOTED
    assert all(REAL_KEY not in value for value in raw.headers.values())
    [seen] = stack.provider.received
    # The real key where the SDK put the placeholder, and no stored credential added beside it.
    sent_in = "authorization" if key_as == "api_key" else "x-api-key"
    assert seen.header(sent_in) == (f"Bearer {REAL_KEY}" if sent_in == "authorization" else REAL_KEY)
    assert seen.header("x-api-key" if sent_in == "authorization" else "authorization") is None
    assert seen.header("x-switchboard-token") is None and placeholder not in json.dumps(seen.headers)
    assert seen.header("anthropic-version")  # the SDK's own headers travel as they are


@pytest.mark.parametrize("stored_credential", [False, True], ids=["no-stored-credential", "stored-credential-not-injected"])
async def test_the_openai_sdk_streams_through_the_edge_with_a_placeholder_as_its_key(stack: Stack, stored_credential: bool):
    token, placeholder = await _worker_with_placeholder(stack.proxy, stored_credential_for="openai" if stored_credential else None)
    client = openai.AsyncOpenAI(
        api_key=placeholder, base_url=f"{stack.edge_url}/v1/proxy/openai/v1", default_headers={"X-Switchboard-Token": token}, max_retries=0
    )
    async with client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-loopback", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [chunk async for chunk in raw.parse()]
    assert raw.http_response.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == QUOTED
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(REAL_KEY not in value for value in raw.headers.values())
    [seen] = stack.provider.received
    assert seen.header("authorization") == f"Bearer {REAL_KEY}"
    assert seen.header("x-switchboard-token") is None and placeholder not in json.dumps(seen.headers)


async def test_an_sdk_with_another_organisations_placeholder_gets_the_refusal_as_an_api_error(stack: Stack):
    _, placeholder = await _worker_with_placeholder(stack.proxy, stored_credential_for=None)
    stranger, _ = await _worker_with_placeholder(stack.proxy, stored_credential_for="anthropic")
    client = anthropic.AsyncAnthropic(
        api_key=placeholder, base_url=f"{stack.edge_url}/v1/proxy/anthropic", default_headers={"X-Switchboard-Token": stranger}, max_retries=0
    )
    async with client:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await client.messages.create(model="claude-loopback", max_tokens=8, messages=[{"role": "user", "content": "hi"}], stream=True)
    assert refused.value.status_code == 401 and refused.value.body["reason"] == "UNKNOWN_PLACEHOLDER"
    assert stack.provider.received == []

"""Every route of the edge, fuzzed over real HTTP: hostile bodies and headers never get a 500, nor
a 502 the edge made up (a 502 only passes on an upstream's own failure), and no request changes
a row of organisation B."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import assume, given, seed
from hypothesis import strategies as st

from tests.fuzz import findings
from tests.fuzz.budget import SEED, TALLY, fuzz_settings
from tests.fuzz.http_strategies import (
    HEADER_VALUE, ODD_NUMBERS, hostile_body, odd_headers, path_segment, slack_request, telegram_update,
)  # fmt: skip
from tests.fuzz.strategies import PATHS, UPSTREAMS
from tests.fuzz.world import World
from tests.support.slack import slack_signed_headers

SSE_FIRST_BYTES_SECONDS = 0.5  # an accepted stream is read this long, then the client hangs up
# Upstreams of the fuzz stack that fail for real: nothing listens behind "closed"; "/break" breaks
# off mid-response. A 502 on them is the upstream's failure reported, not the edge's.
FAILING_UPSTREAM = "closed"


class ServerError(AssertionError):
    """An answer no request may get."""


class EdgeCrashed(ServerError):
    pass


class EdgeMadeUp502(ServerError):
    pass


class ConnectionDropped(ServerError):
    pass


@dataclass
class Reply:
    status: int | None  # None: the connection broke before or during the answer
    body: bytes
    error: str = ""


@pytest.fixture(scope="package")
async def http(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=30) as client:
        yield client


def _url(path: str, query: dict[str, Any] | None = None) -> bytes:
    """The request target exactly as written (percent-encoding, dots), not normalised by httpx."""
    target = path.encode("utf-8", "surrogatepass")
    if query:
        target += b"?" + str(httpx.QueryParams(query)).encode()
    return target


async def _send(client: httpx.AsyncClient, method: str, target: bytes, *, headers: dict[str, Any], body: bytes = b"", stream_seconds: float | None = None) -> Reply:
    """One request; for a stream, the status and what arrives within ``stream_seconds``."""
    try:
        request = client.build_request(method, client.base_url.copy_with(raw_path=target), headers=headers, content=body or None)
    except (httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
        assume(False)  # a request no HTTP client can send: not the edge's concern
    try:
        response = await client.send(request, stream=True)
    except httpx.LocalProtocolError:
        assume(False)
    except httpx.TransportError as exc:
        return Reply(None, b"", f"{type(exc).__name__}: {exc}")
    try:
        data = b""
        if stream_seconds is None:
            data = await response.aread()
        else:
            try:
                async with asyncio.timeout(stream_seconds):
                    async for chunk in response.aiter_raw():
                        data += chunk
                        if len(data) > 4096:
                            break
            except TimeoutError:
                pass
        return Reply(response.status_code, data)
    except httpx.TransportError as exc:
        return Reply(response.status_code, b"", f"{type(exc).__name__}: {exc}")
    finally:
        await response.aclose()


def _check(reply: Reply, what: str, shown: Any, *, upstream_may_fail: bool = False) -> None:
    detail = f"\nanswer: {reply.body[:400]!r}\nrequest: {shown!r:.1500}"
    if reply.status is None:
        raise ConnectionDropped(f"{what}: the connection broke ({reply.error}){detail}")
    if reply.status == 500:
        raise EdgeCrashed(f"{what} answered 500{detail}")
    if reply.status == 502:
        try:
            problem = json.loads(reply.body)
        except ValueError:
            problem = {}
        # The edge's own 502s carry the gRPC status it turned into one, or say the secret proxy
        # misbehaved; a 502 the proxy relayed for a real upstream failure carries neither.
        made_up = not isinstance(problem, dict) or "grpc_status" in problem or "secret proxy" in str(problem.get("detail", ""))
        if made_up or not upstream_may_fail:
            raise EdgeMadeUp502(f"{what} answered 502{detail}")
    if reply.error and not upstream_may_fail:
        raise ConnectionDropped(f"{what}: the answer broke off ({reply.error}){detail}")


def _question_ids(world: World) -> list[str]:
    return world.a.ids + world.b.ids


async def _done(what: str, untouched, reply: Reply, shown: Any, *, tally: str | None = None, **kwargs: bool) -> None:
    TALLY[f"route {tally or what}"] += 1
    try:
        _check(reply, what, shown, **kwargs)
        await untouched.check(f"{what} (HTTP {reply.status})")
    except AssertionError as exc:
        findings.record(what, type(exc).__name__ if isinstance(exc, ServerError) else "CHANGED_B", str(exc), shown)
        raise


@fuzz_settings(scale=8)
@given(data=st.data())
async def test_slack_webhook(data: st.DataObject, http, world: World, untouched) -> None:
    secrets = {world.a.team_id: world.a.signing_secret}  # B's secret is B's: never used to sign
    body, headers = data.draw(slack_request([world.a.team_id, world.b.team_id], _question_ids(world), secrets), label="request")
    reply = await _send(http, "POST", _url("/webhooks/slack/interactions"), headers=headers, body=body)
    await _done("POST /webhooks/slack/interactions", untouched, reply, (headers, body))


@fuzz_settings(scale=5)
@given(data=st.data())
async def test_telegram_webhook(data: st.DataObject, http, world: World, untouched) -> None:
    connection = data.draw(st.one_of(st.sampled_from([world.a.telegram_connection_id, world.b.telegram_connection_id, world.a.slack_connection_id]), path_segment()), label="connection")
    secret = data.draw(st.one_of(st.just(world.a.telegram_secret), HEADER_VALUE, st.none()), label="secret token")
    headers = {**data.draw(odd_headers(), label="headers"), "content-type": "application/json"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    body = data.draw(telegram_update(_question_ids(world)), label="body")
    reply = await _send(http, "POST", _url(f"/webhooks/telegram/{connection}"), headers=headers, body=body)
    await _done("POST /webhooks/telegram/{connection_id}", untouched, reply, (connection, headers, body))


@fuzz_settings(scale=6)
@given(data=st.data())
async def test_event_stream(data: st.DataObject, http, world: World, untouched) -> None:
    stream = data.draw(st.one_of(st.sampled_from(world.a.streams + world.b.streams), path_segment(), st.lists(path_segment(), min_size=1, max_size=3).map("/".join)), label="stream")
    # Mostly A's valid token, so that the cases reach what lies behind authentication.
    token = data.draw(st.one_of(st.just(world.a.worker_token), st.just(world.a.worker_token), st.just(world.a.worker_token + "x"), HEADER_VALUE, st.none()), label="token")
    headers = data.draw(odd_headers(), label="headers")
    if token is not None:
        headers["authorization"] = data.draw(st.sampled_from(["Bearer ", "Bearer ", "bearer ", "Basic ", "", "Bearer  "]), label="scheme") + (token if isinstance(token, str) else token.decode("latin-1"))
    position = data.draw(st.one_of(st.none(), st.integers(0, 10).map(str), st.sampled_from(ODD_NUMBERS), st.sampled_from(ODD_NUMBERS)), label="position")
    query = None
    if position is not None:
        if data.draw(st.booleans(), label="as Last-Event-ID"):
            headers["last-event-id"] = position.encode("utf-8")
        else:
            query = {"after": position}
    reply = await _send(http, "GET", _url(f"/v1/streams/{stream}/events", query), headers=headers, stream_seconds=SSE_FIRST_BYTES_SECONDS)
    await _done("GET /v1/streams/{stream}/events", untouched, reply, (stream, headers, query))


@fuzz_settings(scale=8)
@given(data=st.data())
async def test_secret_proxy_route(data: st.DataObject, http, world: World, untouched) -> None:
    method = data.draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]), label="method")
    upstream = data.draw(st.one_of(st.sampled_from(UPSTREAMS[:5]), path_segment()), label="upstream")
    path = data.draw(st.one_of(st.sampled_from([p for p in PATHS if "\x00" not in p and "#" not in p]), path_segment().map(lambda s: "/" + s)), label="path")
    headers = data.draw(odd_headers(), label="headers")
    token = data.draw(st.one_of(st.just(world.a.worker_token), st.just(world.a.worker_token), HEADER_VALUE, st.none()), label="worker token")
    if token is not None:
        headers["x-switchboard-token"] = token
    placeholder = data.draw(st.one_of(st.sampled_from(world.a.placeholders + world.b.placeholders), st.sampled_from(["sb_secret_" + "A" * 24, "sb_secret_", "x"]), st.none()), label="placeholder")
    if placeholder is not None:
        headers[data.draw(st.sampled_from(["authorization", "x-api-key", "x-other"]), label="placeholder header")] = f"Bearer {placeholder}"
    body = data.draw(st.one_of(st.just(b""), hostile_body(), st.sampled_from([b"x" * ((1 << 20) + 1), b"x" * (4 << 20)])), label="body")
    reply = await _send(http, method, _url(f"/v1/proxy/{upstream}{path}"), headers=headers, body=body, stream_seconds=5)
    upstream_may_fail = upstream == FAILING_UPSTREAM or "/break" in path or "/stall" in path
    await _done("ANY /v1/proxy/{upstream}/{path}", untouched, reply, (method, upstream, path, headers, body[:200]), upstream_may_fail=upstream_may_fail)


@pytest.mark.parametrize("route", ["/healthz", "/readyz", "/metrics", "/nope"])
@fuzz_settings(scale=2)
@given(data=st.data())
async def test_health_metrics_and_unknown_routes(route: str, data: st.DataObject, http, untouched) -> None:
    method = data.draw(st.sampled_from(["GET", "GET", "POST", "HEAD", "DELETE", "OPTIONS"]), label="method")
    query = data.draw(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=2), label="query")
    headers = data.draw(odd_headers(), label="headers")
    body = data.draw(st.one_of(st.just(b""), hostile_body()), label="body")
    reply = await _send(http, method, _url(route, query), headers=headers, body=body)
    await _done(f"{route}", untouched, reply, (method, query, headers, body[:200]))




def _form(payload: object) -> bytes:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


def _corpus(world: World) -> list[tuple[str, str, str, dict[str, Any], bytes, dict[str, Any] | None]]:
    """(label, method, path, headers, body, query): requests known to have broken the edge."""
    a = world.a
    click = {"type": "block_actions", "team": {"id": a.team_id}, "user": {"id": "U1"}, "actions": [{"action_id": "yes", "value": a.ids[-1]}]}
    signed = lambda body: {k.lower(): v for k, v in slack_signed_headers(a.signing_secret, body).items()}  # noqa: E731
    slack = "/webhooks/slack/interactions"
    worker = {"authorization": f"Bearer {a.worker_token}"}
    stream = f"/v1/streams/{a.streams[0]}/events"
    form = {"content-type": "application/x-www-form-urlencoded"}
    cases = [
        ("slack deep JSON, unsigned", "POST", slack, form, _form("[" * 5000), None),
        ("slack deep JSON object, unsigned", "POST", slack, form, _form('{"a":' * 5000), None),
        ("slack team null", "POST", slack, form, _form({**click, "team": None}), None),
        *[(f"slack timestamp {t[:8]!r}", "POST", slack, {**form, "x-slack-request-timestamp": t.encode(), "x-slack-signature": "v0=" + "0" * 64}, _form(click), None) for t in ("²", "١٧٠٠", "9" * 5000, str(2**64))],
        *[(f"slack signed, actions {v!r}", "POST", slack, signed(_form({**click, "actions": v})), _form({**click, "actions": v}), None) for v in ("yes", [7], [None], {}, [{"value": 7}])],
        ("telegram deep JSON", "POST", f"/webhooks/telegram/{a.telegram_connection_id}", {"x-telegram-bot-api-secret-token": a.telegram_secret}, b"[" * 5000, None),
        ("telegram callback_query a list", "POST", f"/webhooks/telegram/{a.telegram_connection_id}", {"x-telegram-bot-api-secret-token": a.telegram_secret}, b'{"callback_query": [1]}', None),
        *[(f"sse Last-Event-ID {v[:8]!r}", "GET", stream, {**worker, "last-event-id": v.encode()}, b"", None) for v in ("²", str(2**63), "9" * 5000, "-1")],
        *[(f"sse ?after={v[:8]!r}", "GET", stream, worker, b"", {"after": v}) for v in ("²", str(2**63), "9" * 5000)],
        ("proxy refused with a 1 MiB body", "POST", "/v1/proxy/echo/v1/x", {"x-switchboard-token": "not-a-token-but-printable"}, b"x" * (1 << 20), None),
        ("proxy other organisation's placeholder with a body", "POST", "/v1/proxy/echo/v1/x", {"x-switchboard-token": a.worker_token, "authorization": f"Bearer {world.b.placeholders[0]}"}, b"x" * (1 << 20), None),
        ("proxy body over the limit", "POST", "/v1/proxy/echo/v1/x", {"x-switchboard-token": a.worker_token}, b"x" * (40 << 20), None),
    ]
    return cases


async def test_known_hostile_requests_to_every_route(http, world: World, untouched) -> None:
    """A fixed corpus of requests that broke the edge before: every run tries each of them, and
    every failure is collected, then reported."""
    failures = []
    for label, method, path, headers, body, query in _corpus(world):
        reply = await _send(http, method, _url(path, query), headers=headers, body=body, stream_seconds=SSE_FIRST_BYTES_SECONDS if "/streams/" in path else 5)
        try:
            await _done(f"corpus: {label}", untouched, reply, (method, path, query), tally="corpus of known-hostile requests (every route)")
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0] + " " + str(exc).splitlines()[1][:200])
    assert not failures, f"{len(failures)} of the corpus' requests failed:\n" + "\n".join(failures)


if SEED is not None:
    for _name, _test in list(globals().items()):
        if _name.startswith("test_") and hasattr(_test, "hypothesis"):
            globals()[_name] = seed(int(SEED))(_test)

"""Forward against a real upstream on loopback: substitution, credentials, streaming both ways,
hop-by-hop headers, upstream failures, redaction of echoed secrets, and the audit trail."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import grpc
import pytest

from switchboard.services.secretproxy.forwarding import MAX_CHUNK
from switchboard.shared.errors import reason_of
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from tests.secretproxy.conftest import OPERATOR


async def test_the_upstream_sees_the_organisations_secret_and_the_worker_only_its_placeholder(proxy):
    org = await proxy.org_ready()
    _, placeholder = await proxy.put_secret(org, "sk-live-ORG-A-0123456789")
    worker = proxy.worker(org)
    answer = await proxy.forward(worker, "/v1/chat?stream=false", headers=[("Authorization", f"Bearer {placeholder}")])
    assert answer.status == 200 and answer.json()["path"] == "/v1/chat"
    [seen] = proxy.upstream.received
    assert seen.header("authorization") == "Bearer sk-live-ORG-A-0123456789"
    assert seen.query == "stream=false"
    assert b"sk-live-ORG-A" not in answer.body and all("sk-live-ORG-A" not in v for _, v in answer.headers)


async def test_a_placeholder_inside_a_longer_value_is_swapped_and_several_in_one_request_too(proxy):
    org = await proxy.org_ready()
    _, first = await proxy.put_secret(org, "alpha-value-1")
    _, second = await proxy.put_secret(org, "beta-value-2")
    await proxy.forward(
        proxy.worker(org), headers=[("Authorization", "Bearer x"), ("X-Key", f"prefix-{first}"), ("X-Both", f"{first}:{second}")]
    )
    [seen] = proxy.upstream.received
    assert seen.header("x-key") == "prefix-alpha-value-1"
    assert seen.header("x-both") == "alpha-value-1:beta-value-2"


async def test_a_rotated_secret_is_sent_under_the_same_placeholder_and_a_deleted_one_is_refused(proxy):
    org = await proxy.org_ready(credential="unused-cred-value")
    secret_id, placeholder = await proxy.put_secret(org, "first-value")
    await proxy.stub.RotateSecret(pb.RotateSecretRequest(secret_id=secret_id, value="second-value"), metadata=OPERATOR)
    proxy.sensitive.append("second-value")
    worker = proxy.worker(org)
    await proxy.forward(worker, headers=[("X-Key", placeholder)])
    assert proxy.upstream.received[-1].header("x-key") == "second-value"
    await proxy.stub.DeleteSecret(pb.DeleteSecretRequest(secret_id=secret_id), metadata=OPERATOR)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await proxy.forward(worker, headers=[("X-Key", placeholder)])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and reason_of(refused.value) == "UNKNOWN_PLACEHOLDER"
    assert len(proxy.upstream.received) == 1


async def test_without_a_credential_of_its_own_the_request_gets_the_organisations_best_one(proxy):
    org = await proxy.org_ready()
    await proxy.put_credential(org, "cred-low", priority=-5)
    await proxy.put_credential(org, "cred-high-old", priority=10)
    await proxy.put_credential(org, "cred-high-new", priority=10)
    await proxy.forward(proxy.worker(org))
    assert proxy.upstream.received[-1].header("authorization") == "Bearer cred-high-new"
    # An upstream whose credential goes in another header gets it there, without a prefix.
    await proxy.put_credential(org, "key-for-header", provider="header-key")
    await proxy.forward(proxy.worker(org), upstream="header-key")
    assert proxy.upstream.received[-1].header("x-api-key") == "key-for-header"
    assert proxy.upstream.received[-1].header("authorization") is None


async def test_a_request_with_its_own_credential_keeps_it(proxy):
    org = await proxy.org_ready(credential="stored-credential")
    await proxy.forward(proxy.worker(org), headers=[("Authorization", "Bearer the-workers-own")])
    assert proxy.upstream.received[-1].header("authorization") == "Bearer the-workers-own"


async def test_no_credential_anywhere_is_refused_with_no_credentials_and_the_upstream_is_not_called(proxy):
    org = await proxy.org_ready()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await proxy.forward(proxy.worker(org))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(refused.value) == "NO_CREDENTIALS"
    assert proxy.upstream.received == []


async def test_hop_by_hop_headers_are_stripped_both_ways_and_the_worker_token_header_never_travels(proxy):
    org = await proxy.org_ready(credential=True)
    answer = await proxy.forward(
        proxy.worker(org),
        headers=[
            ("Connection", "keep-alive, X-Private-Hop"), ("X-Private-Hop", "1"), ("Keep-Alive", "timeout=1"),
            ("TE", "trailers"), ("Upgrade", "h2c"), ("Proxy-Authorization", "Basic abc"),
            ("X-Switchboard-Token", "the-worker-token"), ("X-Kept", "yes"),
        ],
    )
    names = {name for name, _ in proxy.upstream.received[-1].headers}
    assert "x-kept" in names
    assert not names & {"x-private-hop", "keep-alive", "te", "upgrade", "proxy-authorization", "x-switchboard-token"}
    response_names = {name.lower() for name, _ in answer.headers}
    assert "x-upstream" in response_names
    assert not response_names & {"connection", "keep-alive", "x-hop", "transfer-encoding"}


async def test_an_upstream_event_stream_reaches_the_worker_chunk_by_chunk_as_it_is_produced(proxy):
    org = await proxy.org_ready(credential=True)
    call = proxy.stub.Forward(metadata=proxy.worker(org).metadata)
    await call.write(pb.ForwardRequest(head=pb.ForwardRequestHead(method="GET", upstream="echo", path="/sse?count=100&gap=0.05")))
    await call.done_writing()
    arrivals: list[float] = []
    events = b""
    async for message in call:
        if message.WhichOneof("kind") == "body_chunk":
            arrivals.append(time.monotonic())
            events += message.body_chunk
    assert events.count(b"data: ") == 100 and b'data: {"n": 99}' in events
    assert len(arrivals) >= 100  # nothing was gathered up into bigger pieces
    # Produced over ~5 s at 50 ms apart: had the proxy buffered, they would arrive in one burst.
    assert arrivals[-1] - arrivals[0] > 4.0
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert gaps[len(gaps) // 2] > 0.03


async def test_a_large_request_body_streams_up_and_a_large_response_comes_back_in_bounded_chunks(proxy):
    org = await proxy.org_ready(credential=True)
    chunks = [bytes([i]) * 50_000 for i in range(10)]
    answer = await proxy.forward(proxy.worker(org), "/upload", method="POST", chunks=chunks)
    assert answer.json()["bytes"] == 500_000
    assert proxy.upstream.received[-1].body == b"".join(chunks)
    call = proxy.stub.Forward(metadata=proxy.worker(org).metadata)
    await call.write(pb.ForwardRequest(head=pb.ForwardRequestHead(method="GET", upstream="echo", path="/big")))
    await call.done_writing()
    sizes = [len(m.body_chunk) async for m in call if m.WhichOneof("kind") == "body_chunk"]
    assert sum(sizes) == 300 * 1024 and max(sizes) <= MAX_CHUNK


async def test_a_body_over_the_limit_is_refused_before_the_upstream_answers(migrated_database, identity, upstream):
    from tests.secretproxy.conftest import running_proxy

    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url, proxy_max_body_bytes=1000) as small:
        org = await small.org_ready(credential=True)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await small.forward(small.worker(org), method="POST", chunks=[b"x" * 600, b"y" * 600])
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reason_of(refused.value) == "BODY_TOO_LARGE"
        assert fake.received == []


async def test_a_closed_upstream_gives_a_502_problem_and_a_stalled_one_a_504(migrated_database, identity, upstream):
    from tests.secretproxy.conftest import running_proxy

    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url, proxy_read_timeout_seconds=0.3) as short:
        org = await short.org_ready()
        await short.put_credential(org, "closed-cred-value", provider="closed")
        answer = await short.forward(short.worker(org), upstream="closed")
        assert answer.status == 502 and answer.header("content-type") == "application/problem+json"
        assert answer.json()["status"] == 502 and "closed" in answer.json()["detail"]
        await short.put_credential(org, "stall-cred-value")
        stalled = await short.forward(short.worker(org), "/stall")
        assert stalled.status == 504 and stalled.json()["title"] == "Gateway timeout"
        rows = await short.audit_rows()
        assert [(r["status_code"], r["reason"]) for r in rows] == [(502, "upstream_unreachable"), (504, "upstream_timeout")]


async def test_an_upstream_that_breaks_off_after_its_head_ends_the_call_with_unavailable(proxy):
    org = await proxy.org_ready(credential=True)
    with pytest.raises(grpc.aio.AioRpcError) as broken:
        await proxy.forward(proxy.worker(org), "/break")
    assert broken.value.code() == grpc.StatusCode.UNAVAILABLE and reason_of(broken.value) == "UPSTREAM_INTERRUPTED"


async def test_an_upstream_echoing_the_injected_secret_back_shows_the_worker_a_redaction(proxy):
    org = await proxy.org_ready()
    _, placeholder = await proxy.put_secret(org, "sk-echoed-SECRET-987")
    answer = await proxy.forward(proxy.worker(org), "/echo-headers", headers=[("Authorization", f"Bearer {placeholder}")])
    assert proxy.upstream.received[-1].header("authorization") == "Bearer sk-echoed-SECRET-987"
    assert b"sk-echoed-SECRET-987" not in answer.body and b"[redacted by switchboard]" in answer.body
    assert answer.header("x-echo-authorization") == "Bearer [redacted by switchboard]"
    # A compressed echo is decoded to be searched (and asked for uncompressed in the first place).
    await proxy.put_credential(org, "cred-echoed-in-gzip")
    zipped = await proxy.forward(proxy.worker(org), "/gzip-echo", headers=[("Accept-Encoding", "gzip")])
    body = gzip.decompress(zipped.body) if zipped.header("content-encoding") == "gzip" else zipped.body
    assert b"cred-echoed-in-gzip" not in body and b"[redacted by switchboard]" in body
    assert proxy.upstream.received[-1].header("accept-encoding") == "identity"


async def test_unknown_upstreams_and_malformed_heads_are_refused_with_the_field_named(proxy):
    org = await proxy.org_ready(credential=True)
    worker = proxy.worker(org)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await proxy.forward(worker, upstream="nowhere")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and reason_of(unknown.value) == "UNKNOWN_UPSTREAM"
    for path in ("/v1/../admin", "/v1/%2e%2e/admin", "no-slash", "/a b"):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await proxy.forward(worker, path)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "head.path" in bad.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as bad_method:
        await proxy.forward(worker, method="get")
    assert bad_method.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as bad_header:
        await proxy.forward(worker, headers=[("X-Evil", "a\r\nHost: elsewhere")])
    assert "head.headers[0].value" in bad_header.value.details()
    # A body chunk first, or a second head, is a protocol error.
    call = proxy.stub.Forward(metadata=worker.metadata)
    await call.write(pb.ForwardRequest(body_chunk=b"x"))
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as no_head:
        await call.read()
    assert no_head.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    call = proxy.stub.Forward(metadata=worker.metadata)
    head = pb.ForwardRequest(head=pb.ForwardRequestHead(method="POST", upstream="echo", path="/x"))
    await call.write(head)
    await call.write(head)
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as two_heads:
        await call.read()
    assert two_heads.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert proxy.upstream.received == []


async def test_a_private_destination_is_refused_unless_the_operator_allowed_that_upstream(proxy):
    org = await proxy.org_ready()
    await proxy.put_credential(org, "denied-cred-value", provider="loopback-denied")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await proxy.forward(proxy.worker(org), upstream="loopback-denied")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED and reason_of(refused.value) == "PRIVATE_ADDRESS"
    assert proxy.upstream.received == []


async def test_egress_policy_allows_by_host_method_and_path_and_denies_everything_else(proxy):
    org = await proxy.org_ready(credential=True)
    await proxy.stub.SetEgressPolicy(
        pb.SetEgressPolicyRequest(
            organization_id=org,
            rules=[
                pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="127.0.0.1", methods=["GET", "POST"], path_prefix="/v1"),
                pb.EgressRule(action=pb.EGRESS_ACTION_DENY, host_pattern="127.0.0.1", path_prefix="/v1/admin"),
            ],
        ),
        metadata=OPERATOR,
    )
    worker = proxy.worker(org)
    assert (await proxy.forward(worker, "/v1/chat")).status == 200
    for method, path in (("GET", "/v10"), ("DELETE", "/v1/chat"), ("GET", "/v1/admin/users"), ("GET", "/other")):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await proxy.forward(worker, path, method=method)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED and reason_of(denied.value) == "EGRESS_DENIED"
    assert len(proxy.upstream.received) == 1


async def test_a_changed_policy_applies_to_the_next_request_even_with_its_old_verdict_cached(proxy):
    org = await proxy.org_ready(credential=True)
    worker = proxy.worker(org)
    assert (await proxy.forward(worker, "/v1/chat")).status == 200  # "allowed" is now cached
    await proxy.stub.SetEgressPolicy(pb.SetEgressPolicyRequest(organization_id=org, rules=[]), metadata=OPERATOR)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await proxy.forward(worker, "/v1/chat")
    assert reason_of(denied.value) == "EGRESS_DENIED"
    await proxy.allow(org)
    assert (await proxy.forward(worker, "/v1/chat")).status == 200


async def test_every_decision_is_audited_without_values_placeholders_or_query_strings(proxy):
    org = await proxy.org_ready(credential=True)
    secret_id, placeholder = await proxy.put_secret(org, "audited-secret-value")
    worker = proxy.worker(org)
    await proxy.forward(worker, f"/v1/x?key={placeholder}&q=private", method="POST", headers=[("X-Key", placeholder)], chunks=[b"12345"])
    with pytest.raises(grpc.aio.AioRpcError):
        await proxy.forward(worker, "/v1/y", headers=[("X-Key", "sb_secret_" + "A" * 32)])
    rows = await proxy.audit_rows()
    assert [(r["decision"], r["reason"], r["status_code"]) for r in rows] == [
        ("allowed", "forwarded", 200),
        ("denied", "unknown_placeholder", None),
    ]
    allowed = rows[0]
    assert str(allowed["organization_id"]) == org and str(allowed["agent_id"]) == worker.agent_id
    assert allowed["path"] == "/v1/x" and allowed["method"] == "POST" and allowed["upstream"] == "echo"
    assert allowed["request_bytes"] == 5 and allowed["response_bytes"] > 0 and allowed["duration_ms"] > 0
    assert [str(s) for s in allowed["secret_ids"]] == [secret_id]
    dumped = json.dumps([dict(r) for r in rows], default=str)
    assert "audited-secret-value" not in dumped and placeholder not in dumped and "private" not in dumped


async def test_many_concurrent_requests_of_two_organisations_each_get_their_own_secret(proxy):
    orgs = [await proxy.org_ready() for _ in range(2)]
    placeholders = [(await proxy.put_secret(org, f"value-of-{i}-xyz"))[1] for i, org in enumerate(orgs)]

    async def one(i: int):
        k = i % 2
        return k, await proxy.forward(proxy.worker(orgs[k]), f"/r/{i}", headers=[("X-Key", placeholders[k]), ("Authorization", "x")])

    results = await asyncio.gather(*(one(i) for i in range(60)))
    assert all(answer.status == 200 for _, answer in results)
    by_path = {r.path: r.header("x-key") for r in proxy.upstream.received}
    assert len(by_path) == 60
    assert all(by_path[f"/r/{i}"] == f"value-of-{i % 2}-xyz" for i in range(60))

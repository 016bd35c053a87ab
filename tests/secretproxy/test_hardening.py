"""Edge cases found in review: each was a way around a check, or a way to make the proxy fail
unhelpfully; each now has the answer the contract promises."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

import grpc
import pytest

from switchboard.services.secretproxy.audit import AuditLog
from switchboard.services.secretproxy.cache import TtlLru
from switchboard.services.secretproxy.clients import UpstreamClients
from switchboard.services.secretproxy.destinations import Resolver, is_private
from switchboard.services.secretproxy.forwarding import Forwarder, ForwardLimits
from switchboard.services.secretproxy.upstreams import parse_upstreams
from switchboard.shared.errors import PermissionDenied, field_violations, reason_of
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from tests.conftest import INTERNAL_TOKEN, free_port
from tests.secretproxy.conftest import OPERATOR, running_proxy
from tests.secretproxy.test_edge_proxy import edge_for


@pytest.mark.parametrize(
    "address",
    ["100.100.100.200", "100.64.0.1", "2002:a9fe:a9fe::1", "fec0::1", "192.0.0.192", "169.254.169.254", "::ffff:127.0.0.1",
     "64:ff9b::a9fe:a9fe", "10.1.2.3", "fd00:ec2::254", "::1", "0.0.0.0", "224.0.0.1"],
)  # fmt: skip
def test_addresses_that_are_not_globally_routable_are_private_also_inside_ipv6_forms(address):
    assert is_private(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:0808:0808::1"])
def test_public_addresses_are_not_private(address):
    assert not is_private(ipaddress.ip_address(address))


async def test_paths_that_servers_read_differently_are_refused(proxy):
    org = await proxy.org_ready(credential=True)
    worker = proxy.worker(org)
    for path in ("/v1//admin", "/v1/..;/admin", "/v1;x/admin", "/v1\\admin", "/v1%2Fadmin", "/v1%5cadmin", "/v1/%2E%2E/x"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await proxy.forward(worker, path)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path
    assert (await proxy.forward(worker, "/v1/")).status == 200  # a trailing slash is fine
    assert [r.path for r in proxy.upstream.received] == ["/v1/"]


async def test_a_nul_in_a_path_neither_reaches_nor_blocks_the_audit_trail(proxy):
    org = await proxy.org_ready(credential=True)
    await proxy.forward(proxy.worker(org), "/v1/%00x")
    await proxy.forward(proxy.worker(org), "/v1/after")
    rows = await proxy.audit_rows()
    assert [r["path"] for r in rows] == ["/v1/%00x", "/v1/after"]


async def test_a_workers_content_length_that_disagrees_with_its_body_does_not_break_the_request(proxy):
    org = await proxy.org_ready(credential=True)
    answer = await proxy.forward(proxy.worker(org), "/upload", method="POST", headers=[("Content-Length", "3")], chunks=[b"eleven bytes"[:11]])
    assert answer.status == 200 and proxy.upstream.received[-1].body == b"eleven byte"


async def test_values_that_cannot_travel_in_a_header_are_refused_when_stored(proxy):
    org = await proxy.org_ready()
    for value in ("pässwörd€", "line\r\nbreak", "nul\x00byte"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await proxy.stub.PutSecret(pb.PutSecretRequest(organization_id=org, name="BAD", value=value), metadata=OPERATOR)
        assert [v.field for v in field_violations(refused.value)] == ["value"]
        assert value not in refused.value.details()
    assert await proxy.pool.fetchval("SELECT count(*) FROM secretproxy.secrets") == 0


async def test_a_worker_that_stops_sending_its_body_is_cut_off_and_releases_the_upstream(migrated_database, identity, upstream):
    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url, proxy_read_timeout_seconds=0.5) as short:
        org = await short.org_ready(credential=True)
        call = short.stub.Forward(metadata=short.worker(org).metadata)
        await call.write(pb.ForwardRequest(head=pb.ForwardRequestHead(method="POST", upstream="echo", path="/upload")))
        await call.write(pb.ForwardRequest(body_chunk=b"x" * 70_000))  # beyond the read-ahead: the upstream call starts
        with pytest.raises(grpc.aio.AioRpcError) as stalled:
            await call.read()  # ... and the worker sends nothing more
        assert stalled.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "stalled" in stalled.value.details()
        [row] = await short.audit_rows()
        assert (row["decision"], row["reason"]) == ("denied", "invalid_argument")


async def test_refusals_before_the_head_and_cancelled_streams_are_audited_as_what_they_were(proxy):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await proxy.forward(None, metadata=OPERATOR)  # an internal caller is not a worker
    assert (refused.value.code(), reason_of(refused.value)) == (grpc.StatusCode.PERMISSION_DENIED, "WORKERS_ONLY")
    org = await proxy.org_ready(credential=True)
    call = proxy.stub.Forward(metadata=proxy.worker(org).metadata)
    await call.write(pb.ForwardRequest(head=pb.ForwardRequestHead(method="GET", upstream="echo", path="/sse?count=100&gap=0.05")))
    await call.done_writing()
    async for message in call:
        if message.WhichOneof("kind") == "body_chunk":
            break
    call.cancel()
    await asyncio.wait_for(proxy.audit.recorded(1), 10)  # the handler finishes its bookkeeping after the cancel
    rows = await proxy.audit_rows()
    # The operator's call was refused by its policy before the proxy saw it: nothing to audit there.
    assert [(r["decision"], r["reason"]) for r in rows] == [("allowed", "client_cancelled")]
    assert rows[0]["status_code"] == 200 and rows[0]["response_bytes"] > 0


async def test_a_verdict_is_cached_under_the_policy_that_decided_it_not_the_one_the_request_read(proxy):
    org = await proxy.org_ready(credential=True)
    only_elsewhere = [pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="example.com")]
    deny_all = (await proxy.stub.SetEgressPolicy(pb.SetEgressPolicyRequest(organization_id=org, rules=only_elsewhere), metadata=OPERATOR)).policy
    await proxy.allow(org, host="api.openai.com")  # the policy changes while a request that read the old hash is on its way
    forwarder = Forwarder(
        proxy.pool, keys=None, upstreams=parse_upstreams(None), organizations=None, resolver=Resolver(),
        verdicts=TtlLru(100, 60), audit=AuditLog(proxy.pool), http=UpstreamClients(connect_timeout=1, read_timeout=1),
        limits=ForwardLimits(1000, 20, 300), internal_token=INTERNAL_TOKEN,
    )  # fmt: skip
    upstream = parse_upstreams(None)["openai"]
    # The late request is decided with the newer rules (allow): the safe side of that race ...
    await forwarder._check_policy(org, deny_all.policy_hash, upstream, "GET", "/v1/models")
    # ... and that verdict must not answer for the old policy once it is back.
    await proxy.stub.SetEgressPolicy(pb.SetEgressPolicyRequest(organization_id=org, rules=only_elsewhere), metadata=OPERATOR)
    with pytest.raises(PermissionDenied):
        await forwarder._check_policy(org, deny_all.policy_hash, upstream, "GET", "/v1/models")


async def test_the_edge_refuses_tokens_gRPC_cannot_carry_and_encoded_upstream_names(proxy):
    async with edge_for(proxy) as edge:
        bad_token = await edge.get("/v1/proxy/echo/v1/x", headers=[(b"x-switchboard-token", "abc\xe9def".encode("latin-1"))])
        assert bad_token.status_code == 401
        org = await proxy.org_ready(credential=True)
        encoded = await edge.get("/v1/proxy/ech%6f/v1/a%3Fb", headers={"X-Switchboard-Token": proxy.worker(org).token})
        assert encoded.status_code == 400
    assert proxy.upstream.received == []


async def test_the_edge_says_the_proxy_is_unreachable_without_naming_internal_addresses(proxy):
    proxy.port = free_port()  # nothing listens there
    async with edge_for(proxy) as edge:
        response = await edge.get("/v1/proxy/echo/v1/x", headers={"X-Switchboard-Token": proxy.worker(str(uuid.uuid4())).token})
    assert response.status_code == 503
    assert "127.0.0.1" not in response.text and "ipv4" not in response.text

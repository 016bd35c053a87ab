"""Tokens without their organisation (resolved through identity, fail closed), and the throttle of
sources with failed placeholder lookups, shared by every replica."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
import pytest

from switchboard.services.secretproxy import placeholders
from switchboard.services.secretproxy.retention import Retention
from switchboard.shared.auth import Authenticator
from switchboard.shared.errors import Unauthenticated, reason_of
from switchboard.shared.headers import EDGE_TOKEN_HEADER as EDGE_HEADER
from tests.conftest import INTERNAL_TOKEN
from tests.secretproxy.conftest import running_proxy
from tests.support.worker_keys import ISSUER, verifier


async def test_a_token_without_organisation_is_resolved_through_identity_and_gets_its_organisations_secret(proxy):
    org, agent = await proxy.agent()
    await proxy.allow(org)
    _, placeholder = await proxy.put_secret(org, "resolved-org-secret")
    answer = await proxy.forward(proxy.worker(None, agent), headers=[("Authorization", f"Bearer {placeholder}")])
    assert answer.status == 200
    assert proxy.upstream.received[-1].header("authorization") == "Bearer resolved-org-secret"
    [row] = await proxy.audit_rows()
    assert str(row["organization_id"]) == org


async def test_identity_unavailable_while_the_token_lacks_its_organisation_refuses_with_unavailable(migrated_database, identity, upstream):
    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url) as proxy:
        org, agent = await proxy.agent()
        await proxy.allow(org)
        _, placeholder = await proxy.put_secret(org, "never-sent-secret")
    # The same database and upstream, with identity at an address where nothing answers.
    dead_identity = type(identity)(identity.stub, identity.pool, identity.revocations, identity.channel, port=_closed_port())
    async with running_proxy(migrated_database, dead_identity, fake, url, proxy_identity_timeout_seconds=0.5) as proxy:
        proxy.sensitive += ["never-sent-secret", placeholder]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await proxy.forward(proxy.worker(None, agent), headers=[("Authorization", f"Bearer {placeholder}")])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and reason_of(refused.value) == "ORGANIZATION_UNRESOLVED"
        # A token that carries its organisation needs no identity call and still works.
        answer = await proxy.forward(proxy.worker(org, agent), headers=[("Authorization", f"Bearer {placeholder}")])
        assert answer.status == 200
    assert len(fake.received) == 1


async def test_a_token_naming_an_agent_identity_does_not_know_is_refused(proxy):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await proxy.forward(proxy.worker(None, str(uuid.uuid4())))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and reason_of(refused.value) == "UNKNOWN_AGENT"


def test_services_other_than_the_proxy_refuse_tokens_without_organisation():
    token = ISSUER.issue(organization_id=None, agent_id=str(uuid.uuid4()), connection_id=None, ttl=timedelta(minutes=5))
    strict = Authenticator(INTERNAL_TOKEN, verifier())
    with pytest.raises(Unauthenticated):
        strict.authenticate([("authorization", f"Bearer {token.token}")])
    lenient = Authenticator(INTERNAL_TOKEN, verifier(require_organization=False))
    assert lenient.authenticate([("authorization", f"Bearer {token.token}")]).organization_id is None


async def test_twenty_failed_lookups_refuse_the_source_on_every_replica_for_the_rest_of_the_window(migrated_database, identity, upstream):
    fake, url = upstream
    async with running_proxy(migrated_database, identity, fake, url) as one, running_proxy(migrated_database, identity, fake, url) as two:
        org = await one.org_ready(credential=True)
        _, good = await one.put_secret(org, "good-secret-value")
        worker = one.worker(org)

        async def bad(replica):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await replica.forward(worker, headers=[("X-Key", placeholders.new_placeholder())])
            return refused.value.code()

        # 20 failures at once, split over both replicas: every one is counted (no lost update).
        codes = await asyncio.gather(*(bad(one if i % 2 else two) for i in range(20)))
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 20
        assert await one.pool.fetchval("SELECT failures FROM secretproxy.failed_lookups WHERE source = $1", f"agent:{worker.agent_id}") == 20
        for replica in (one, two):
            with pytest.raises(grpc.aio.AioRpcError) as throttled:
                await replica.forward(worker, headers=[("X-Key", good)])  # even a good placeholder
            assert throttled.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason_of(throttled.value) == "TOO_MANY_FAILED_LOOKUPS"
        # Another agent of the same organisation from another address is not affected.
        other = one.worker(org)
        assert (await two.forward(other, headers=[("X-Key", good)], source_address="10.1.2.3", metadata=((EDGE_HEADER, INTERNAL_TOKEN),))).status == 200
        # Once the window is over (moved back in time here), the source may try again.
        await one.pool.execute("UPDATE secretproxy.failed_lookups SET window_started_at = now() - interval '6 minutes'")
        assert (await one.forward(worker, headers=[("X-Key", good)])).status == 200
        one.sensitive.append("good-secret-value")


async def test_the_edge_may_name_the_client_address_and_a_caller_that_is_not_the_edge_may_not(proxy):
    org = await proxy.org_ready(credential=True)
    worker = proxy.worker(org)
    spoofed = "203.0.113.9"
    with pytest.raises(grpc.aio.AioRpcError):
        await proxy.forward(worker, headers=[("X-Key", placeholders.new_placeholder())], source_address=spoofed)
    with pytest.raises(grpc.aio.AioRpcError):
        await proxy.forward(
            worker, headers=[("X-Key", placeholders.new_placeholder())], source_address="198.51.100.7", metadata=((EDGE_HEADER, "wrong"),)
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await proxy.forward(
            worker, headers=[("X-Key", placeholders.new_placeholder())], source_address="192.0.2.1", metadata=((EDGE_HEADER, INTERNAL_TOKEN),)
        )
    sources = {r["source"] for r in await proxy.pool.fetch("SELECT source FROM secretproxy.failed_lookups")}
    assert sources == {f"agent:{worker.agent_id}", f"address:{org}:127.0.0.1", f"address:{org}:192.0.2.1"}


async def test_one_organisations_failures_do_not_lock_out_another_organisations_workers_on_the_same_host(proxy):
    noisy, quiet = await proxy.org_ready(credential=True), await proxy.org_ready(credential=True)
    for _ in range(20):  # 20 different agents of the noisy organisation, all from 127.0.0.1
        with pytest.raises(grpc.aio.AioRpcError):
            await proxy.forward(proxy.worker(noisy), headers=[("X-Key", placeholders.new_placeholder())])
    with pytest.raises(grpc.aio.AioRpcError) as throttled:
        await proxy.forward(proxy.worker(noisy))  # a fresh agent of the same organisation and address
    assert reason_of(throttled.value) == "TOO_MANY_FAILED_LOOKUPS"
    assert (await proxy.forward(proxy.worker(quiet))).status == 200


async def test_retention_trims_old_audit_records_and_expired_windows_on_one_replica_at_a_time(proxy):
    org = await proxy.org_ready(credential=True)
    for _ in range(3):
        await proxy.forward(proxy.worker(org))
    with pytest.raises(grpc.aio.AioRpcError):
        await proxy.forward(proxy.worker(org), headers=[("X-Key", placeholders.new_placeholder())])
    await proxy.audit.flush()
    await proxy.pool.execute("UPDATE secretproxy.audit_records SET recorded_at = now() - interval '2 days' WHERE id <= 2")
    await proxy.pool.execute("UPDATE secretproxy.failed_lookups SET window_started_at = now() - interval '1 hour'")
    replicas = [Retention(proxy.pool, audit_retention_seconds=86400, lookup_window_seconds=300) for _ in range(3)]
    trimmed = await asyncio.gather(*(r.run_once() for r in replicas))
    assert sorted(t for t in trimmed if t is not None) in ([2], [0, 2], [0, 0, 2])
    assert await proxy.pool.fetchval("SELECT count(*) FROM secretproxy.audit_records") == 2
    assert await proxy.pool.fetchval("SELECT count(*) FROM secretproxy.failed_lookups") == 0


def _closed_port() -> int:
    from tests.conftest import free_port

    return free_port()

"""Secret proxy: latency and throughput of a worker's request through the edge and the proxy
(placeholder swapped, policy checked, audited) against httpx calling the same loopback upstream
directly, in the same run."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import timedelta

import grpc
import httpx

from bench.common import Measurement, Row, percentile
from bench.runs_throughput import TOKEN, WORKER_TOKENS, _free_port, start_services
from switchboard.shared.migrate import migrate
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc

SEQUENTIAL = 400  # requests one after another, for latency
CONCURRENCY = 32
THROUGHPUT_REQUESTS = 2000
METADATA = (("authorization", f"Bearer {TOKEN}"),)


async def _latencies(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(SEQUENTIAL):
        started = time.perf_counter()
        response = await client.get(url, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return samples


async def _throughput(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    remaining = THROUGHPUT_REQUESTS

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            response = await client.get(url, headers=headers)
            assert response.status_code == 200, response.text

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return THROUGHPUT_REQUESTS / (time.perf_counter() - started)


async def _grpc_latencies(stub: secret_proxy_service_pb2_grpc.SecretProxyServiceStub, token: str, placeholder: str) -> list[float]:
    """Sequential Forward calls straight to the service (no edge), as a worker using gRPC makes."""
    head = pb.ForwardRequest(
        head=pb.ForwardRequestHead(
            method="GET", upstream="bench", path="/v1/models", headers=[pb.HttpHeader(name="authorization", value=f"Bearer {placeholder}")]
        )
    )
    samples = []
    for _ in range(SEQUENTIAL):
        started = time.perf_counter()
        call = stub.Forward(metadata=(("authorization", f"Bearer {token}"),), wait_for_ready=True)
        await call.write(head)
        await call.done_writing()
        async for _ in call:
            pass
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    from bench.common import fresh_database

    upstream_port = _free_port()
    upstream = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.echo_upstream", "--port", str(upstream_port), stderr=asyncio.subprocess.DEVNULL
    )
    bare_port = _free_port()
    bare = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.forward_bare", "--port", str(bare_port), stderr=asyncio.subprocess.DEVNULL
    )
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    dsn = await fresh_database(admin_dsn)
    await migrate(dsn)
    upstreams = json.dumps({"bench": {"base_url": upstream_url, "allow_private": True}})
    processes, ports = await start_services(dsn, "secretproxy", "edge", log_level="info", extra_env={"SWITCHBOARD_PROXY_UPSTREAMS": upstreams})
    results: dict[str, list[float]] = {k: [] for k in ("direct_p50", "direct_p99", "proxy_p50", "proxy_p99", "grpc_p50", "bare_p50", "direct_rps", "proxy_rps")}
    try:
        org, agent = str(uuid.uuid4()), str(uuid.uuid4())
        token = WORKER_TOKENS.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(hours=1)).token
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['secretproxy']}") as channel, grpc.aio.insecure_channel(
            f"127.0.0.1:{bare_port}"
        ) as bare_channel:
            bare_stub = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(bare_channel)
            stub = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(channel)
            placeholder = (
                await stub.PutSecret(pb.PutSecretRequest(organization_id=org, name="BENCH_KEY", value="sk-bench-value"), metadata=METADATA)
            ).placeholder
            await stub.SetEgressPolicy(
                pb.SetEgressPolicyRequest(organization_id=org, rules=[pb.EgressRule(action=pb.EGRESS_ACTION_ALLOW, host_pattern="127.0.0.1")]),
                metadata=METADATA,
            )
            limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY * 2)
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                direct = (f"{upstream_url}/v1/models", {"authorization": "Bearer sk-bench-value"})
                proxied = (
                    f"http://127.0.0.1:{ports['edge']}/v1/proxy/bench/v1/models",
                    {"authorization": f"Bearer {placeholder}", "x-switchboard-token": token},
                )
                for _ in range(50):  # warm-up: connections, caches, the first audit flush
                    await client.get(direct[0], headers=direct[1])
                    await client.get(proxied[0], headers=proxied[1])
                await _grpc_latencies(bare_stub, token, placeholder)
                for _ in range(repetitions):
                    samples = await _latencies(client, *direct)
                    results["direct_p50"].append(percentile(samples, 50))
                    results["direct_p99"].append(percentile(samples, 99))
                    samples = await _latencies(client, *proxied)
                    results["proxy_p50"].append(percentile(samples, 50))
                    results["proxy_p99"].append(percentile(samples, 99))
                    results["grpc_p50"].append(percentile(await _grpc_latencies(stub, token, placeholder), 50))
                    results["bare_p50"].append(percentile(await _grpc_latencies(bare_stub, token, placeholder), 50))
                    results["direct_rps"].append(await _throughput(client, *direct))
                    results["proxy_rps"].append(await _throughput(client, *proxied))
    finally:
        for process in [*processes, upstream, bare]:
            process.terminate()
        await asyncio.gather(*(p.wait() for p in [*processes, upstream, bare]))
    m = {k: Measurement(v) for k, v in results.items()}
    added = m["proxy_p50"].median - m["direct_p50"].median
    rows = [
        Row("secret proxy via edge: GET latency p50", "ms", m["proxy_p50"], "direct httpx to the same upstream", m["direct_p50"],
            higher_is_better=False, goal="≤ direct + 2 ms"),
        Row("secret proxy via edge: GET latency p99", "ms", m["proxy_p99"], "direct httpx to the same upstream", m["direct_p99"],
            higher_is_better=False),
        Row("secret proxy, gRPC Forward (no edge): latency p50", "ms", m["grpc_p50"], "direct httpx to the same upstream", m["direct_p50"],
            higher_is_better=False),
        Row("secret proxy, gRPC Forward (no edge): latency p50", "ms", m["grpc_p50"],
            "bare grpc.aio bidi stream, same messages, no upstream call", m["bare_p50"], higher_is_better=False),
        Row(f"secret proxy via edge: requests/s, {CONCURRENCY} in flight", "req/s", m["proxy_rps"], "direct httpx to the same upstream",
            m["direct_rps"], goal="≥ 0.5×"),
    ]  # fmt: skip
    notes = [
        f"Secret proxy: one `switchboard serve secretproxy` and one `switchboard serve edge` process in front of a minimal "
        f"uvicorn upstream on loopback (its own process). Each proxied request carries a placeholder in `Authorization`, "
        f"which the proxy swaps for the organisation's secret after one database round trip (throttle state, secrets, "
        f"credential and policy hash together), a cached egress verdict and a cached DNS answer; it is audited in batches. "
        f"Latency: {SEQUENTIAL} sequential GETs; throughput: {THROUGHPUT_REQUESTS} GETs with {CONCURRENCY} in flight. "
        f"Added latency at p50: {added:.2f} ms (goal ≤ 2 ms).",
        "Secret proxy, where the time goes (profiled with py-spy and /proc CPU times over 3000 requests at 32 in "
        "flight, 2026-11-21): per proxied request the secretproxy process spends 2.6 ms of CPU, the edge 1.5 ms, "
        "PostgreSQL 0.35 ms and the upstream 0.16 ms (the load client 2.5 ms), which on 2 cores caps the proxied path "
        "near 270 req/s. In the secretproxy, about 20% of samples are httpx's client (its pool checks pooled "
        "connections with a select() per request: 7%), 8% the one database round trip, and about a quarter gRPC's "
        "poller thread. A bare grpc.aio bidirectional stream with the same three response messages costs ~0.9 ms at "
        "p50 by itself (row above), and each HTTP hop through Python ~0.5–1 ms: two extra hops (edge, then proxy) "
        "do not fit in +2 ms on this machine. Fixed along the way: httpcore imported the missing `sniffio` on every "
        "request (5% of the proxy's CPU; now a dependency), JWT signature checks per call (now once per token), and "
        "the edge's pure-Python HTTP parser (httptools now). Meeting the goal would take a data plane outside CPython "
        "(e.g. Envoy calling this decision logic through ext_proc), which is a design change, not a fix in reach.",
    ]
    return rows, notes

"""The edge over real HTTP (uvicorn on loopback) with real upstream gRPC servers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchboard.services.edge.app import create_app
from switchboard.services.edge.settings import EdgeSettings
from switchboard.services.edge.upstreams import Upstreams
from switchboard.services.identity import app as identity_app
from switchboard.services.interactions import app as interactions_app
from switchboard.services.runs import app as runs_app
from switchboard.services.secretproxy import app as secretproxy_app
from switchboard.shared.auth import Authenticator
from switchboard.shared.config import Settings
from switchboard.shared.grpc.client import open_channel
from switchboard.shared.grpc.server import ServerOptions, ServiceServer
from switchboard.shared.logs import capture_log_lines
from tests.conftest import INTERNAL_TOKEN
from tests.support.worker_keys import PUBLIC_KEYS_SETTING, SIGNING_KEY_SETTING, verifier

APPS = {"identity": identity_app, "interactions": interactions_app, "secretproxy": secretproxy_app, "runs": runs_app}
MAX_BODY = 4096


async def _echo_body(request: Request) -> Response:
    return Response(await request.body())


async def _crash(request: Request) -> Response:
    raise RuntimeError("the database password is hunter2")


@pytest.fixture
async def upstream_servers() -> AsyncIterator[dict[str, ServiceServer]]:
    servers = {}
    try:
        for name, module in APPS.items():
            keys = {"worker_token_public_keys": PUBLIC_KEYS_SETTING, "worker_token_signing_key": SIGNING_KEY_SETTING}
            app = await module.create(Settings(internal_token=INTERNAL_TOKEN, **keys), None)
            server = ServiceServer(
                app.registrations,
                ServerOptions(host="127.0.0.1", port=0),
                authenticator=Authenticator(INTERNAL_TOKEN, verifier()),
            )
            await server.start()
            servers[name] = server
        yield servers
    finally:  # a server left running would keep the test process from exiting
        for server in servers.values():
            await server.stop()


@pytest.fixture
async def edge(upstream_servers) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(internal_token=INTERNAL_TOKEN)
    upstreams = Upstreams(
        {name: open_channel(f"127.0.0.1:{s.port}", token=INTERNAL_TOKEN) for name, s in upstream_servers.items()}
    )
    app = create_app(settings, own=EdgeSettings(edge_max_body_bytes=MAX_BODY), upstreams=upstreams)
    app.router.routes.append(Route("/test/echo", _echo_body, methods=["POST"]))  # a route that reads bodies
    app.router.routes.append(Route("/test/crash", _crash, methods=["GET"]))
    # A socket that already listens: requests queue in its backlog until uvicorn accepts them, so
    # the test needs no wait for start-up.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=10) as client:
        yield client
    server.should_exit = True
    await task


async def test_healthz_answers_while_the_process_is_up(edge):
    response = await edge.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


async def test_readyz_is_ready_when_every_service_is_serving(edge):
    response = await edge.get("/readyz")
    assert response.status_code == 200
    assert response.json()["services"] == {name: "SERVING" for name in APPS}


async def test_readyz_names_the_service_that_is_not_serving(edge, upstream_servers):
    await upstream_servers["runs"].stop()
    response = await edge.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "not serving: runs" and body["status"] == 503
    assert body["services"]["runs"] == "UNAVAILABLE" and body["services"]["identity"] == "SERVING"


async def test_unknown_routes_and_methods_get_problem_bodies(edge):
    missing = await edge.get("/nope")
    assert missing.status_code == 404 and missing.json()["detail"] == "no route for GET /nope"
    wrong_method = await edge.post("/healthz")
    assert wrong_method.status_code == 405 and wrong_method.json()["title"] == "Method not allowed"


async def test_a_declared_oversized_body_is_refused_with_413(edge):
    response = await edge.post("/healthz", content=b"x" * (MAX_BODY + 1))
    assert response.status_code == 413
    assert response.json() == {
        "type": "about:blank",
        "title": "Request body too large",
        "status": 413,
        "detail": f"the request body exceeds the limit of {MAX_BODY} bytes",
        "limit_bytes": MAX_BODY,
    }


async def test_a_streamed_oversized_body_is_refused_with_413(edge):
    async def chunks():
        for _ in range(4):
            yield b"y" * 2048

    response = await edge.post("/test/echo", content=chunks())  # chunked: no Content-Length
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == MAX_BODY


async def test_a_body_within_the_limit_reaches_the_route(edge):
    response = await edge.post("/test/echo", content=b"z" * MAX_BODY)
    assert response.status_code == 200 and response.content == b"z" * MAX_BODY


async def test_metrics_expose_http_requests_by_route_and_status(edge):
    await edge.get("/healthz")
    await edge.get("/nope")
    text = (await edge.get("/metrics")).text
    assert 'switchboard_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"' in text


async def test_each_request_logs_one_line_with_its_request_id(edge):
    with capture_log_lines() as logs:
        await edge.get("/healthz", headers={"x-request-id": "abc-123"})
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if "http_request_finished" in line]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "abc-123" and lines[0]["route"] == "/healthz" and lines[0]["status"] == 200


async def test_an_unexpected_error_is_a_500_problem_with_the_request_id_and_a_logged_traceback(edge):
    with capture_log_lines() as logs:
        response = await edge.get("/test/crash", headers={"x-request-id": "crash-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "crash-1"
    assert response.json()["title"] == "Internal error" and "hunter2" not in response.text
    errors = [json.loads(line) for line in logs.getvalue().splitlines() if "http_unexpected_error" in line]
    assert errors[0]["request_id"] == "crash-1" and "hunter2" in errors[0]["exception"]


async def test_unusual_methods_do_not_grow_metric_labels(edge):
    # PURGE: a method the HTTP parser accepts (httptools refuses made-up ones such as BREW with
    # a 400 before the app runs) but that is not one of the methods metrics label by name.
    await edge.request("PURGE", "/healthz")
    text = (await edge.get("/metrics")).text
    assert "PURGE" not in text and 'method="OTHER"' in text

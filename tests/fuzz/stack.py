"""Every service of Switchboard in this process, as the fuzz suite calls them: the four gRPC
services on loopback against one migrated test database, the edge over real HTTP, fake Slack and
Telegram APIs and a fake provider upstream, each on a real port."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
from prometheus_client import CollectorRegistry

from switchboard.catalog import Configuration, configure
from switchboard.services.edge.app import create_app
from switchboard.services.edge.upstreams import Upstreams
from switchboard.services.identity import app as identity_app
from switchboard.services.interactions import app as interactions_app
from switchboard.services.runs import app as runs_app
from switchboard.services.secretproxy import app as secretproxy_app
from switchboard.shared.auth import Authenticator
from switchboard.peers import remote_fetch
from switchboard.services.interactions.hub import StreamHub
from switchboard.services.secretproxy.audit import AuditLog
from switchboard.shared.memberships import CachedMemberships
from switchboard.shared.config import Settings
from switchboard.shared.crypto import new_key_list
from switchboard.shared.db import create_pool
from switchboard.shared.grpc.client import open_channel
from tests.conftest import INTERNAL_TOKEN, free_port
from tests.support.worker_keys import PUBLIC_KEYS_SETTING, SIGNING_KEY_SETTING, verifier
from tests.support.asgi import serve_asgi
from tests.support.fake_chat import FakeSlack, FakeTelegram
from tests.support.serving import serving
from tests.support.upstream import FakeUpstream

SLACK_TOKEN = "xoxb-" + "f" * 30
TELEGRAM_TOKEN = "123456:" + "f" * 30
SERVICES = ("identity", "interactions", "secretproxy", "runs")


@dataclass(repr=False)
class Stack:
    channels: dict[str, grpc.aio.Channel]  # plain channels: the caller sends its own metadata
    pools: dict[str, asyncpg.Pool]
    edge_url: str
    slack_url: str
    telegram_url: str
    upstream: FakeUpstream

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # how Hypothesis prints it in a report
        printer.text(repr(self))

    def __repr__(self) -> str:  # shown in every failure report: keep it short
        return f"Stack(edge={self.edge_url})"

    @property
    def pool(self) -> asyncpg.Pool:
        return self.pools["identity"]


def _settings(database_url: str, identity_port: int, upstream_url: str) -> Configuration:
    upstreams = {
        "echo": {"base_url": upstream_url, "allow_private": True},
        "loopback-denied": upstream_url,  # not exempted from the deny of private addresses
        "closed": {"base_url": f"http://127.0.0.1:{free_port()}", "allow_private": True},  # nothing listens
        "header-key": {"base_url": upstream_url, "allow_private": True, "credential_header": "x-api-key"},
    }
    return configure(
        database_url=database_url,
        internal_token=INTERNAL_TOKEN,
        worker_token_public_keys=PUBLIC_KEYS_SETTING,
        credentials_keys=new_key_list("k1"),
        identity_target=f"127.0.0.1:{identity_port}",
        proxy_upstreams=json.dumps(upstreams),
        db_pool_max_size=10,
        # The reaper must not fail the seeded running runs however long a large fuzz run takes: a
        # reaped run of organisation B would be a legitimate change, not an isolation failure.
        runs_reaper_stale_after_seconds=86400,
        # Fuzzed placeholders would soon throttle the worker and hide the forwarding paths.
        proxy_failed_lookup_limit=1_000_000,
        # The fake upstream's /stall waits for ever: a bounded answer instead.
        proxy_read_timeout_seconds=2,
    )


async def _serve(stack: contextlib.AsyncExitStack, name: str, configuration: Configuration) -> tuple[int, grpc.aio.Channel, asyncpg.Pool]:
    module = {"identity": identity_app, "interactions": interactions_app, "secretproxy": secretproxy_app, "runs": runs_app}[name]
    settings = configuration.platform
    pool = await create_pool(settings, name, application_name=f"tests-fuzz-{name}")
    if name == "identity":  # only identity holds the signing key, as in a deployment
        settings = dataclasses.replace(settings, worker_token_signing_key=SIGNING_KEY_SETTING)
    app = await module.create(settings, pool, own=configuration.of(name), registry=CollectorRegistry())
    authenticator = Authenticator(INTERNAL_TOKEN, verifier(require_organization=name != "secretproxy"))
    memberships = None
    if name != "identity":  # acting users' roles from the real identity, as `serve` asks them
        lookups = open_channel(settings.target_of("identity"), token=INTERNAL_TOKEN)
        stack.push_async_callback(lookups.close)
        memberships = CachedMemberships(remote_fetch(lookups))
    # Every component of interactions (the stream hub, its retention and sweeper loops) and the
    # proxy's audit writer; not the reaper nor the proxy's retention (the fuzz checks no timing).
    components = None
    if name == "runs":
        components = ()
    elif name == "secretproxy":
        components = [app.component(AuditLog)]
    port, channel = await stack.enter_async_context(
        serving(app, pool, authenticator, shutdown_grace_seconds=1, memberships=memberships, components=components)
    )
    if name == "interactions":
        await app.component(StreamHub).listening.wait()
    return port, channel, pool


@contextlib.asynccontextmanager
async def running_stack(database_url: str) -> AsyncIterator[Stack]:
    """The whole platform on ``database_url`` (migrated), until the context exits."""
    async with contextlib.AsyncExitStack() as stack:
        slack, telegram, upstream = FakeSlack(SLACK_TOKEN), FakeTelegram(TELEGRAM_TOKEN), FakeUpstream()
        slack_url = await stack.enter_async_context(serve_asgi(slack.app())) + "/api"
        telegram_url = await stack.enter_async_context(serve_asgi(telegram.app()))
        upstream_url = await stack.enter_async_context(serve_asgi(upstream.app()))
        stack.callback(upstream.stall.set)  # release any request still parked in /stall
        channels, pools, ports = {}, {}, {}
        configuration = _settings(database_url, 0, upstream_url)
        for name in SERVICES:  # identity first: the secret proxy resolves organisations through it
            configuration = configuration.replace(identity_target=f"127.0.0.1:{ports.get('identity', 0)}")
            ports[name], channels[name], pools[name] = await _serve(stack, name, configuration)
        edge_settings = Settings(internal_token=INTERNAL_TOKEN, worker_token_public_keys=PUBLIC_KEYS_SETTING)
        upstreams = Upstreams({name: open_channel(f"127.0.0.1:{ports[name]}", token=INTERNAL_TOKEN) for name in SERVICES})
        edge_url = await stack.enter_async_context(serve_asgi(create_app(edge_settings, upstreams=upstreams)))
        yield Stack(channels, pools, edge_url, slack_url, telegram_url, upstream)

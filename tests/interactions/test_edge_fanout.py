"""The edge's sharing of streams: SSE clients of one stream ride on one upstream subscription per
edge process, each from its own position; a foreign or revoked token never rides on it, and a
token revoked while its client is on the feed ends that client before the next delivery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from switchboard.services.edge.app import create_app
from switchboard.services.edge.settings import EdgeSettings
from switchboard.services.edge.upstreams import Upstreams
from switchboard.shared.config import Settings
from switchboard.shared.grpc.client import open_channel
from switchboard.shared.revocations import Revocation
from switchboard.interactions.v1 import event_service_pb2 as pb
from tests.conftest import INTERNAL_TOKEN
from tests.interactions.conftest import OPERATOR, Replica, replica
from tests.interactions.test_bad_input import sse_messages
from tests.support.asgi import serve_asgi
from tests.support.worker_keys import ISSUER, PUBLIC_KEYS_SETTING

LIMITS = {
    "events_max_subscribers_per_stream": 100,
    "events_max_subscribers_per_organization": 100,
    "events_max_subscribers_per_agent": 100,
}

EDGE_LIMITS = EdgeSettings(edge_sse_max_clients_per_stream=100, edge_sse_max_clients_per_agent=100)


@dataclass
class Edge:
    url: str
    app: object
    service: Replica
    revoked: list[Revocation]

    @property
    def fanout(self):
        return self.app.state.fanout

    async def revoke(self, token_id: str) -> None:
        """Revoke at the source, and let the edge's list take it in (one refresh)."""
        now = datetime.now(UTC)
        self.revoked.append(Revocation(token_id, now, now + timedelta(hours=1)))
        assert await self.app.state.revocations.run_once()


@contextlib.asynccontextmanager
async def edge_over(database_url: str) -> AsyncIterator[Edge]:
    async with replica(database_url, **LIMITS) as service:
        revoked: list[Revocation] = []

        async def fetch(since: datetime | None) -> list[Revocation]:  # identity's list, as the edge polls it
            return list(revoked)

        settings = Settings(internal_token=INTERNAL_TOKEN, worker_token_public_keys=PUBLIC_KEYS_SETTING)
        upstreams = Upstreams({"interactions": open_channel(f"127.0.0.1:{service.port}", token=INTERNAL_TOKEN)})
        app = create_app(settings, own=EDGE_LIMITS, upstreams=upstreams, revocations=fetch)
        async with serve_asgi(app) as url:
            await app.state.revocations.refreshed.wait()
            yield Edge(url, app, service, revoked)


def worker(org: str, agent: str):
    return ISSUER.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=5))


async def publish(service: Replica, org: str, stream: str, count: int) -> None:
    for _ in range(count):
        await service.stub.Publish(pb.PublishRequest(stream=stream, organization_id=org, type="t", payload_json="{}"), metadata=OPERATOR)


@contextlib.asynccontextmanager
async def sse(http: httpx.AsyncClient, stream: str, token: str, after: int | None = None):
    """The messages of an open SSE response (status 200 asserted)."""
    headers = {"Authorization": f"Bearer {token}"}
    if after is not None:
        headers["Last-Event-ID"] = str(after)
    async with http.stream("GET", f"/v1/streams/{stream}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        yield sse_messages(response)


async def test_many_sse_clients_of_a_stream_share_one_upstream_and_each_resumes_from_its_own_position(migrated_database):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    stream, token = f"agents/{agent}", worker(org, agent).token
    async with edge_over(migrated_database) as edge, httpx.AsyncClient(base_url=edge.url, timeout=httpx.Timeout(10, read=20)) as http:
        await publish(edge.service, org, stream, 30)
        positions = [30, 0, 5, 12, 29, 30, 17, 30, 3, 30]  # the first at the head; the others before it
        last = 50

        release = asyncio.Event()

        async def client(after: int, joined: asyncio.Event, received: asyncio.Future) -> None:
            async with sse(http, stream, token, after) as messages:
                joined.set()
                sequences: list[int] = []
                while not sequences or sequences[-1] < last:
                    event, event_id, _ = await anext(messages)
                    assert event == "t", event
                    sequences.append(int(event_id))
                received.set_result(sequences)
                await release.wait()  # connected until the edge's figures are read

        readers, results = [], []
        for after in positions:
            joined, received = asyncio.Event(), asyncio.get_running_loop().create_future()
            readers.append(asyncio.ensure_future(client(after, joined, received)))
            results.append(received)
            await joined.wait()
        await publish(edge.service, org, stream, last - 30)
        async with asyncio.timeout(30):
            received = await asyncio.gather(*results)
        for after, sequences in zip(positions, received, strict=True):
            assert sequences == list(range(after + 1, last + 1)), after
        assert (edge.fanout.upstream_opened, edge.fanout.feeds) == (1, 1)  # one for all ten
        metrics = (await http.get("/metrics")).text
        assert "switchboard_edge_stream_feeds_opened_total 1.0" in metrics
        assert "switchboard_edge_stream_feeds 1.0" in metrics and "switchboard_edge_stream_clients 10.0" in metrics
        release.set()
        await asyncio.gather(*readers)
    assert edge.fanout.feeds == 0


async def test_a_foreign_or_revoked_token_never_rides_on_the_feed_and_a_revocation_ends_only_its_client(migrated_database):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    stream = f"agents/{agent}"
    mine, theirs = worker(org, agent), worker(org, agent)
    async with edge_over(migrated_database) as edge, httpx.AsyncClient(base_url=edge.url, timeout=httpx.Timeout(10, read=20)) as http:
        await publish(edge.service, org, stream, 1)
        async with asyncio.timeout(20), sse(http, stream, mine.token) as first, sse(http, stream, theirs.token) as second:
            assert (await anext(first))[1] == "1" and (await anext(second))[1] == "1"
            assert edge.fanout.upstream_opened == 1
            # Another agent's token (the organisation comes from the token, so another
            # organisation's names another stream): the service refuses it before it joins.
            foreign = worker(org, str(uuid.uuid4())).token
            refused = await http.get(f"/v1/streams/{stream}/events", headers={"Authorization": f"Bearer {foreign}"})
            assert refused.status_code == 403, refused.text
            # Revoked while on the feed: ended before the next delivery; the other client goes on.
            await edge.revoke(mine.token_id)
            await publish(edge.service, org, stream, 1)
            event, _, data = await anext(first)
            assert event == "error" and json.loads(data)["code"] == "UNAUTHENTICATED"
            assert json.loads(data)["resume_after_sequence"] == "1"
            assert await anext(first, None) is None  # the response ended; sequence 2 never came
            assert (await anext(second))[:2] == ("t", "2")
            # And a revoked token cannot join again.
            again = await http.get(f"/v1/streams/{stream}/events", headers={"Authorization": f"Bearer {mine.token}"})
            assert again.status_code == 401 and "revoked" in again.text
        assert edge.fanout.upstream_opened == 1  # no refused client ever opened or joined one


async def test_an_sse_client_that_does_not_read_is_ended_with_where_to_resume_and_the_others_go_on(migrated_database):
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    stream, token = f"agents/{agent}", worker(org, agent).token
    big = json.dumps({"pad": "z" * 60_000})
    async with edge_over(migrated_database) as edge, httpx.AsyncClient(base_url=edge.url, timeout=httpx.Timeout(10, read=20)) as http:
        await publish(edge.service, org, stream, 1)
        # A client that stops reading: a small receive buffer, so that the server's writes to it
        # stall soon and the feed's window (4 MiB) moves on without it.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(edge.url.rsplit(":", 1)[1])))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET /v1/streams/{stream}/events HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer {token}\r\nLast-Event-ID: 0\r\n\r\n".encode())
        async with asyncio.timeout(30), sse(http, stream, token, after=1) as reading:
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            for batch in range(12):  # 240 events of 60 kB: far more than the window and the buffers
                await edge.service.stub.PublishBatch(
                    pb.PublishBatchRequest(stream=stream, organization_id=org, events=[pb.EventInput(type="t", payload_json=big)] * 20),
                    metadata=OPERATOR,
                )
                for sequence in range(2 + 20 * batch, 22 + 20 * batch):  # the client that reads gets every one
                    assert (await anext(reading))[1] == str(sequence)
            # Now the slow one reads: what was buffered, in order, then the end with its position.
            body = (await reader.read()).decode()
        ids = [int(line[4:]) for line in body.splitlines() if line.startswith("id: ")]
        assert ids == list(range(1, len(ids) + 1)) and len(ids) < 241
        error = json.loads(body.rsplit("event: error", 1)[1].split("data: ", 1)[1].split("\r\n", 1)[0])
        assert (error["code"], error["resume_after_sequence"]) == ("ABORTED", str(ids[-1]))
        writer.close()


async def _chunks(reader: asyncio.StreamReader, want_ids: int) -> tuple[list[int], list[int]]:
    """The sizes of the chunks of a chunked HTTP/1.1 response (each one write of the edge), and
    the event ids in them, until ``want_ids`` ids were read."""
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower(), head
    sizes: list[int] = []
    body = b""
    while (b"\n" + body).count(b"\nid: ") < want_ids:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        sizes.append(size)
        body += (await reader.readexactly(size + 2))[:-2]
    ids = [int(line[4:]) for line in body.decode().splitlines() if line.startswith("id: ")]
    return sizes, ids


async def test_a_client_resuming_far_back_in_the_feed_gets_its_backlog_in_bounded_writes(migrated_database):
    # A client that resumes at the start of a full feed window must not get the window (up to
    # 4 MiB) joined into one write: a client that then stops reading would pin all of it in the
    # edge's send buffer, and a few hundred such clients (within the per-organisation limit) the
    # edge's memory. Writes stay bounded, as on the unshared path (one event each).
    org, agent = str(uuid.uuid4()), str(uuid.uuid4())
    stream, token = f"agents/{agent}", worker(org, agent).token
    big = json.dumps({"pad": "z" * 30_000})
    async with edge_over(migrated_database) as edge, httpx.AsyncClient(base_url=edge.url, timeout=httpx.Timeout(10, read=20)) as http:
        async with asyncio.timeout(30), sse(http, stream, token, after=0) as live:  # opens the feed at the head (0)
            for _ in range(2):
                await edge.service.stub.PublishBatch(
                    pb.PublishBatchRequest(stream=stream, organization_id=org, events=[pb.EventInput(type="t", payload_json=big)] * 50),
                    metadata=OPERATOR,
                )
            for sequence in range(1, 101):  # the feed now holds all 100 (3 MB, within its window)
                assert (await anext(live))[1] == str(sequence)
            reader, writer = await asyncio.open_connection("127.0.0.1", int(edge.url.rsplit(":", 1)[1]))
            writer.write(f"GET /v1/streams/{stream}/events HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer {token}\r\nLast-Event-ID: 0\r\n\r\n".encode())
            sizes, ids = await _chunks(reader, 100)
            writer.close()
        assert ids == list(range(1, 101))  # every event, in order, from the shared window
        assert edge.fanout.upstream_opened == 1
        assert max(sizes) <= 128 << 10, sizes  # 3 MB in writes of at most 64 KiB (or one event)

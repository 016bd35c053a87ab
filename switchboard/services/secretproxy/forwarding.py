"""`Forward`: one worker request, decided (fail closed) and then streamed to its upstream and back.

The decision, in order, each step refusing with a status before anything goes upstream:
1. the caller is a worker; its organisation is the token's, or identity's answer (else UNAVAILABLE);
2. the head is well formed and names a configured upstream;
3. one database round trip reads the throttle state of the sources, the secrets of the
   placeholders sent, the organisation's best credential for the upstream and its policy hash;
4. a throttled source is refused; every placeholder must be a secret of the expected organisation
   (and of the agent, if agent-scoped); failures are counted against the sources on every replica;
5. a request without a credential of its own (no placeholder in any header, no Authorization and
   no credential header of the upstream) gets the organisation's best one, or is refused;
6. the egress policy (cached verdicts keyed by the policy hash) and, after DNS resolution, the
   global deny of private addresses; the connection goes to the address that was checked.
Then the proxy accepts the request (initial metadata ``x-switchboard-body-limit``: send the body,
at most that many bytes), the body streams up, the response streams back (injected values
redacted), and the decision is audited.

Why the acceptance: gRPC's client loses a call's status when one of its writes is under way as the
server ends the call (the failed write turns the status into INTERNAL "Internal error from Core").
A caller that sends the body only once accepted, and stops after the first chunk beyond the limit,
never has a write under way when the proxy refuses; after accepting, the proxy never ends the call
before the caller has finished sending (see ``_Body.linger``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import httpx
import structlog
from cryptography.exceptions import InvalidTag

from switchboard.services.secretproxy import egress, placeholders, store, vault
from switchboard.services.secretproxy.audit import AuditLog, AuditRecord
from switchboard.services.secretproxy.cache import TtlLru
from switchboard.services.secretproxy.clients import UpstreamClients
from switchboard.services.secretproxy.destinations import ResolutionFailed, Resolver
from switchboard.services.secretproxy.head import (
    REQUEST_FRAMING,
    RequestHead,
    forwardable,
    parse_head,
)
from switchboard.services.secretproxy.organizations import OrganizationResolver
from switchboard.services.secretproxy.redaction import Redactor
from switchboard.services.secretproxy.upstreams import Upstream
from switchboard.shared.auth import WorkerPrincipal, current_principal
from switchboard.shared.crypto import KeyRing
from switchboard.shared.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from switchboard.shared.headers import BODY_LIMIT_METADATA, EDGE_TOKEN_HEADER, WORKER_TOKEN_HEADER
from switchboard.shared.logs import get_logger
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb

log = get_logger(__name__)

MAX_CHUNK = 64 * 1024
# How long an answer that does not need the rest of the body waits for a chunk of it (nginx's
# lingering_timeout, for the same reason: the sender must see the answer, not a broken stream).
_LINGER_SECONDS = 5.0
_SEARCHABLE_ENCODINGS = frozenset({"identity", "gzip", "deflate"})  # httpx decodes these itself
_PREFETCH = 64 * 1024


@dataclass(frozen=True)
class ForwardLimits:
    max_body_bytes: int
    failed_lookup_limit: int
    failed_lookup_window_seconds: float
    # A worker that stops sending its body mid-way must not hold an upstream connection forever.
    body_idle_seconds: float = 120.0


class _Body:
    """The request body as it arrives on the call: read ahead up to 64 KiB (a small body is sent
    with its length; a larger one streams), counted against the limit."""

    def __init__(self, requests: AsyncIterator[pb.ForwardRequest], max_bytes: int, idle_seconds: float):
        self._requests = requests
        self._max = max_bytes
        self._idle = idle_seconds
        self.bytes = 0
        self.complete = False
        self.error: DomainError | None = None
        self._buffered: list[bytes] = []

    async def _next_chunk(self) -> bytes | None:
        """The next piece of body; None at the end (an end message or a half-close)."""
        if self.complete:
            return None
        try:
            async with asyncio.timeout(self._idle):
                message = await anext(self._requests, None)
        except TimeoutError:
            self.error = InvalidArgument(
                FieldViolation("body_chunk", f"no part of the request body arrived for {self._idle:g} s"),
                message="the request body stalled",
            )
            raise self.error from None
        kind = message.WhichOneof("kind") if message is not None else "end"
        if kind == "end":
            self.complete = True
            return None
        if kind != "body_chunk":
            self.error = InvalidArgument(FieldViolation("head", "only the first message may be a head"))
            raise self.error
        self.bytes += len(message.body_chunk)
        if self.bytes > self._max:
            self.error = ResourceExhausted(f"the request body exceeds the limit of {self._max} bytes", reason="BODY_TOO_LARGE")
            raise self.error
        return message.body_chunk

    async def prefetch(self) -> None:
        size = 0
        while size < _PREFETCH:
            chunk = await self._next_chunk()
            if chunk is None:
                return
            self._buffered.append(chunk)
            size += len(chunk)

    async def linger(self) -> None:
        """Read and drop the rest of the body. The proxy answers without it (the upstream failed or
        answered early) while the caller may still be sending: ending the call under a write would
        cost the caller the answer. Bounded: up to the body limit, and while chunks keep coming."""
        dropped = 0
        while not self.complete and self.error is None and dropped <= self._max:
            try:
                async with asyncio.timeout(min(_LINGER_SECONDS, self._idle)):
                    message = await anext(self._requests, None)
            except TimeoutError:
                return
            if message is None or message.WhichOneof("kind") != "body_chunk":
                self.complete = True
                return
            dropped += len(message.body_chunk)

    def content(self) -> bytes | AsyncIterator[bytes]:
        if self.complete:
            return b"".join(self._buffered)
        return self._stream()

    async def _stream(self) -> AsyncIterator[bytes]:
        for chunk in self._buffered:
            yield chunk
        self._buffered = []
        while (chunk := await self._next_chunk()) is not None:
            yield chunk


class Forwarder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        keys: KeyRing | None,
        upstreams: dict[str, Upstream],
        organizations: OrganizationResolver,
        resolver: Resolver,
        verdicts: TtlLru[egress.Verdict],
        audit: AuditLog,
        http: UpstreamClients,
        limits: ForwardLimits,
        internal_token: str,
    ):
        self._pool = pool
        self._keys = keys
        self._upstreams = upstreams
        self._organizations = organizations
        self._resolver = resolver
        self._verdicts = verdicts
        self._rules: TtlLru[list[egress.Rule]] = TtlLru(1024, 300.0)  # (org, policy hash) → rules; a hash never changes meaning
        self._audit = audit
        self._http = http
        self._limits = limits
        self._edge_token = internal_token.encode()

    async def forward(self, requests: AsyncIterator[pb.ForwardRequest], context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ForwardResponse]:
        started = time.perf_counter()
        principal = current_principal()
        # Every call is audited, also those refused before their head is read.
        record = AuditRecord(principal.organization_id if isinstance(principal, WorkerPrincipal) else None,
                             principal.agent_id if isinstance(principal, WorkerPrincipal) else None, "", "", "")  # fmt: skip
        try:
            if not isinstance(principal, WorkerPrincipal):
                raise PermissionDenied("Forward is for workers: call it with a worker token", reason="WORKERS_ONLY")
            organization_id = await self._organizations.organization_of(principal)
            record.organization_id = organization_id
            if principal.organization_id is None:  # resolved here: the call's log line should carry it too
                structlog.contextvars.bind_contextvars(organization_id=organization_id)
            first = await anext(requests, None)
            if first is None or first.WhichOneof("kind") != "head":
                raise InvalidArgument(FieldViolation("head", "the first message must be the request head"))
            record.upstream, record.method = first.head.upstream, first.head.method
            # As received (percent-encoded), without the query string, placeholders blanked.
            record.path = placeholders.redact(first.head.path.split("?")[0])
            head = parse_head(first.head)
            async with contextlib.aclosing(self._forward(principal, organization_id, head, requests, context, record)) as messages:
                async for message in messages:
                    yield message
        except DomainError as exc:
            if exc.reason != "UPSTREAM_INTERRUPTED":
                record.decision = "denied"
            record.reason = exc.reason.lower()
            raise
        except (GeneratorExit, asyncio.CancelledError):
            record.reason = "client_cancelled"
            raise
        finally:
            record.duration_ms = (time.perf_counter() - started) * 1000
            self._audit.record(record)

    async def _forward(
        self,
        worker: WorkerPrincipal,
        organization_id: str,
        head: RequestHead,
        requests: AsyncIterator[pb.ForwardRequest],
        context: grpc.aio.ServicerContext,
        record: AuditRecord,
    ) -> AsyncIterator[pb.ForwardResponse]:
        upstream = self._upstreams.get(head.upstream)
        if upstream is None:
            raise NotFound(f"no upstream named {head.upstream!r} is configured", reason="UNKNOWN_UPSTREAM")
        url = head.url(upstream)
        headers = forwardable(head.headers, also_drop=(WORKER_TOKEN_HEADER, *REQUEST_FRAMING))
        # Placeholder → its hash, worked out once for the lookup and the check.
        found = {p: placeholders.placeholder_hash(p) for p in placeholders.find([value for _, value in headers])}
        # A placeholder in any header is the request's own credential, swapped where it stands: a
        # provider's SDK sends its key where it likes (Anthropic's as "Authorization: Bearer" for
        # an upstream whose stored credentials go in x-api-key). So is an Authorization header or the
        # upstream's own credential header. Only a request with none gets the organisation's.
        wants_credential = not found and not any(name.lower() in ("authorization", upstream.credential_header) for name, _ in headers)
        sources = self._sources(worker, organization_id, head, context)
        snapshot = await store.forward_snapshot(
            self._pool,
            sources=sources,
            failed_lookup_limit=self._limits.failed_lookup_limit,
            window_seconds=self._limits.failed_lookup_window_seconds,
            organization_id=organization_id,
            placeholder_hashes=list(found.values()),
            provider=upstream.name,
            want_credential=wants_credential,
        )
        if snapshot.blocked:
            raise ResourceExhausted(
                "too many failed placeholder lookups from this source; refused for the rest of the window",
                reason="TOO_MANY_FAILED_LOOKUPS",
            )
        replacements = await self._open_placeholders(worker, organization_id, found, snapshot, sources, record)
        headers = [(name, placeholders.substitute(value, replacements)) for name, value in headers]
        injected = list(replacements.values())
        if wants_credential:
            credential = self._open_credential(organization_id, upstream, snapshot)
            record.credential_id = snapshot.credential[0] if snapshot.credential else None
            headers.append((upstream.credential_header, upstream.credential_value(credential)))
            injected.append(credential)
        await self._check_policy(organization_id, snapshot.policy_hash, upstream, head.method, url.path)
        try:
            destination = await self._resolver.resolve(upstream.host, upstream.port)
        except ResolutionFailed:
            record.decision, record.reason, record.status_code = "allowed", "upstream_unresolvable", 502
            for message in _problem(502, f"the upstream {upstream.name!r} could not be resolved"):
                yield message
            return
        if destination.any_private and not upstream.allow_private:
            raise PermissionDenied(
                f"the upstream {upstream.name!r} resolves to a private, loopback or link-local address", reason="PRIVATE_ADDRESS"
            )
        record.decision = "allowed"
        # Accepted: from here on the caller may send its body (see the module's docstring).
        await context.send_initial_metadata(((BODY_LIMIT_METADATA, str(self._limits.max_body_bytes)),))
        exchange = self._exchange(head, upstream, url, destination.first, headers, injected, requests, record)
        async with contextlib.aclosing(exchange) as messages:
            async for message in messages:
                yield message

    def _sources(self, worker: WorkerPrincipal, organization_id: str, head: RequestHead, context: grpc.aio.ServicerContext) -> list[str]:
        """Who failed lookups count against: the agent (which cannot be spoofed), and the client
        address (the edge's word for it, or the gRPC peer's) within the organisation. Workers of
        many organisations may share a host or a NAT address: one organisation's failures must not
        lock another's workers out."""
        address = head.source_address if head.source_address and self._from_edge(context) else _peer_address(context)
        return [f"agent:{worker.agent_id}", *([f"address:{organization_id}:{address}"] if address else [])]

    def _from_edge(self, context: grpc.aio.ServicerContext) -> bool:
        for key, value in context.invocation_metadata() or ():
            if key == EDGE_TOKEN_HEADER and isinstance(value, str):
                return hmac.compare_digest(value.encode(), self._edge_token)
        return False

    async def _open_placeholders(
        self,
        worker: WorkerPrincipal,
        organization_id: str,
        found: dict[str, bytes],
        snapshot: store.ForwardSnapshot,
        sources: list[str],
        record: AuditRecord,
    ) -> dict[str, str]:
        by_hash = {s.placeholder_hash: s for s in snapshot.secrets}
        replacements: dict[str, str] = {}
        secret_ids: set[uuid.UUID] = set()
        failure: DomainError | None = None
        for placeholder, placeholder_hash in found.items():
            secret = by_hash.get(placeholder_hash)
            # Unknown, another organisation's and legacy (no organisation) look the same to the
            # caller: nothing tells it whether a placeholder exists elsewhere.
            if secret is None or secret.organization_id is None or str(secret.organization_id) != organization_id:
                failure = Unauthenticated(
                    "the request carries a placeholder that is not a secret of your organisation", reason="UNKNOWN_PLACEHOLDER"
                )
                break
            if secret.agent_id is not None and str(secret.agent_id) != worker.agent_id:
                failure = PermissionDenied("the request carries a placeholder of another agent's secret", reason="FOREIGN_AGENT_SECRET")
                break
            replacements[placeholder] = self._open(secret.key_id, secret.sealed_value, vault.secret_aad(str(secret.secret_id), organization_id))
            secret_ids.add(secret.secret_id)
        if failure is not None:
            await store.record_failed_lookups(self._pool, sources, self._limits.failed_lookup_window_seconds)
            raise failure
        record.secret_ids = sorted(secret_ids)
        return replacements

    def _open_credential(self, organization_id: str, upstream: Upstream, snapshot: store.ForwardSnapshot) -> str:
        if snapshot.credential is None:
            raise Unauthenticated(
                f"the request carries no credential for {upstream.name!r} and your organisation has none stored",
                reason="NO_CREDENTIALS",
            )
        credential_id, key_id, sealed = snapshot.credential
        return self._open(key_id, sealed, vault.credential_aad(str(credential_id), organization_id, upstream.name))

    def _open(self, key_id: str, sealed: bytes, associated: bytes) -> str:
        keys = vault.require_keys(self._keys)
        try:
            return vault.open_value(keys, key_id, sealed, associated)
        except (KeyError, InvalidTag):
            # A key removed from configuration, or a value that does not belong to its row.
            log.error("secret_unreadable", key_id=key_id)
            raise FailedPrecondition("a stored secret cannot be opened with the configured keys", reason="SECRET_UNREADABLE") from None

    async def _check_policy(self, organization_id: str, policy_hash: str | None, upstream: Upstream, method: str, path: str) -> None:
        policy_hash = policy_hash or egress.NO_POLICY_HASH
        key = egress.verdict_key(organization_id, policy_hash, upstream.host, method, path)
        verdict = self._verdicts.get(key)
        if verdict is None:
            rules, evaluated_hash = await self._policy_rules(organization_id, policy_hash)
            verdict = egress.evaluate(rules, upstream.host, method, path)
            # Cached under the hash of the rules that decided, which is not the snapshot's when
            # the policy changed in between: an old hash must never get a newer policy's verdict.
            self._verdicts.put(egress.verdict_key(organization_id, evaluated_hash, upstream.host, method, path), verdict)
        if not verdict.allowed:
            raise PermissionDenied(
                f"your organisation's egress policy does not allow {method} to {upstream.host}"
                f"{placeholders.redact(path)[:200]} ({verdict.reason})",
                reason="EGRESS_DENIED",
            )

    async def _policy_rules(self, organization_id: str, policy_hash: str) -> tuple[list[egress.Rule], str]:
        """The organisation's rules and their hash: those of ``policy_hash`` when known, else the
        current ones (the policy changed since the snapshot: deciding with the newer rules is the
        safe side of that race)."""
        if policy_hash == egress.NO_POLICY_HASH:
            return [], policy_hash
        cached = self._rules.get((organization_id, policy_hash))
        if cached is not None:
            return cached, policy_hash
        row = await store.policy_get(self._pool, organization_id)
        if row is None:
            return [], egress.NO_POLICY_HASH
        rules = json.loads(row["rules"])
        self._rules.put((organization_id, row["policy_hash"]), rules)
        return rules, row["policy_hash"]

    async def _exchange(
        self,
        head: RequestHead,
        upstream: Upstream,
        url: httpx.URL,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        headers: list[tuple[str, str]],
        injected: list[str],
        requests: AsyncIterator[pb.ForwardRequest],
        record: AuditRecord,
    ) -> AsyncIterator[pb.ForwardResponse]:
        redactor = Redactor([value.encode("latin-1", "replace") for value in injected])
        if redactor.active:
            # Compressed bodies could not be searched for echoed secrets.
            headers = [(n, v) for n, v in headers if n.lower() != "accept-encoding"] + [("accept-encoding", "identity")]
        body = _Body(requests, self._limits.max_body_bytes, self._limits.body_idle_seconds)
        await body.prefetch()
        headers.append(("host", url.netloc.decode("ascii")))
        client = self._http.for_upstream(upstream.name)
        request = client.build_request(
            head.method,
            url.copy_with(host=str(address)),  # pinned to the address that was checked
            headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers],
            content=body.content(),
            extensions={"sni_hostname": url.host} if url.scheme == "https" else {},
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            if body.error is not None:
                raise body.error from None
            record.reason, record.status_code, record.request_bytes = "upstream_timeout", 504, body.bytes
            await body.linger()
            for message in _problem(504, f"the upstream {upstream.name!r} did not answer in time"):
                yield message
            return
        except httpx.HTTPError as exc:
            if body.error is not None:
                raise body.error from None
            record.reason, record.status_code, record.request_bytes = "upstream_unreachable", 502, body.bytes
            log.info("upstream_failed", upstream=upstream.name, error=type(exc).__name__)
            await body.linger()
            for message in _problem(502, f"the upstream {upstream.name!r} failed before answering ({type(exc).__name__})"):
                yield message
            return
        except DomainError:
            raise
        record.status_code, record.reason = response.status_code, "forwarded"
        encoding = response.headers.get("content-encoding", "identity").lower()
        if redactor.active and encoding not in _SEARCHABLE_ENCODINGS:
            # Echoed secrets could not be found in it: refuse the body rather than pass it unread.
            await response.aclose()
            record.reason, record.status_code = "unsearchable_encoding", 502
            await body.linger()
            for message in _problem(502, f"the upstream answered with content-encoding {encoding!r}, which the proxy cannot check"):
                yield message
            return
        try:
            decode = redactor.active and encoding != "identity"
            drop = ("content-length", "content-encoding") if decode else (("content-length",) if redactor.active else ())
            response_headers = [
                pb.HttpHeader(name=name, value=redactor.text(value))
                for name, value in forwardable(
                    ((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw), also_drop=drop
                )
            ]
            yield pb.ForwardResponse(head=pb.ForwardResponseHead(status_code=response.status_code, headers=response_headers))
            chunks = response.aiter_bytes() if decode else response.aiter_raw()
            async for chunk in chunks:
                for piece in _pieces(redactor.feed(chunk) if redactor.active else chunk):
                    record.response_bytes += len(piece)
                    yield pb.ForwardResponse(body_chunk=piece)
            for piece in _pieces(redactor.flush()):
                record.response_bytes += len(piece)
                yield pb.ForwardResponse(body_chunk=piece)
            await body.linger()  # an upstream that answered before reading the whole body
            yield pb.ForwardResponse(end=pb.ForwardResponseEnd())
        except httpx.HTTPError as exc:
            record.reason = "upstream_interrupted"
            raise Unavailable(
                f"the upstream {upstream.name!r} broke off its response ({type(exc).__name__})", reason="UPSTREAM_INTERRUPTED"
            ) from None
        finally:
            record.request_bytes = body.bytes
            await response.aclose()


def _pieces(data: bytes) -> list[bytes]:
    if not data:
        return []
    return [data[i : i + MAX_CHUNK] for i in range(0, len(data), MAX_CHUNK)]


def _problem(status: int, detail: str) -> list[pb.ForwardResponse]:
    """A proxy-made HTTP answer (502, 504): head, problem body, end."""
    title = {502: "Bad gateway", 504: "Gateway timeout"}[status]
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    return [
        pb.ForwardResponse(
            head=pb.ForwardResponseHead(
                status_code=status,
                headers=[
                    pb.HttpHeader(name="content-type", value="application/problem+json"),
                    pb.HttpHeader(name="content-length", value=str(len(body))),
                ],
            )
        ),
        pb.ForwardResponse(body_chunk=body),
        pb.ForwardResponse(end=pb.ForwardResponseEnd()),
    ]


def _peer_address(context: grpc.aio.ServicerContext) -> str | None:
    """The IP of the gRPC peer ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678")."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return None

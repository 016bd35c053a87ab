"""Every RPC of every service, fuzzed from its proto descriptor, as the operator, as a worker of
organisation A and as A's owner: no answer is INTERNAL, UNKNOWN or DATA_LOSS, and no call changes
a row of organisation B (which none of these callers may touch)."""

from __future__ import annotations

import functools

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from hypothesis import given, seed
from hypothesis import strategies as st

from switchboard.identity.v1 import agent_service_pb2, identity_service_pb2
from switchboard.interactions.v1 import event_service_pb2, interaction_service_pb2
from switchboard.runs.v1 import run_service_pb2
from switchboard.secretproxy.v1 import secret_proxy_service_pb2
from tests.conftest import INTERNAL_TOKEN
from tests.fuzz import corpus, findings
from tests.fuzz.budget import SEED, TALLY, fuzz_settings
from tests.fuzz.calls import invoke
from tests.fuzz.strategies import (
    DURATION_SECONDS, HTTP_METHODS, NANOS, PATHS, UPSTREAMS, Pools, field_strategy, request_strategy,
)  # fmt: skip
from tests.fuzz.world import World

SERVICES: list[tuple[str, ServiceDescriptor]] = [
    ("identity", identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"]),
    ("identity", agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"]),
    ("interactions", interaction_service_pb2.DESCRIPTOR.services_by_name["InteractionService"]),
    ("interactions", event_service_pb2.DESCRIPTOR.services_by_name["EventService"]),
    ("secretproxy", secret_proxy_service_pb2.DESCRIPTOR.services_by_name["SecretProxyService"]),
    ("runs", run_service_pb2.DESCRIPTOR.services_by_name["RunService"]),
]
PRINCIPALS = ("operator", "worker-a", "owner-a")
# Never an answer to any input: each is a crash or a lost write.
SERVER_ERRORS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
TARGETS = [(service, method, principal) for service, sd in SERVICES for method in sd.methods for principal in PRINCIPALS]


class ServerError(AssertionError):
    """An answer no input may get. One subclass per status, so that Hypothesis reports each
    distinct failure of an RPC on its own rather than the first one only."""


@functools.cache
def _error_class(code: grpc.StatusCode) -> type[ServerError]:
    return type(f"Answered{code.name.title().replace('_', '')}", (ServerError,), {})


def pools_for(principal: str, world: World, stack) -> Pools:
    """The operator gets A's rows only (an operator may act on B: that would be no violation); A's
    worker and A's owner get A's and B's (nothing they send may reach B)."""
    orgs = [world.a] if principal == "operator" else [world.a, world.b]
    return Pools(
        ids=[i for org in orgs for i in org.ids],
        streams=[s for org in orgs for s in org.streams],
        placeholders=[p for org in orgs for p in org.placeholders],
        emails=[org.email for org in orgs],
        team_ids=[org.team_id for org in orgs],
        urls=[stack.slack_url, stack.telegram_url],
        named=world.a.named,
    )


def metadata_for(principal: str, world: World) -> tuple[tuple[str, str], ...]:
    operator = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)
    if principal == "operator":
        return operator
    if principal == "owner-a":
        return (*operator, ("x-switchboard-user-id", world.a.owner_id))
    return (("authorization", f"Bearer {world.a.worker_token}"),)


def _forward_strategy(method: MethodDescriptor, pools: Pools) -> st.SearchStrategy[list[dict]]:
    """Forward's client stream: usually a head that names a real upstream, then body chunks; or any
    sequence of fuzzed messages."""
    message = method.input_type
    head_type = message.fields_by_name["head"].message_type
    headers = field_strategy(head_type.fields_by_name["headers"], pools, 1)
    head = st.fixed_dictionaries(
        {"method": st.sampled_from(HTTP_METHODS[:5]), "upstream": st.sampled_from(UPSTREAMS[:5]), "path": st.sampled_from(PATHS)},
        optional={"headers": headers, "source_address": field_strategy(head_type.fields_by_name["source_address"], pools, 1)},
    )
    chunks = st.lists(st.binary(max_size=64).map(lambda b: {"body_chunk": b}), max_size=3)
    shaped = st.tuples(head, chunks).map(lambda pair: [{"head": pair[0]}, *pair[1]])
    fuzzed = st.lists(request_strategy(message, pools), min_size=0, max_size=4)
    return st.one_of(shaped, fuzzed)


def strategy_for(method: MethodDescriptor, principal: str, pools: Pools) -> st.SearchStrategy:
    if method.client_streaming:
        if method.name == "Forward":
            return _forward_strategy(method, pools)
        return st.lists(request_strategy(method.input_type, pools), min_size=0, max_size=4)
    if method.name == "SweepStalePendingInteractions" and principal == "operator":
        # An operator sweeping with a short max_age legitimately deletes every organisation's old
        # questions, B's included: only ages B's fresh questions cannot reach, zero (which the
        # contract says means the default) and invalid ones.
        long_or_zero = [s for s in DURATION_SECONDS if s == 0 or abs(s) >= 86400]
        max_age = st.fixed_dictionaries({}, optional={"seconds": st.sampled_from(long_or_zero), "nanos": st.sampled_from([n for n in NANOS if n <= 0])})
        limit = field_strategy(method.input_type.fields_by_name["limit"], pools, 0)
        return st.fixed_dictionaries({}, optional={"max_age": max_age, "limit": limit})
    return request_strategy(method.input_type, pools)


def _check(outcome, what: str, request) -> None:
    if outcome.code in SERVER_ERRORS:
        findings.record(what, outcome.code.name, outcome.details, request)
        raise _error_class(outcome.code)(f"{what} answered {outcome.code.name}: {outcome.details[:300]!r}\nrequest: {request!r:.2000}")


@pytest.mark.parametrize(
    "service, method, principal", TARGETS, ids=[f"{m.containing_service.name}.{m.name}-as-{p}" for _, m, p in TARGETS]
)
@fuzz_settings()
@given(data=st.data())
async def test_an_rpc_never_fails_on_the_server_and_never_touches_another_organisation(
    service: str, method: MethodDescriptor, principal: str, data: st.DataObject, stack, world: World, untouched
) -> None:
    what = f"{method.containing_service.name}.{method.name} as {principal}"
    request = data.draw(strategy_for(method, principal, pools_for(principal, world, stack)), label="request")
    outcome = await invoke(stack.channels[service], method, request, metadata_for(principal, world))
    TALLY[f"rpc {method.containing_service.name}.{method.name} as {principal}"] += 1
    _check(outcome, what, request)
    try:
        await untouched.check(f"{what} ({outcome.code.name})")
    except AssertionError as exc:
        findings.record(what, "CHANGED_B", str(exc), request)
        raise


CORPUS_PRINCIPALS = ("operator", "worker-a")
CORPUS_TARGETS = [(service, method, principal) for service, method, principal in TARGETS if principal in CORPUS_PRINCIPALS]


def _corpus(method: MethodDescriptor, pools: Pools) -> list[tuple[str, object]]:
    if method.name == "Forward":  # the head carries the request; then one body chunk
        head = method.input_type.fields_by_name["head"].message_type
        return [(label, [{"head": case}, {"body_chunk": b"{}"}]) for label, case in corpus.cases(head, pools)]
    if method.client_streaming:  # each hostile message alone on the stream
        return [(label, [case]) for label, case in corpus.cases(method.input_type, pools)]
    return list(corpus.cases(method.input_type, pools))


@pytest.mark.parametrize(
    "service, method, principal", CORPUS_TARGETS, ids=[f"{m.containing_service.name}.{m.name}-as-{p}" for _, m, p in CORPUS_TARGETS]
)
async def test_every_field_survives_every_known_hostile_value(service: str, method: MethodDescriptor, principal: str, stack, world: World, untouched) -> None:
    """The fixed corpus (corpus.py): each field of a well-formed request set to each value known
    to break parsers and databases, one at a time. Every failure is collected, then reported."""
    what = f"{method.containing_service.name}.{method.name} as {principal}"
    failures = []
    for label, request in _corpus(method, pools_for(principal, world, stack)):
        outcome = await invoke(stack.channels[service], method, request, metadata_for(principal, world))
        TALLY[f"rpc {method.containing_service.name}.{method.name} as {principal} (corpus)"] += 1
        try:
            _check(outcome, f"{what} [{label}]", {k: (v if len(repr(v)) < 200 else f"{repr(v)[:60]}… ({len(repr(v))} chars)") for k, v in (request.items() if isinstance(request, dict) else enumerate(request))})
            await untouched.check(f"{what} [{label}] ({outcome.code.name})")
        except AssertionError as exc:
            findings.record(f"{what} [{label}]", "CHANGED_B" if not isinstance(exc, ServerError) else outcome.code.name, str(exc), label)
            failures.append(str(exc).splitlines()[0])
    assert not failures, f"{len(failures)} of the corpus' cases failed:\n" + "\n".join(failures)


if SEED is not None:
    test_an_rpc_never_fails_on_the_server_and_never_touches_another_organisation = seed(int(SEED))(
        test_an_rpc_never_fails_on_the_server_and_never_touches_another_organisation
    )

"""Authorization: one model, declared per RPC next to its handler, enforced once by the pipeline.

Three kinds of principal reach a service (``shared.auth`` tells them apart):

* the **operator** or an internal service: the internal token and no acting user. No tenant scope
  of its own: it may call what its policy lets operators call, in any organisation.
* an **acting user**: the internal token plus ``x-switchboard-user-id``. Exactly the rights that
  user's role in the *target* organisation gives (owner ⊇ admin ⊇ member), asked of identity
  (``Memberships``), nothing more. No role there → refused, saying nothing of whether the
  organisation exists.
* a **worker**: a worker token bound to an organisation, an agent and optionally a connection. It
  acts in its own organisation, on its own agent's resources, through its own connection.

Every servicer method carries a ``Policy`` (the ``@policy(...)`` decorator). The request pipeline
reads it when it wraps the method, refuses methods without one, and before the handler runs:
resolves the target organisation (a request field, or the organisation of the resource a request
field names), checks the principal against the policy, and binds an ``Access`` for the handler.
Handlers put ``Access``'s scope into their SQL (``organization_id = $n``, ``agent_id = $n``): the
check here decides who may call, the predicate decides what the call can touch.
"""

from __future__ import annotations

import contextvars
import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from switchboard.shared.auth import InternalCaller, Principal, WorkerPrincipal
from switchboard.shared.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from switchboard.shared.headers import ACTING_USER_HEADER

POLICY_ATTRIBUTE = "__switchboard_policy__"


class Role(enum.IntEnum):
    """Roles in an organisation, ordered: a higher role has every right of the lower ones."""

    MEMBER = 1
    ADMIN = 2
    OWNER = 3

    @classmethod
    def parse(cls, name: str | None) -> Role | None:
        return _ROLE_NAMES.get(name or "")


_ROLE_NAMES = {"member": Role.MEMBER, "admin": Role.ADMIN, "owner": Role.OWNER}

# A user acting for themselves, with no organisation in question (creating an organisation).
SIGNED_IN: Literal["signed_in"] = "signed_in"

WorkerReach = Literal["organization", "agent"]
"""What a worker may touch: anything of its organisation, or only its own agent's resources."""


@dataclass(frozen=True)
class Target:
    """Where a call's target organisation comes from.

    ``field`` names a request field. Without ``locate`` it holds the organisation's id; with
    ``locate`` it holds a resource's id, and ``locate`` names a coroutine method of the servicer
    that returns that resource's organisation (or None when there is no such resource). Refusals
    on a resource are NOT_FOUND, as for a resource that does not exist.
    """

    field: str = "organization_id"
    locate: str | None = None
    noun: str = "organization"
    required: bool = True

    @property
    def names_resource(self) -> bool:
        return self.locate is not None


@dataclass(frozen=True)
class Policy:
    """Who may call one RPC, and which request fields must match the caller's scope.

    operator   the internal token without an acting user may call it.
    user       the least role an acting user needs in the target organisation; ``SIGNED_IN`` for
               any acting user without a target; None: acting users are refused.
    worker     None: workers are refused; "organization": workers of the target organisation;
               "agent": also only on their own agent's resources (``agent`` must equal the
               token's agent when given, and the handler adds the agent to its SQL).
    target     where the target organisation comes from; None for calls without one.
    agent      a request field naming an agent, which a worker's token must match (empty = its own).
    connection a request field naming a connection, which a connection-bound token must match.
    stream     a request field naming an event stream, which a worker may only name inside its
               agent's namespace (``agents/<agent_id>`` and below).
    """

    operator: bool = True
    user: Role | Literal["signed_in"] | None = None
    worker: WorkerReach | None = None
    target: Target | None = None
    agent: str | None = None
    connection: str | None = None
    stream: str | None = None

    def describe(self) -> str:
        """One line for the README's matrix and the refusals' messages."""
        parts = []
        if self.operator:
            parts.append("operator")
        if self.user == SIGNED_IN:
            parts.append("any signed-in user")
        elif self.user is not None:
            parts.append(f"{self.user.name.lower()}+")
        if self.worker == "organization":
            parts.append("worker of the organisation")
        elif self.worker == "agent":
            parts.append("worker of the agent")
        return ", ".join(parts) or "nobody"


def policy(
    *,
    operator: bool = True,
    user: Role | Literal["signed_in"] | None = None,
    worker: WorkerReach | None = None,
    target: Target | str | None = None,
    agent: str | None = None,
    connection: str | None = None,
    stream: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the policy of a servicer method (``target`` may be given as a field name)."""
    declared = Policy(
        operator=operator,
        user=user,
        worker=worker,
        target=Target(target) if isinstance(target, str) else target,
        agent=agent,
        connection=connection,
        stream=stream,
    )
    if declared.user not in (None, SIGNED_IN) and declared.target is None:
        raise ValueError("a role can only be checked in a target organisation: give target=")

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        setattr(method, POLICY_ATTRIBUTE, declared)
        return method

    return mark


def policy_of(behavior: Callable[..., Any]) -> Policy | None:
    """The policy declared on a servicer method (bound or not), or None."""
    return getattr(behavior, POLICY_ATTRIBUTE, None)


@dataclass(frozen=True)
class Access:
    """What the pipeline established about a call, for its handler.

    ``organization_id`` is the checked target organisation of an acting user, or a worker's own
    organisation; None for operators, who have no tenant scope (handlers read None as "any"). ``agent_id`` and ``connection_id`` are set
    for workers only: handlers add them to their SQL so that a worker touches nothing else.
    """

    principal: Principal
    kind: Literal["operator", "user", "worker"]
    organization_id: str | None = None
    role: Role | None = None
    user_id: str | None = None
    agent_id: str | None = None
    connection_id: str | None = None
    # For long-lived calls (streams): checks again that the caller still may (a token not revoked
    # nor expired, a user still holding the role); raises as the first check would. None: no check.
    recheck: Callable[[], Awaitable[None]] | None = field(default=None, repr=False, compare=False)

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"


_access: contextvars.ContextVar[Access | None] = contextvars.ContextVar("switchboard_access", default=None)


def current_access() -> Access:
    """The authorization of the call being handled. Raises Unauthenticated outside one."""
    found = _access.get()
    if found is None:
        raise Unauthenticated("no authorized call")
    return found


def set_current_access(access: Access | None) -> contextvars.Token:
    """Bind the call's access for the current task (the pipeline does this; tests may too)."""
    return _access.set(access)


class Memberships(Protocol):
    """Where a user's role in an organisation comes from (identity)."""

    async def role_of(self, organization_id: str, user_id: str) -> Role | None:
        """The user's role, or None when the user is not a member (or does not exist). Raises
        Unavailable when the answer cannot be had (fail closed)."""
        ...


Locate = Callable[[str], Awaitable[str | None]]


async def authorize(policy: Policy, principal: Principal, request: Any, servicer: Any, memberships: Memberships) -> Access:
    """Check ``principal`` against ``policy`` for ``request``; the Access for the handler, or a
    DomainError (INVALID_ARGUMENT for a malformed scope field, PERMISSION_DENIED or NOT_FOUND)."""
    if isinstance(principal, WorkerPrincipal):
        return await _authorize_worker(policy, principal, request, servicer)
    assert isinstance(principal, InternalCaller)
    if principal.acting_user_id is None:
        if not policy.operator:
            if policy.user is None:
                raise PermissionDenied("this call is for workers (a worker token)", reason="WORKERS_ONLY")
            raise Unauthenticated(f"this call needs an acting user ({ACTING_USER_HEADER} metadata)", reason="NO_ACTING_USER")
        # An operator has no tenant scope: nothing to resolve (the handler validates the fields).
        return Access(principal, "operator")
    return await _authorize_user(policy, principal, principal.acting_user_id, request, servicer, memberships)


async def _authorize_user(
    policy: Policy, principal: InternalCaller, user_id: str, request: Any, servicer: Any, memberships: Memberships
) -> Access:
    if policy.user is None:
        raise PermissionDenied("users cannot make this call; it is for internal services", reason="USERS_NOT_ALLOWED")
    if policy.user == SIGNED_IN and policy.target is None:
        return Access(principal, "user", user_id=user_id)
    assert policy.target is not None
    organization_id = await _target(policy, request, servicer)
    if organization_id is None:  # an optional target left empty
        return Access(principal, "user", user_id=user_id)
    role = await memberships.role_of(organization_id, user_id)
    needed = Role.MEMBER if policy.user == SIGNED_IN else policy.user
    if role is None or role < needed:
        _refuse(policy.target, request, f"the acting user may not do this in organization {organization_id}", "NOT_PERMITTED")
    return Access(principal, "user", organization_id=organization_id, role=role, user_id=user_id)


async def _authorize_worker(policy: Policy, worker: WorkerPrincipal, request: Any, servicer: Any) -> Access:
    if policy.worker is None:
        raise PermissionDenied("workers cannot make this call", reason="WORKERS_NOT_ALLOWED")
    organization_id = worker.organization_id
    # A resource named by id needs no lookup here: the handler's SQL is scoped to the worker's
    # organisation (and agent), so another organisation's resource is simply not found.
    if policy.target is not None and not policy.target.names_resource:
        target = await _target(policy, request, servicer)
        if target is not None and (organization_id is None or target != organization_id):
            _refuse(policy.target, request, "a worker acts in its own organisation only", "OTHER_ORGANIZATION")
    agent_id = worker.agent_id if policy.worker == "agent" else None
    if policy.agent is not None:
        named = _field(request, policy.agent)
        if named and _uuid_field(policy.agent, named) != worker.agent_id:
            raise PermissionDenied(f"a worker acts for its own agent {worker.agent_id} only", reason="OTHER_AGENT")
    if policy.connection is not None and worker.connection_id is not None:
        named = _field(request, policy.connection)
        if named and _uuid_field(policy.connection, named) != worker.connection_id:
            raise PermissionDenied("this worker token is bound to another connection", reason="OTHER_CONNECTION")
    if policy.stream is not None:
        stream = _field(request, policy.stream)
        own = f"agents/{worker.agent_id}"
        if stream != own and not stream.startswith(own + "/"):
            raise PermissionDenied(f"a worker of agent {worker.agent_id} may use {own} and its sub-streams only", reason="OTHER_AGENT")
    return Access(
        worker, "worker", organization_id=organization_id, agent_id=agent_id, connection_id=worker.connection_id
    )


async def _target(policy: Policy, request: Any, servicer: Any) -> str | None:
    """The target organisation's id: from the request, or from the resource the request names."""
    target = policy.target
    assert target is not None
    raw = _field(request, target.field)
    if not raw and not target.required:
        return None
    value = _uuid_field(target.field, raw)
    if target.locate is None:
        return value
    locate: Locate = getattr(servicer, target.locate)
    organization_id = await locate(value)
    if organization_id is None:
        raise _not_found(target, value)
    return str(organization_id)


def _refuse(target: Target, request: Any, message: str, reason: str) -> None:
    """A refusal that does not reveal existence: a named resource is "not found", as if it were not
    there; an organisation named outright gets the same PERMISSION_DENIED whether it exists or not."""
    if target.names_resource:
        raise _not_found(target, _field(request, target.field))
    raise PermissionDenied(message, reason=reason)


def _not_found(target: Target, value: str) -> NotFound:
    """The answer for a resource that is not there, or not the caller's: the same words."""
    return NotFound(f"{target.noun} {value} does not exist", reason=f"{target.noun.upper().replace(' ', '_')}_NOT_FOUND")


def _field(request: Any, name: str) -> str:
    value = getattr(request, name)
    return value if isinstance(value, str) else ""


def _uuid_field(name: str, raw: str) -> str:
    canonical = _canonical(raw)
    if canonical is None:
        raise InvalidArgument(FieldViolation(name, "must be a UUID"))
    return canonical


def _canonical(raw: str) -> str | None:
    if not raw or len(raw) > 64:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None

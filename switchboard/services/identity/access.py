"""Who may do what in an organisation. Decisions read roles, never ``is_bot``.

Principals (shared.auth):
- an internal caller that names no acting user is an operator or a trusted service: it may act on
  any organisation;
- an internal caller acting for a user has exactly that user's rights: its role in the
  organisation, if it is a member;
- a worker may read its own organisation and never manage members.
"""

from __future__ import annotations

from typing import Literal

from switchboard.services.identity import store
from switchboard.shared.auth import Principal, WorkerPrincipal
from switchboard.shared.authz import Role
from switchboard.shared.errors import PermissionDenied

Standing = Literal["operator", "owner", "admin", "member", "worker", "none"]
MANAGERS = frozenset({"operator", "owner", "admin"})


async def standing(conn: store.Connection, principal: Principal, organization_id: str) -> Standing:
    """The principal's standing in the organisation."""
    if isinstance(principal, WorkerPrincipal):
        return "worker" if principal.organization_id == organization_id else "none"
    if principal.acting_user_id is None:
        return "operator"
    role = await store.membership_role(conn, organization_id, principal.acting_user_id)
    return role or "none"


async def require_manager(conn: store.Connection, principal: Principal, organization_id: str) -> Standing:
    """Owners, admins and operators; PERMISSION_DENIED for everyone else."""
    found = await standing(conn, principal, organization_id)
    if found not in MANAGERS:
        raise PermissionDenied(
            f"only owners and admins of organization {organization_id} may do this", reason="NOT_A_MANAGER"
        )
    return found


async def require_member(conn: store.Connection, principal: Principal, organization_id: str) -> Standing:
    """Any member, the organisation's own workers, and operators; PERMISSION_DENIED otherwise."""
    found = await standing(conn, principal, organization_id)
    if found == "none":
        raise PermissionDenied(f"the caller is not a member of organization {organization_id}", reason="NOT_A_MEMBER")
    return found


class LocalMemberships:
    """Acting users' roles for identity's own pipeline: read from its own tables, uncached (the
    source of truth needs no cache, and membership changes count at once)."""

    def __init__(self, pool: store.Connection):
        self._pool = pool

    async def role_of(self, organization_id: str, user_id: str) -> Role | None:
        return Role.parse(await store.membership_role(self._pool, organization_id, user_id))

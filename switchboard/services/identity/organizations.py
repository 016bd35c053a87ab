"""Organisations and memberships: sign-up, creation, and member management with its invariants
(at least one owner, settled under a row lock on the organisation)."""

from __future__ import annotations

import uuid

import asyncpg

from switchboard.services.identity import access, store
from switchboard.services.identity.slugs import next_free_slug, slug_base
from switchboard.shared.auth import Principal
from switchboard.shared.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied

_SLUG_ATTEMPTS = 20


async def insert_organization_with_free_slug(
    conn: asyncpg.Connection, name: str, visibility: str, personal_owner_id: str | None
) -> store.Record:
    """Insert an organisation under the first free slug derived from its name. Another creator may
    take the same slug between our look and our insert: the unique constraint refuses, and we
    retry with the next one inside a savepoint."""
    base = slug_base(name)
    for _ in range(_SLUG_ATTEMPTS):
        slug = next_free_slug(base, await store.organization_slugs_like(conn, base))
        try:
            async with conn.transaction():  # a savepoint: the failed insert alone is undone
                return await store.organization_insert(conn, str(uuid.uuid4()), name, slug, visibility, personal_owner_id)
        except AlreadyExists:
            continue
    raise AlreadyExists(f"no free slug derived from {base!r}; choose one explicitly", reason="SLUG_TAKEN")


async def sign_up(pool: asyncpg.Pool, email: str, display_name: str) -> tuple[store.Record, store.Record, bool]:
    """The user with this email and their personal organisation, created if needed.

    Idempotent and race-safe: the user row is inserted with ON CONFLICT DO NOTHING, which waits for
    a concurrent insert of the same email to finish; whoever inserts the user creates the
    organisation in the same transaction, so the others find both once it commits.
    """
    async with pool.acquire() as conn:
        async with conn.transaction():
            user = await store.user_insert_if_absent(conn, str(uuid.uuid4()), email, display_name)
            if user is not None:
                organization = await insert_organization_with_free_slug(conn, display_name, "private", str(user["id"]))
                await store.membership_insert(conn, str(organization["id"]), str(user["id"]), "owner")
                return user, organization, True
        user = await store.user_get_by_email(conn, email)
        assert user is not None  # the conflicting insert committed: it is there
        organization = await store.organization_get_personal(conn, str(user["id"]))
        if organization is None:
            # A user that exists without a personal organisation (e.g. a bot mirrored from the
            # identity provider) cannot sign up under that address.
            raise AlreadyExists(f"{email} belongs to an account that cannot sign up", reason="EMAIL_TAKEN")
        return user, organization, False


async def create_organization(
    pool: asyncpg.Pool, owner_id: str, name: str, slug: str | None, visibility: str
) -> store.Record:
    """A new organisation owned by ``owner_id``. Raises NotFound for an unknown user and
    AlreadyExists for a taken explicit slug."""
    async with pool.acquire() as conn, conn.transaction():
        if not await store.user_exists(conn, owner_id):
            raise NotFound(f"the acting user {owner_id} does not exist", reason="USER_NOT_FOUND")
        if slug:
            organization = await store.organization_insert(conn, str(uuid.uuid4()), name, slug, visibility, None)
        else:
            organization = await insert_organization_with_free_slug(conn, name, visibility, None)
        await store.membership_insert(conn, str(organization["id"]), owner_id, "owner")
        return organization


async def lock_for_membership_change(conn: asyncpg.Connection, principal: Principal, organization_id: str) -> str:
    """Authorise a membership change and lock the organisation's row for the transaction; the
    actor's standing. Every change to an organisation's owners takes this lock, so two concurrent
    demotions cannot both see "another owner remains". The caller is authorised before the lock (a
    stranger never holds another organisation's row) and again under it (the decisive check)."""
    if await store.organization_get(conn, organization_id) is None:
        raise NotFound(f"organization {organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND")
    await access.require_manager(conn, principal, organization_id)
    await store.organization_lock(conn, organization_id)
    return await access.require_manager(conn, principal, organization_id)


def check_owner_change(actor: str, current_role: str | None, new_role: str | None) -> None:
    """Only owners (and operators) grant, change or take away the owner role."""
    touches_owner = current_role == "owner" or new_role == "owner"
    if touches_owner and actor not in ("owner", "operator"):
        raise PermissionDenied("only owners may grant or take away the owner role", reason="OWNER_ONLY")


async def ensure_another_owner(conn: asyncpg.Connection, organization_id: str, user_id: str) -> None:
    if await store.membership_count_owners(conn, organization_id) <= 1:
        raise FailedPrecondition(
            f"user {user_id} is the last owner of organization {organization_id}; make someone else owner first",
            reason="LAST_OWNER",
        )


async def add_member(conn: asyncpg.Connection, actor: str, organization_id: str, user_id: str, role: str) -> store.Record:
    check_owner_change(actor, None, role)
    if not await store.user_exists(conn, user_id):
        raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
    return await store.membership_insert(conn, organization_id, user_id, role)


async def remove_member(conn: asyncpg.Connection, actor: str, organization_id: str, user_id: str) -> store.Record:
    membership = await _membership(conn, organization_id, user_id)
    check_owner_change(actor, membership["role"], None)
    if membership["role"] == "owner":
        await ensure_another_owner(conn, organization_id, user_id)
    removed = await store.membership_delete(conn, organization_id, user_id)
    assert removed is not None  # the organisation row lock keeps it from vanishing meanwhile
    return removed


async def change_role(conn: asyncpg.Connection, actor: str, organization_id: str, user_id: str, role: str) -> store.Record:
    membership = await _membership(conn, organization_id, user_id)
    if membership["role"] == role:
        return membership  # nothing to change
    check_owner_change(actor, membership["role"], role)
    if membership["role"] == "owner" and role != "owner":
        await ensure_another_owner(conn, organization_id, user_id)
    changed = await store.membership_set_role(conn, organization_id, user_id, role)
    assert changed is not None
    return changed


async def _membership(conn: asyncpg.Connection, organization_id: str, user_id: str) -> store.Record:
    membership = await store.membership_get(conn, organization_id, user_id)
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of organization {organization_id}", reason="NOT_A_MEMBER")
    return membership

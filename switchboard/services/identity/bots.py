"""Support bots: provisioned lazily, one per organisation, whatever the concurrency.

A bot is an ordinary user plus a ``member`` membership with ``is_bot = true``. The partial unique
index ``memberships_one_bot_per_organization`` is the only guard against a second bot; the lookup
in front of it is a fast path. The bot user and its membership are written in one transaction, so
a caller that loses the race rolls back its user row: no orphan. With GoTrue as identity provider
the user is created there first, and deleted again when the race is lost or anything fails.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from switchboard.services.identity import store
from switchboard.services.identity.gotrue import GoTrueAdmin
from switchboard.shared.errors import FailedPrecondition, NotFound
from switchboard.shared.logs import get_logger

log = get_logger(__name__)
BOT_DISPLAY_NAME = "Support Bot"


@dataclass(frozen=True)
class BotUser:
    id: str
    email: str
    display_name: str = BOT_DISPLAY_NAME


class BotUsers(Protocol):
    """Where bot users are created: the identity schema alone, or an identity provider too."""

    async def create(self, organization_id: str) -> BotUser: ...

    async def discard(self, user: BotUser) -> None:
        """Undo ``create`` outside the database (the database row is rolled back with its transaction)."""


def bot_email(domain: str) -> str:
    return f"support-bot-{secrets.token_hex(16)}@{domain}"


class LocalBotUsers:
    """Users live only in the identity schema."""

    def __init__(self, email_domain: str):
        self._domain = email_domain

    async def create(self, organization_id: str) -> BotUser:
        return BotUser(id=str(uuid.uuid4()), email=bot_email(self._domain))

    async def discard(self, user: BotUser) -> None:
        return None


class GoTrueBotUsers:
    """Users are created through GoTrue's admin API, then mirrored into the identity schema."""

    def __init__(self, admin: GoTrueAdmin | None, email_domain: str, missing: list[str]):
        self._admin = admin
        self._domain = email_domain
        self._missing = missing

    async def create(self, organization_id: str) -> BotUser:
        if self._admin is None:
            # Fails at call time, naming what is missing and nothing of the key.
            raise FailedPrecondition(
                "SWITCHBOARD_IDP=gotrue needs " + " and ".join(self._missing) + " to provision support bots",
                reason="IDP_NOT_CONFIGURED",
            )
        email = bot_email(self._domain)
        user_id = await self._admin.create_user(
            email=email,
            app_metadata={"is_support_bot": True, "organization_id": organization_id},
            user_metadata={"display_name": BOT_DISPLAY_NAME},
        )
        return BotUser(id=user_id, email=email)

    async def discard(self, user: BotUser) -> None:
        assert self._admin is not None
        if await self._admin.delete_user(user.id):
            log.info("gotrue_orphan_deleted", user_id=user.id)


class _LostRace(Exception):
    pass


async def provision_support_bot(pool: asyncpg.Pool, users: BotUsers, organization_id: str) -> tuple[str, bool]:
    """The organisation's bot user id, and whether this call created it. Raises NotFound for an
    unknown organisation, Unavailable/FailedPrecondition when the identity provider fails."""
    existing = await store.bot_get(pool, organization_id)
    if existing is not None:
        return existing, False
    if await store.organization_get(pool, organization_id) is None:
        raise NotFound(f"organization {organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND")
    user = await users.create(organization_id)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await store.user_insert(conn, user.id, user.email, user.display_name)
            if not await store.bot_membership_insert_if_absent(conn, organization_id, user.id):
                raise _LostRace  # rolls back the user row written above
    except _LostRace:
        await asyncio.shield(users.discard(user))
        winner = await store.bot_get(pool, organization_id)
        if winner is None:  # the winner's organisation was deleted in between
            raise NotFound(f"organization {organization_id} does not exist", reason="ORGANIZATION_NOT_FOUND") from None
        log.info("support_bot_race_lost", organization_id=organization_id, winner=winner)
        return winner, False
    except BaseException:
        await asyncio.shield(users.discard(user))
        raise
    log.info("support_bot_provisioned", organization_id=organization_id, bot_user_id=user.id)
    return user.id, True

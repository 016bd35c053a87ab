"""Chat connections: registration, credentials sealed at rest (and opened only here), webhook
verification, and the choice of platform client for a connection."""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Sequence

import asyncpg
import httpx

from switchboard.services.interactions import store
from switchboard.services.interactions.platforms import (
    SLACK_API,
    TELEGRAM_API,
    SlackCardEditor,
    SlackClient,
    TelegramCardEditor,
    TelegramClient,
)
from switchboard.services.interactions.slack_signing import slack_signature_ok
from switchboard.shared.crypto import KeyRing
from switchboard.shared.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied, Unauthenticated

DEFAULT_API = {"slack": SLACK_API, "telegram": TELEGRAM_API}
# Each platform's second credential (beside the bot token): Slack signs requests, Telegram echoes
# a secret token.
SECRET_FIELD = {"slack": "signing_secret", "telegram": "secret_token"}


def credentials_aad(organization_id: str, platform: str, external_id: str) -> bytes:
    # Binds sealed credentials to their connection's identity, which an upsert never changes.
    return f"{organization_id}:{platform}:{external_id}".encode()


class Connections:
    """The organisations' chat connections and their sealed credentials."""

    def __init__(self, pool: asyncpg.Pool, keys: KeyRing | None, http: httpx.AsyncClient):
        self._pool = pool
        self._keys = keys
        self._http = http

    async def organization_of(self, connection_id: str) -> str | None:
        return await store.connection_organization(self._pool, connection_id)

    def _keyring(self) -> KeyRing:
        if self._keys is None:
            raise FailedPrecondition("SWITCHBOARD_CREDENTIALS_KEYS is not configured: credentials cannot be sealed or opened", reason="NO_CREDENTIALS_KEY")
        return self._keys

    def credentials(self, row: store.Record) -> dict[str, str]:
        """The opened credentials of a connection row (one read with its key_id and credentials)."""
        return json.loads(
            self._keyring().open(row["key_id"], row["credentials"], credentials_aad(str(row["organization_id"]), row["platform"], row["external_id"]))
        )

    async def register(
        self, organization_id: str, platform: str, external_id: str, bot_token: str, secret: str, api_base_url: str, *, operator: bool
    ) -> tuple[store.Record, bool]:
        """Create the organisation's connection or replace its credentials: (row, created).

        Raises PermissionDenied when a non-operator names an API other than the platform's,
        FailedPrecondition without a credentials key, AlreadyExists when another organisation
        holds that external id."""
        if api_base_url and api_base_url != DEFAULT_API[platform] and not operator:
            # The service sends the bot token there and echoes what it answers: for a tenant, that
            # would reach internal addresses from inside the cluster. Operators point tests and
            # self-hosted gateways elsewhere.
            raise PermissionDenied(
                f"only operators may set api_base_url; {platform} connections of users use {DEFAULT_API[platform]}",
                reason="API_BASE_URL_OPERATOR_ONLY",
            )
        sealed_with, sealed = self._keyring().seal(
            json.dumps({"bot_token": bot_token, SECRET_FIELD[platform]: secret}).encode(),
            credentials_aad(organization_id, platform, external_id),
        )
        row, created = await store.connection_upsert(
            self._pool, str(uuid.uuid4()), organization_id, platform, external_id,
            api_base_url or DEFAULT_API[platform], sealed_with, sealed,
        )  # fmt: skip
        if row is None:
            raise AlreadyExists(f"another organisation has a {platform} connection for that external id", reason="EXTERNAL_ID_TAKEN")
        return row, created

    async def readable(self, connection_id: str, organization_id: str | None, bound_connection_id: str | None) -> store.Record:
        """The connection within a caller's scope (its organisation; a bound worker's own
        connection); raises NotFound otherwise."""
        row = await store.connection_get(self._pool, connection_id, organization_id, bound_connection_id)
        if row is None:
            raise NotFound(f"connection {connection_id} does not exist", reason="CONNECTION_NOT_FOUND")
        return row

    async def list(
        self, organization_id: str, platform: str | None, after: Sequence[object] | None, limit: int, bound_connection_id: str | None
    ) -> list[store.Record]:
        """A page of the organisation's connections (only its own for a bound worker), oldest first."""
        return await store.connection_list(self._pool, organization_id, platform, after, limit, bound_connection_id)

    async def delete(self, connection_id: str, organization_id: str) -> int:
        """Delete a connection and its pending questions: how many questions went with it."""
        async with self._pool.acquire() as conn, conn.transaction():
            deleted = await store.connection_delete(conn, connection_id, organization_id)
        if deleted is None:
            raise NotFound(f"connection {connection_id} does not exist", reason="CONNECTION_NOT_FOUND")
        return deleted

    async def verify_slack(self, team_id: str, timestamp: str, signature: str, body: bytes, *, now: float) -> store.Record:
        """The Slack connection of the team whose signing secret signed this request; raises
        NotFound or Unauthenticated."""
        row = await store.connection_by_external_id(self._pool, "slack", team_id)
        if row is None:
            raise NotFound("no Slack connection for that team", reason="CONNECTION_NOT_FOUND")
        if not slack_signature_ok(self.credentials(row)["signing_secret"], timestamp, signature, body, now=now):
            raise Unauthenticated("the Slack signature or timestamp is not valid", reason="BAD_SIGNATURE")
        return row

    async def verify_telegram(self, connection_id: str, secret_token: str) -> store.Record:
        """The Telegram connection whose secret token this is; raises NotFound or Unauthenticated."""
        row = await store.connection_credentials(self._pool, connection_id)
        if row is None or row["platform"] != "telegram":
            raise NotFound(f"no Telegram connection {connection_id}", reason="CONNECTION_NOT_FOUND")
        expected = self.credentials(row)["secret_token"].encode()
        if not hmac.compare_digest(expected, secret_token.encode()):
            raise Unauthenticated("the Telegram secret token does not match", reason="BAD_SECRET_TOKEN")
        return row

    def client(self, row: store.Record) -> SlackClient | TelegramClient:
        """The platform client that posts cards through a connection (a row with credentials)."""
        client_type = SlackClient if row["platform"] == "slack" else TelegramClient
        return client_type(self._http, row["api_base_url"], self.credentials(row)["bot_token"])

    def card_editor(self, row: store.Record) -> SlackCardEditor | TelegramCardEditor:
        """The platform editor that shows an answer on a card (a row with credentials)."""
        editor_type = SlackCardEditor if row["platform"] == "slack" else TelegramCardEditor
        return editor_type(self._http, row["api_base_url"], self.credentials(row)["bot_token"])

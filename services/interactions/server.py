"""The InteractionService servicer: chat connections and pending questions. Thin: parse,
authorise, call the store and the platform clients, encode."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import datetime

import asyncpg
import grpc
import httpx

from services.interactions import store
from services.interactions.cards import CardEdits
from services.interactions.platforms import (
    SLACK_API,
    TELEGRAM_API,
    MessageRef,
    Option,
    SlackCardEditor,
    SlackClient,
    TelegramCardEditor,
    TelegramClient,
    options_json,
)
from shared.authz import Role, Target, current_access, policy
from shared.crypto import KeyRing
from shared.messages import timestamp
from shared.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from shared.pagination import decode_page_token, page_of
from shared.validation import Violations, ascii_int
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc

Context = grpc.aio.ServicerContext
PLATFORMS = {pb.PLATFORM_SLACK: "slack", pb.PLATFORM_TELEGRAM: "telegram"}
PLATFORM_TO_PROTO = {name: value for value, name in PLATFORMS.items()}
DEFAULT_API = {"slack": SLACK_API, "telegram": TELEGRAM_API}
OPTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}\Z")
MAX_OPTIONS = 25
MAX_TEXT = 3000


def connection_message(row: store.Record) -> pb.Connection:
    return pb.Connection(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        platform=PLATFORM_TO_PROTO[row["platform"]],
        external_id=row["external_id"],
        api_base_url=row["api_base_url"],
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
    )


def credentials_aad(organization_id: str, platform: str, external_id: str) -> bytes:
    # Binds sealed credentials to their connection's identity, which an upsert never changes.
    return f"{organization_id}:{platform}:{external_id}".encode()


# Calls on one connection are authorised in the connection's organisation (NOT_FOUND otherwise).
CONNECTION = Target("connection_id", locate="organization_of_connection", noun="connection")
# Questions: the edge (operator) and the asking agent's own workers, through their connection.
QUESTION_POLICY = policy(worker="agent", target="organization_id", connection="connection_id")


class InteractionService(interaction_service_pb2_grpc.InteractionServiceServicer):
    """switchboard.interactions.v1.InteractionService."""

    def __init__(self, pool: asyncpg.Pool, keys: KeyRing | None, http: httpx.AsyncClient, card_edits: CardEdits):
        self._pool = pool
        self._keys = keys
        self._http = http
        self._card_edits = card_edits

    async def organization_of_connection(self, connection_id: str) -> str | None:
        return await store.connection_organization(self._pool, connection_id)

    def _keyring(self) -> KeyRing:
        if self._keys is None:
            raise FailedPrecondition("SWITCHBOARD_CREDENTIALS_KEYS is not configured: credentials cannot be sealed or opened", reason="NO_CREDENTIALS_KEY")
        return self._keys

    # -- connections ---------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def RegisterConnection(self, request: pb.RegisterConnectionRequest, context: Context) -> pb.RegisterConnectionResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        platform = PLATFORMS.get(request.platform)
        if platform is None:
            v.add("platform", "must be PLATFORM_SLACK or PLATFORM_TELEGRAM")
        external_id = v.text("external_id", request.external_id, max_length=100)
        bot_token = v.text("bot_token", request.bot_token, max_length=512)
        needed, refused = ("signing_secret", "secret_token") if platform == "slack" else ("secret_token", "signing_secret")
        secret = v.text(needed, getattr(request, needed), max_length=512) if platform else ""
        if platform and getattr(request, refused):
            v.add(refused, f"is not a credential of {platform}")
        api_base_url = v.url("api_base_url", request.api_base_url)
        if "?" in api_base_url or "#" in api_base_url:
            v.add("api_base_url", "must not carry a query or a fragment")
        v.check()
        assert platform is not None
        if api_base_url and api_base_url != DEFAULT_API[platform] and not current_access().is_operator:
            # The service sends the bot token there and echoes what it answers: for a tenant, that
            # would reach internal addresses from inside the cluster. Operators point tests and
            # self-hosted gateways elsewhere.
            raise PermissionDenied(
                f"only operators may set api_base_url; {platform} connections of users use {DEFAULT_API[platform]}",
                reason="API_BASE_URL_OPERATOR_ONLY",
            )
        sealed_with, sealed = self._keyring().seal(
            json.dumps({"bot_token": bot_token, needed: secret}).encode(), credentials_aad(organization_id, platform, external_id)
        )
        row, created = await store.connection_upsert(
            self._pool, str(uuid.uuid4()), organization_id, platform, external_id,
            api_base_url or DEFAULT_API[platform], sealed_with, sealed,
        )  # fmt: skip
        if row is None:
            raise AlreadyExists(f"another organisation has a {platform} connection for that external id", reason="EXTERNAL_ID_TAKEN")
        return pb.RegisterConnectionResponse(connection=connection_message(row), created=created)

    async def _readable_connection(self, connection_id: str) -> store.Record:
        """The connection within the caller's scope (organisation; a bound worker's connection)."""
        access = current_access()
        row = await store.connection_get(self._pool, connection_id, access.organization_id, access.connection_id)
        if row is None:
            raise NotFound(f"connection {connection_id} does not exist", reason="CONNECTION_NOT_FOUND")
        return row

    @policy(user=Role.MEMBER, worker="organization", target=CONNECTION)
    async def GetConnection(self, request: pb.GetConnectionRequest, context: Context) -> pb.GetConnectionResponse:
        v = Violations()
        connection_id = v.uuid("connection_id", request.connection_id)
        v.check()
        return pb.GetConnectionResponse(connection=connection_message(await self._readable_connection(connection_id)))

    @policy(user=Role.MEMBER, worker="organization", target="organization_id")
    async def ListConnections(self, request: pb.ListConnectionsRequest, context: Context) -> pb.ListConnectionsResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        page_size = v.page_size("page_size", request.page_size)
        v.check()
        after = decode_page_token(request, (datetime, uuid.UUID))
        rows = await store.connection_list(
            self._pool, organization_id, PLATFORMS.get(request.platform), after, page_size + 1, current_access().connection_id
        )
        rows, token = page_of(rows, page_size, lambda r: (r["created_at"], str(r["id"])), request)
        return pb.ListConnectionsResponse(connections=[connection_message(r) for r in rows], next_page_token=token)

    @policy(user=Role.ADMIN, target=CONNECTION)
    async def DeleteConnection(self, request: pb.DeleteConnectionRequest, context: Context) -> pb.DeleteConnectionResponse:
        v = Violations()
        connection_id = v.uuid("connection_id", request.connection_id)
        v.check()
        row = await self._readable_connection(connection_id)
        async with self._pool.acquire() as conn, conn.transaction():
            deleted = await store.connection_delete(conn, connection_id, str(row["organization_id"]))
        if deleted is None:
            raise NotFound(f"connection {connection_id} does not exist", reason="CONNECTION_NOT_FOUND")
        return pb.DeleteConnectionResponse(deleted_pending_questions=deleted)

    def _credentials(self, row: store.Record) -> dict[str, str]:
        return json.loads(
            self._keyring().open(row["key_id"], row["credentials"], credentials_aad(str(row["organization_id"]), row["platform"], row["external_id"]))
        )

    # -- webhook verification (the edge asks; the secrets never leave this service) ------------

    @policy()
    async def VerifySlackSignature(self, request: pb.VerifySlackSignatureRequest, context: Context) -> pb.VerifySlackSignatureResponse:
        v = Violations()
        team_id = v.text("team_id", request.team_id, max_length=100)
        v.check()
        row = await store.connection_by_external_id(self._pool, "slack", team_id)
        if row is None:
            raise NotFound("no Slack connection for that team", reason="CONNECTION_NOT_FOUND")
        secret = self._credentials(row)["signing_secret"]
        if not slack_signature_ok(secret, request.timestamp, request.signature, bytes(request.body), now=time.time()):
            raise Unauthenticated("the Slack signature or timestamp is not valid", reason="BAD_SIGNATURE")
        return pb.VerifySlackSignatureResponse(connection=connection_message(row))

    @policy()
    async def VerifyTelegramSecretToken(
        self, request: pb.VerifyTelegramSecretTokenRequest, context: Context
    ) -> pb.VerifyTelegramSecretTokenResponse:
        v = Violations()
        connection_id = v.uuid("connection_id", request.connection_id)
        v.check()
        row = await store.connection_credentials(self._pool, connection_id)
        if row is None or row["platform"] != "telegram":
            raise NotFound(f"no Telegram connection {connection_id}", reason="CONNECTION_NOT_FOUND")
        expected = self._credentials(row)["secret_token"].encode()
        if not hmac.compare_digest(expected, request.secret_token.encode()):
            raise Unauthenticated("the Telegram secret token does not match", reason="BAD_SECRET_TOKEN")
        return pb.VerifyTelegramSecretTokenResponse(connection=connection_message(row))

    # -- questions -----------------------------------------------------------------------------

    @policy(worker="agent", target="organization_id", agent="agent_id", connection="connection_id")
    async def CreateQuestion(self, request: pb.CreateQuestionRequest, context: Context) -> pb.CreateQuestionResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        connection_id = v.uuid("connection_id", request.connection_id)
        agent_id = v.uuid("agent_id", request.agent_id)
        expected_user_id = v.text("expected_user_id", request.expected_user_id, max_length=64)
        channel_id = v.text("channel_id", request.channel_id, max_length=64)
        text = v.document("text", request.text, max_length=MAX_TEXT, required=True)
        options = self._options(v, request.options)
        payload_json = _json_object(v, "payload_json", request.payload_json)
        v.check()
        row = await store.connection_credentials(self._pool, connection_id)
        if row is None or str(row["organization_id"]) != organization_id:
            raise NotFound(f"connection {connection_id} does not exist in organization {organization_id}", reason="CONNECTION_NOT_FOUND")
        credentials = json.loads(
            self._keyring().open(row["key_id"], row["credentials"], credentials_aad(organization_id, row["platform"], row["external_id"]))
        )
        client_type = SlackClient if row["platform"] == "slack" else TelegramClient
        client = client_type(self._http, row["api_base_url"], credentials["bot_token"])
        question_id = str(uuid.uuid4())
        # Persist first: if this fails, nothing was posted. If posting fails, the row goes again.
        await store.question_insert(
            self._pool, question_id, organization_id, connection_id, agent_id, expected_user_id, channel_id,
            text, options_json(options), payload_json,
        )  # fmt: skip
        try:
            ref = await client.post_card(channel_id, text, options, question_id)
        except BaseException:
            await store.question_delete_unscoped_by_service(self._pool, question_id)
            raise
        await store.question_set_message(self._pool, question_id, organization_id, connection_id, ref.channel_id, ref.message_id)
        return pb.CreateQuestionResponse(question_id=question_id, message_ref=pb.MessageRef(channel_id=ref.channel_id, message_id=ref.message_id))

    @staticmethod
    def _options(v: Violations, given) -> list[Option]:
        if not 1 <= len(given) <= MAX_OPTIONS:
            v.add("options", f"must hold 1 to {MAX_OPTIONS} options")
        seen: set[str] = set()
        options = []
        for i, option in enumerate(given):
            if not OPTION_ID.match(option.id):
                v.add(f"options[{i}].id", "must be 1 to 16 letters, digits, '-' or '_'")
            elif option.id in seen:
                v.add(f"options[{i}].id", "is used twice")
            seen.add(option.id)
            options.append(Option(option.id, v.text(f"options[{i}].label", option.label, max_length=75)))
        return options

    @QUESTION_POLICY
    async def ClaimPendingQuestion(self, request: pb.ClaimPendingQuestionRequest, context: Context) -> pb.ClaimPendingQuestionResponse:
        v = Violations()
        question_id, organization_id, connection_id = _scope_ids(v, request)
        user_id = v.text("user_id", request.user_id, max_length=64)
        v.check()
        row = await store.question_claim(self._pool, question_id, organization_id, connection_id, user_id, current_access().agent_id)
        if row is None:
            return pb.ClaimPendingQuestionResponse(claimed=False)
        return pb.ClaimPendingQuestionResponse(claimed=True, payload_json=row["payload_json"])

    @QUESTION_POLICY
    async def AnswerQuestion(self, request: pb.AnswerQuestionRequest, context: Context) -> pb.AnswerQuestionResponse:
        """Claim, record the answer and publish `question.answered`, in one transaction (a failed
        publish releases the claim with everything else); then edit the card in the background."""
        v = Violations()
        question_id, organization_id, connection_id = _scope_ids(v, request)
        user_id = v.text("user_id", request.user_id, max_length=64)
        option_id = v.text("option_id", request.option_id, max_length=16)
        v.check()
        agent_id = current_access().agent_id  # a worker answers only its own agent's questions
        row = await store.question_get(self._pool, question_id, organization_id, connection_id, agent_id)
        if row is None:
            return pb.AnswerQuestionResponse(outcome=pb.ANSWER_OUTCOME_NOT_PENDING)
        labels = {o["id"]: o["label"] for o in json.loads(row["options_json"])}
        if option_id not in labels:
            raise InvalidArgument(FieldViolation("option_id", "is not one of the question's options"))
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await store.question_claim(conn, question_id, organization_id, connection_id, user_id, agent_id)
            if claimed is None:
                # Lost: to an earlier or concurrent click (answered), or the click is not the
                # expected user's (nothing consumed). Read again: the winner may have just claimed.
                current = await store.question_get(conn, question_id, organization_id, connection_id, agent_id)
                answered = current is not None and current["claimed_at"] is not None and current["expected_user_id"] == user_id
                return pb.AnswerQuestionResponse(
                    outcome=pb.ANSWER_OUTCOME_ALREADY_ANSWERED if answered else pb.ANSWER_OUTCOME_NOT_PENDING
                )
            await store.question_record_answer(conn, question_id, option_id)
            event = {
                "question_id": question_id,
                "option_id": option_id,
                "option_label": labels[option_id],
                "user_id": user_id,
                "channel_id": row["channel_id"],
                "agent_id": str(row["agent_id"]),
                "payload": json.loads(row["payload_json"]),
            }
            sequences, _ = await store.events_append(
                conn, organization_id, f"agents/{row['agent_id']}", [("question.answered", json.dumps(event))]
            )
        self._edit_card(row, labels[option_id], user_id, request.callback_query_id)
        return pb.AnswerQuestionResponse(outcome=pb.ANSWER_OUTCOME_ANSWERED, event_sequence=sequences[0])

    def _edit_card(self, question: store.Record, label: str, user_id: str, callback_query_id: str) -> None:
        async def edit() -> None:
            connection = await store.connection_credentials(self._pool, str(question["connection_id"]))
            if connection is None:
                return  # deleted meanwhile: nothing to edit
            credentials = self._credentials(connection)
            editor_type = SlackCardEditor if connection["platform"] == "slack" else TelegramCardEditor
            editor = editor_type(self._http, connection["api_base_url"], credentials["bot_token"])
            if callback_query_id:
                await editor.acknowledge(callback_query_id)
            if question["message_id"]:
                ref = MessageRef(question["message_channel_id"], question["message_id"])
                await editor.show_answer(ref, f"{question['question_text']}\n→ {label} (by {user_id})")

        self._card_edits.submit(edit, question_id=str(question["id"]))

    @policy(worker="agent", target="organization_id", agent="agent_id", connection="connection_id")
    async def StorePendingQuestion(self, request: pb.StorePendingQuestionRequest, context: Context) -> pb.StorePendingQuestionResponse:
        v = Violations()
        question_id, organization_id, connection_id = _scope_ids(v, request)
        agent_id = v.uuid("agent_id", request.agent_id)
        expected_user_id = v.text("expected_user_id", request.expected_user_id, max_length=64)
        channel_id = v.text("channel_id", request.channel_id, max_length=64)
        payload_json = _json_object(v, "payload_json", request.payload_json)
        ref_channel_id = v.text("message_ref.channel_id", request.message_ref.channel_id, max_length=64, required=False)
        ref_message_id = v.text("message_ref.message_id", request.message_ref.message_id, max_length=64, required=False)
        v.check()
        connection = await store.connection_get(self._pool, connection_id, organization_id)
        if connection is None:
            raise NotFound(f"connection {connection_id} does not exist in organization {organization_id}", reason="CONNECTION_NOT_FOUND")
        ref = request.message_ref if request.HasField("message_ref") else None
        row = await store.question_store(
            self._pool, question_id, organization_id, connection_id, agent_id, expected_user_id, channel_id,
            ref_channel_id if ref else None, ref_message_id if ref else None, payload_json,
        )  # fmt: skip
        if row is None:
            raise AlreadyExists(f"question {question_id} exists with another scope", reason="QUESTION_ID_TAKEN")
        return pb.StorePendingQuestionResponse(created=row["created"], created_at=timestamp(row["created_at"]))

    @QUESTION_POLICY
    async def DeletePendingQuestion(self, request: pb.DeletePendingQuestionRequest, context: Context) -> pb.DeletePendingQuestionResponse:
        v = Violations()
        question_id, organization_id, connection_id = _scope_ids(v, request)
        user_id = v.text("expected_user_id", request.expected_user_id, max_length=64)
        v.check()
        deleted = await store.question_delete(self._pool, question_id, organization_id, connection_id, user_id, current_access().agent_id)
        return pb.DeletePendingQuestionResponse(deleted=deleted)

    @policy()
    async def SweepStalePendingInteractions(
        self, request: pb.SweepStalePendingInteractionsRequest, context: Context
    ) -> pb.SweepStalePendingInteractionsResponse:
        v = Violations()
        max_age = request.max_age.seconds + request.max_age.nanos / 1e9  # unset is 0: the default too
        if not 0 <= max_age <= MAX_SWEEP_MAX_AGE:
            v.add("max_age", f"must be from 0 to {MAX_SWEEP_MAX_AGE:.0f} seconds (10 years); 0 means 24 h")
        max_age = max_age or DEFAULT_SWEEP_MAX_AGE
        limit = request.limit or DEFAULT_SWEEP_LIMIT
        if not 1 <= limit <= 10_000:
            v.add("limit", "must be from 1 to 10000 (0 means 1000)")
        v.check()
        deleted = await store.questions_sweep(self._pool, max_age, limit)
        return pb.SweepStalePendingInteractionsResponse(deleted_question_ids=deleted)


SLACK_WINDOW_SECONDS = 300


def slack_signature_ok(signing_secret: str, timestamp: str, signature: str, body: bytes, *, now: float) -> bool:
    """Slack request signing v0: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`, compared in
    constant time, and a timestamp within 5 minutes of now (replays are refused)."""
    stamp = ascii_int(timestamp, maximum=10**12)
    if stamp is None or abs(now - stamp) > SLACK_WINDOW_SECONDS:
        return False
    digest = hmac.new(signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={digest}".encode(), signature.encode())


DEFAULT_SWEEP_MAX_AGE = 24 * 3600.0
# No question waits 10 years; and 10 000 would take now() - max_age before PostgreSQL's first timestamp.
MAX_SWEEP_MAX_AGE = 3650 * 24 * 3600.0
DEFAULT_SWEEP_LIMIT = 1000


def _scope_ids(v: Violations, request) -> tuple[str, str, str]:
    return (
        v.uuid("question_id", request.question_id),
        v.uuid("organization_id", request.organization_id),
        v.uuid("connection_id", request.connection_id),
    )


def _json_object(v: Violations, field: str, value: str) -> str:
    return v.json_object(field, value, max_bytes=64 * 1024)

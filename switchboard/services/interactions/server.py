"""The InteractionService servicer: chat connections and pending questions. Thin: parse and
validate, read the caller's access, call the domain (connections.py, questions.py), encode."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime

import asyncpg
import grpc
import httpx

from switchboard.services.interactions import store
from switchboard.services.interactions.cards import CardEdits
from switchboard.services.interactions.connections import Connections
from switchboard.services.interactions.platforms import MessageRef, Option
from switchboard.services.interactions.questions import Outcome, Questions, Scope
from switchboard.shared.authz import Role, Target, current_access, policy
from switchboard.shared.crypto import KeyRing
from switchboard.shared.messages import timestamp
from switchboard.shared.pagination import decode_page_token, page_of
from switchboard.shared.validation import Violations
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc

Context = grpc.aio.ServicerContext
PLATFORMS = {pb.PLATFORM_SLACK: "slack", pb.PLATFORM_TELEGRAM: "telegram"}
PLATFORM_TO_PROTO = {name: value for value, name in PLATFORMS.items()}
OUTCOMES = {
    Outcome.ANSWERED: pb.ANSWER_OUTCOME_ANSWERED,
    Outcome.ALREADY_ANSWERED: pb.ANSWER_OUTCOME_ALREADY_ANSWERED,
    Outcome.NOT_PENDING: pb.ANSWER_OUTCOME_NOT_PENDING,
}
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


# Calls on one connection are authorised in the connection's organisation (NOT_FOUND otherwise).
CONNECTION = Target("connection_id", locate="organization_of_connection", noun="connection")
# Questions: the edge (operator) and the asking agent's own workers, through their connection.
QUESTION_POLICY = policy(worker="agent", target="organization_id", connection="connection_id")


class InteractionService(interaction_service_pb2_grpc.InteractionServiceServicer):
    """switchboard.interactions.v1.InteractionService."""

    def __init__(self, pool: asyncpg.Pool, keys: KeyRing | None, http: httpx.AsyncClient, card_edits: CardEdits):
        self._connections = Connections(pool, keys, http)
        self._questions = Questions(pool, self._connections, card_edits)

    async def organization_of_connection(self, connection_id: str) -> str | None:
        return await self._connections.organization_of(connection_id)

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
        row, created = await self._connections.register(
            organization_id, platform, external_id, bot_token, secret, api_base_url, operator=current_access().is_operator
        )
        return pb.RegisterConnectionResponse(connection=connection_message(row), created=created)

    async def _readable_connection(self, connection_id: str) -> store.Record:
        """The connection within the caller's scope (organisation; a bound worker's connection)."""
        access = current_access()
        return await self._connections.readable(connection_id, access.organization_id, access.connection_id)

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
        rows = await self._connections.list(
            organization_id, PLATFORMS.get(request.platform), after, page_size + 1, current_access().connection_id
        )
        rows, token = page_of(rows, page_size, lambda r: (r["created_at"], str(r["id"])), request)
        return pb.ListConnectionsResponse(connections=[connection_message(r) for r in rows], next_page_token=token)

    @policy(user=Role.ADMIN, target=CONNECTION)
    async def DeleteConnection(self, request: pb.DeleteConnectionRequest, context: Context) -> pb.DeleteConnectionResponse:
        v = Violations()
        connection_id = v.uuid("connection_id", request.connection_id)
        v.check()
        row = await self._readable_connection(connection_id)
        deleted = await self._connections.delete(connection_id, str(row["organization_id"]))
        return pb.DeleteConnectionResponse(deleted_pending_questions=deleted)

    # -- webhook verification (the edge asks; the secrets never leave this service) ------------

    @policy()
    async def VerifySlackSignature(self, request: pb.VerifySlackSignatureRequest, context: Context) -> pb.VerifySlackSignatureResponse:
        v = Violations()
        team_id = v.text("team_id", request.team_id, max_length=100)
        v.check()
        row = await self._connections.verify_slack(team_id, request.timestamp, request.signature, bytes(request.body), now=time.time())
        return pb.VerifySlackSignatureResponse(connection=connection_message(row))

    @policy()
    async def VerifyTelegramSecretToken(
        self, request: pb.VerifyTelegramSecretTokenRequest, context: Context
    ) -> pb.VerifyTelegramSecretTokenResponse:
        v = Violations()
        connection_id = v.uuid("connection_id", request.connection_id)
        v.check()
        row = await self._connections.verify_telegram(connection_id, request.secret_token)
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
        question_id, ref = await self._questions.create(
            organization_id, connection_id, agent_id, expected_user_id, channel_id, text, options, payload_json
        )
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
        scope = _scope(v, request)
        user_id = v.text("user_id", request.user_id, max_length=64)
        v.check()
        row = await self._questions.claim(scope, user_id, current_access().agent_id)
        if row is None:
            return pb.ClaimPendingQuestionResponse(claimed=False)
        return pb.ClaimPendingQuestionResponse(claimed=True, payload_json=row["payload_json"])

    @QUESTION_POLICY
    async def AnswerQuestion(self, request: pb.AnswerQuestionRequest, context: Context) -> pb.AnswerQuestionResponse:
        """Claim, record the answer and publish `question.answered` in one transaction; then edit
        the card in the background (Questions.answer)."""
        v = Violations()
        scope = _scope(v, request)
        user_id = v.text("user_id", request.user_id, max_length=64)
        option_id = v.text("option_id", request.option_id, max_length=16)
        v.check()
        agent_id = current_access().agent_id  # a worker answers only its own agent's questions
        answer = await self._questions.answer(scope, user_id, option_id, agent_id, request.callback_query_id)
        return pb.AnswerQuestionResponse(outcome=OUTCOMES[answer.outcome], event_sequence=answer.event_sequence)

    @policy(worker="agent", target="organization_id", agent="agent_id", connection="connection_id")
    async def StorePendingQuestion(self, request: pb.StorePendingQuestionRequest, context: Context) -> pb.StorePendingQuestionResponse:
        v = Violations()
        scope = _scope(v, request)
        agent_id = v.uuid("agent_id", request.agent_id)
        expected_user_id = v.text("expected_user_id", request.expected_user_id, max_length=64)
        channel_id = v.text("channel_id", request.channel_id, max_length=64)
        payload_json = _json_object(v, "payload_json", request.payload_json)
        ref_channel_id = v.text("message_ref.channel_id", request.message_ref.channel_id, max_length=64, required=False)
        ref_message_id = v.text("message_ref.message_id", request.message_ref.message_id, max_length=64, required=False)
        v.check()
        ref = MessageRef(ref_channel_id, ref_message_id) if request.HasField("message_ref") else None
        row = await self._questions.stash(scope, agent_id, expected_user_id, channel_id, ref, payload_json)
        return pb.StorePendingQuestionResponse(created=row["created"], created_at=timestamp(row["created_at"]))

    @QUESTION_POLICY
    async def DeletePendingQuestion(self, request: pb.DeletePendingQuestionRequest, context: Context) -> pb.DeletePendingQuestionResponse:
        v = Violations()
        scope = _scope(v, request)
        user_id = v.text("expected_user_id", request.expected_user_id, max_length=64)
        v.check()
        deleted = await self._questions.delete(scope, user_id, current_access().agent_id)
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
        deleted = await self._questions.sweep(max_age, limit)
        return pb.SweepStalePendingInteractionsResponse(deleted_question_ids=deleted)


DEFAULT_SWEEP_MAX_AGE = 24 * 3600.0
# No question waits 10 years; and 10 000 would take now() - max_age before PostgreSQL's first timestamp.
MAX_SWEEP_MAX_AGE = 3650 * 24 * 3600.0
DEFAULT_SWEEP_LIMIT = 1000


def _scope(v: Violations, request) -> Scope:
    return Scope(
        v.uuid("question_id", request.question_id),
        v.uuid("organization_id", request.organization_id),
        v.uuid("connection_id", request.connection_id),
    )


def _json_object(v: Violations, field: str, value: str) -> str:
    return v.json_object(field, value, max_bytes=64 * 1024)

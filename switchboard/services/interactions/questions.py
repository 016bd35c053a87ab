"""Pending questions: create (persist, post the card, undo), the answer transaction, re-stash,
delete and sweep."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass

import asyncpg

from switchboard.services.interactions import store
from switchboard.services.interactions.cards import CardEdits
from switchboard.services.interactions.connections import Connections
from switchboard.services.interactions.platforms import MessageRef, Option, options_json
from switchboard.shared.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound


class Outcome(enum.Enum):
    ANSWERED = "answered"
    ALREADY_ANSWERED = "already_answered"  # the expected user's click lost to an earlier one
    NOT_PENDING = "not_pending"  # no such question in scope, or not the expected user's click


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    event_sequence: int = 0


@dataclass(frozen=True)
class Scope:
    """Where a question lives; every statement on it is bounded by all three."""

    question_id: str
    organization_id: str
    connection_id: str


class Questions:
    """The questions agents ask in chat and the answers users click."""

    def __init__(self, pool: asyncpg.Pool, connections: Connections, card_edits: CardEdits):
        self._pool = pool
        self._connections = connections
        self._card_edits = card_edits

    async def create(
        self,
        organization_id: str,
        connection_id: str,
        agent_id: str,
        expected_user_id: str,
        channel_id: str,
        text: str,
        options: list[Option],
        payload_json: str,
    ) -> tuple[str, MessageRef]:
        """Store a question and post its card: (question id, the card's reference). Raises
        NotFound when the connection is not the organisation's; the platform's errors after
        deleting the question again."""
        row = await store.connection_credentials(self._pool, connection_id)
        if row is None or str(row["organization_id"]) != organization_id:
            raise NotFound(f"connection {connection_id} does not exist in organization {organization_id}", reason="CONNECTION_NOT_FOUND")
        client = self._connections.client(row)
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
        return question_id, ref

    async def claim(self, scope: Scope, user_id: str, agent_id: str | None) -> store.Record | None:
        """The question when this call claimed it; None when it is not pending for that user."""
        return await store.question_claim(self._pool, scope.question_id, scope.organization_id, scope.connection_id, user_id, agent_id)

    async def answer(self, scope: Scope, user_id: str, option_id: str, agent_id: str | None, callback_query_id: str) -> Answer:
        """Claim, record the answer and publish `question.answered`, in one transaction (a failed
        publish releases the claim with everything else); then edit the card in the background.
        Raises InvalidArgument when the option is not one of the question's."""
        question_id, organization_id, connection_id = scope.question_id, scope.organization_id, scope.connection_id
        row = await store.question_get(self._pool, question_id, organization_id, connection_id, agent_id)
        if row is None:
            return Answer(Outcome.NOT_PENDING)
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
                return Answer(Outcome.ALREADY_ANSWERED if answered else Outcome.NOT_PENDING)
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
        self._edit_card(row, labels[option_id], user_id, callback_query_id)
        return Answer(Outcome.ANSWERED, sequences[0])

    def _edit_card(self, question: store.Record, label: str, user_id: str, callback_query_id: str) -> None:
        async def edit() -> None:
            connection = await store.connection_credentials(self._pool, str(question["connection_id"]))
            if connection is None:
                return  # deleted meanwhile: nothing to edit
            editor = self._connections.card_editor(connection)
            if callback_query_id:
                await editor.acknowledge(callback_query_id)
            if question["message_id"]:
                ref = MessageRef(question["message_channel_id"], question["message_id"])
                await editor.show_answer(ref, f"{question['question_text']}\n→ {label} (by {user_id})")

        self._card_edits.submit(edit, question_id=str(question["id"]))

    async def stash(
        self,
        scope: Scope,
        agent_id: str,
        expected_user_id: str,
        channel_id: str,
        message_ref: MessageRef | None,
        payload_json: str,
    ) -> store.Record:
        """Store a question posted elsewhere, or re-stash the same one: the row (created,
        created_at). Raises NotFound for a connection not the organisation's, AlreadyExists when
        the id is taken with another scope or the card is another question's."""
        question_id, organization_id, connection_id = scope.question_id, scope.organization_id, scope.connection_id
        connection = await store.connection_get(self._pool, connection_id, organization_id)
        if connection is None:
            raise NotFound(f"connection {connection_id} does not exist in organization {organization_id}", reason="CONNECTION_NOT_FOUND")
        row = await store.question_store(
            self._pool, question_id, organization_id, connection_id, agent_id, expected_user_id, channel_id,
            message_ref.channel_id if message_ref else None, message_ref.message_id if message_ref else None, payload_json,
        )  # fmt: skip
        if row is None:
            raise AlreadyExists(f"question {question_id} exists with another scope", reason="QUESTION_ID_TAKEN")
        return row

    async def delete(self, scope: Scope, expected_user_id: str, agent_id: str | None) -> bool:
        return await store.question_delete(
            self._pool, scope.question_id, scope.organization_id, scope.connection_id, expected_user_id, agent_id
        )

    async def sweep(self, max_age_seconds: float, limit: int) -> list[str]:
        """Delete pending questions older than max_age (at most ``limit``): their ids, oldest first."""
        return await store.questions_sweep(self._pool, max_age_seconds, limit)

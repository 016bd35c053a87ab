"""Chat platforms' webhooks: Slack interactions and Telegram updates become AnswerQuestion calls.

The edge verifies nothing itself: the interactions service holds the secrets and checks Slack's
signature (v0, 5-minute window) or Telegram's secret token. A click is answered 200 once it is
handled, or after at most 2.5 s while it is still being handled (Slack wants an answer within
3 s); a click that could not be recorded gets 503, so the platform retries it. Retries of a click
already handled are answered 200 and publish nothing more.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.services.edge.problems import problem, problem_from_error
from switchboard.shared.logs import get_logger
from switchboard.shared.validation import JsonRejected, ascii_int, is_utf8, parse_json
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc

log = get_logger(__name__)
ANSWER_WAIT_SECONDS = 2.5
MAX_WEBHOOK_JSON_BYTES = 1 << 20
MAX_UNIX_SECONDS = 10**12  # far beyond any clock; keeps the parsed value small
_OUTCOMES = {pb.ANSWER_OUTCOME_ANSWERED: "answered", pb.ANSWER_OUTCOME_ALREADY_ANSWERED: "already_answered", pb.ANSWER_OUTCOME_NOT_PENDING: "not_pending"}
_background: set[asyncio.Task] = set()


def _stub(request: Request) -> interaction_service_pb2_grpc.InteractionServiceStub:
    return interaction_service_pb2_grpc.InteractionServiceStub(request.app.state.upstreams.channels["interactions"])


async def _answer(request: Request, verified: pb.Connection, **choice: str) -> Response:
    """Record the click ``choice`` (question, option, user…) made on the ``verified`` connection."""
    answer = pb.AnswerQuestionRequest(organization_id=verified.organization_id, connection_id=verified.id, **choice)
    task = asyncio.ensure_future(_stub(request).AnswerQuestion(answer, timeout=30))
    done, _ = await asyncio.wait({task}, timeout=ANSWER_WAIT_SECONDS)
    if not done:
        # Still being handled: answer now, let it finish (a cancelled call would roll back).
        _background.add(task)
        task.add_done_callback(_background.discard)
        return JSONResponse({"ok": True, "outcome": "pending"})
    try:
        reply = task.result()
    except grpc.aio.AioRpcError as exc:
        return problem_from_error(exc)
    return JSONResponse({"ok": True, "outcome": _OUTCOMES.get(reply.outcome, "unknown")})


async def _verify(call) -> pb.Connection | Response:
    try:
        return (await call).connection
    except grpc.aio.AioRpcError as exc:
        return problem_from_error(exc)


class _BadPayload(Exception):
    """A webhook body of the wrong shape; the message says what is wrong, for a 400."""


def _member(obj: Any, where: str, key: str, kinds: type | tuple[type, ...], *, required: bool = True) -> Any:
    """``obj[key]``, checked to be of ``kinds`` (and, for text, storable); ``where`` names ``obj``
    in the message. None when optional and absent."""
    if not isinstance(obj, dict):
        raise _BadPayload(f"'{where}' must be a JSON object")
    value = obj.get(key)
    if value is None:
        if required:
            raise _BadPayload(f"'{where}.{key}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join(_JSON_NAMES[k] for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise _BadPayload(f"'{where}.{key}' must be a {names}")
    if isinstance(value, str) and not (value.strip() and len(value) <= MAX_ID_CHARS and is_utf8(value)):
        raise _BadPayload(f"'{where}.{key}' must be non-empty text of at most {MAX_ID_CHARS} characters")
    return value


_JSON_NAMES = {str: "string", dict: "JSON object", list: "JSON array", int: "number"}
MAX_ID_CHARS = 255


def _slack_payload(body: bytes) -> dict:
    """The interaction JSON of a Slack request body (form field ``payload``), its size and depth
    bounded before it is parsed; raises _BadPayload saying what is wrong."""
    try:
        form = parse_qs(body.decode(), strict_parsing=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise _BadPayload("expected a form-encoded body (application/x-www-form-urlencoded) with a 'payload' field") from None
    if "payload" not in form:
        raise _BadPayload("the form has no 'payload' field (Slack sends the interaction JSON in it)")
    try:
        payload = parse_json(form["payload"][0], max_bytes=MAX_WEBHOOK_JSON_BYTES)
    except JsonRejected as exc:
        raise _BadPayload(f"'payload' {exc}") from None
    if not isinstance(payload, dict):
        raise _BadPayload("'payload' must be a JSON object")
    return payload


async def slack_interactions(request: Request) -> Response:
    body = await request.body()
    # Everything here runs before the signature check, for anyone on the internet: each step is
    # bounded and each failure a 400 that says what is wrong.
    try:
        payload = _slack_payload(body)
        team_id = _member(_member(payload, "payload", "team", dict), "payload.team", "id", str)
    except _BadPayload as exc:
        return problem(400, str(exc))
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    if timestamp and ascii_int(timestamp, maximum=MAX_UNIX_SECONDS) is None:
        return problem(400, "X-Slack-Request-Timestamp must be a Unix time in seconds, in ASCII digits")
    verified = await _verify(
        _stub(request).VerifySlackSignature(
            pb.VerifySlackSignatureRequest(
                team_id=team_id,
                timestamp=timestamp,
                signature=request.headers.get("x-slack-signature", ""),
                body=body,
            ),
            timeout=5,
        )
    )
    if isinstance(verified, Response):
        return verified
    if payload.get("type") != "block_actions":
        return JSONResponse({"ok": True, "outcome": "ignored"})
    try:
        actions = _member(payload, "payload", "actions", list)
        if not actions:
            raise _BadPayload("'payload.actions' must hold at least one action")
        action = actions[0]
        value = _member(action, "payload.actions[0]", "value", str, required=False)
        question_id = value or _member(action, "payload.actions[0]", "block_id", str)
        option_id = _member(action, "payload.actions[0]", "action_id", str)
        user_id = _member(_member(payload, "payload", "user", dict), "payload.user", "id", str)
    except _BadPayload as exc:
        return problem(400, str(exc))
    return await _answer(request, verified, question_id=question_id, user_id=user_id, option_id=option_id)


async def telegram_update(request: Request) -> Response:
    connection_id = request.path_params["connection_id"]
    verified = await _verify(
        _stub(request).VerifyTelegramSecretToken(
            pb.VerifyTelegramSecretTokenRequest(
                connection_id=connection_id, secret_token=request.headers.get("x-telegram-bot-api-secret-token", "")
            ),
            timeout=5,
        )
    )
    if isinstance(verified, Response):
        return verified
    try:
        update = parse_json(await request.body(), max_bytes=MAX_WEBHOOK_JSON_BYTES)
    except JsonRejected as exc:
        return problem(400, f"expected a Telegram update: the body {exc}")
    if not isinstance(update, dict):
        return problem(400, "expected a Telegram update: the body must be a JSON object")
    callback = update.get("callback_query")
    if not callback:
        return JSONResponse({"ok": True, "outcome": "ignored"})
    try:
        callback = _member(update, "update", "callback_query", dict)
        question_id, _, option_id = _member(callback, "update.callback_query", "data", str).partition(":")
        sender = _member(callback, "update.callback_query", "from", dict)
        user_id = str(_member(sender, "update.callback_query.from", "id", (str, int)))
        callback_id = str(_member(callback, "update.callback_query", "id", (str, int)))
    except _BadPayload as exc:
        return problem(400, str(exc))
    return await _answer(
        request, verified, question_id=question_id, user_id=user_id, option_id=option_id, callback_query_id=callback_id
    )

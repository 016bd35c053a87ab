"""Chat platforms' webhooks: Slack interactions and Telegram updates become AnswerQuestion calls.

The edge verifies nothing itself: the interactions service holds the secrets and checks Slack's
signature (v0, 5-minute window) or Telegram's secret token. A click is answered 200 once it is
handled, or after at most 2.5 s while it is still being handled (Slack wants an answer within
3 s); a click that could not be recorded gets 503, so the platform retries it. Retries of a click
already handled are answered 200 and publish nothing more.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.edge.grpc_errors import problem_from_status
from services.edge.problems import problem
from shared.logs import get_logger
from switchboard.interactions.v1 import interaction_service_pb2 as pb
from switchboard.interactions.v1 import interaction_service_pb2_grpc

log = get_logger(__name__)
ANSWER_WAIT_SECONDS = 2.5
_OUTCOMES = {pb.ANSWER_OUTCOME_ANSWERED: "answered", pb.ANSWER_OUTCOME_ALREADY_ANSWERED: "already_answered", pb.ANSWER_OUTCOME_NOT_PENDING: "not_pending"}
_background: set[asyncio.Task] = set()


def _stub(request: Request) -> interaction_service_pb2_grpc.InteractionServiceStub:
    return interaction_service_pb2_grpc.InteractionServiceStub(request.app.state.upstreams.channels["interactions"])


async def _answer(request: Request, answer: pb.AnswerQuestionRequest) -> Response:
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
        return problem_from_status(exc.code(), exc.details())
    return JSONResponse({"ok": True, "outcome": _OUTCOMES.get(reply.outcome, "unknown")})


async def _verify(call) -> pb.Connection | Response:
    try:
        return (await call).connection
    except grpc.aio.AioRpcError as exc:
        return problem_from_status(exc.code(), exc.details())


async def slack_interactions(request: Request) -> Response:
    body = await request.body()
    try:
        payload = json.loads(parse_qs(body.decode(), strict_parsing=True)["payload"][0])
        team_id = payload["team"]["id"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return problem(400, "expected a form-encoded 'payload' with Slack's interaction JSON")
    verified = await _verify(
        _stub(request).VerifySlackSignature(
            pb.VerifySlackSignatureRequest(
                team_id=str(team_id),
                timestamp=request.headers.get("x-slack-request-timestamp", ""),
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
        action = payload["actions"][0]
        question_id = str(action.get("value") or action["block_id"])
        option_id = str(action["action_id"])
        user_id = str(payload["user"]["id"])
    except (KeyError, IndexError, TypeError):
        return problem(400, "the block_actions payload has no action, question or user")
    return await _answer(
        request,
        pb.AnswerQuestionRequest(
            question_id=question_id, organization_id=verified.organization_id, connection_id=verified.id,
            user_id=user_id, option_id=option_id,
        ),
    )  # fmt: skip


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
        update = json.loads(await request.body())
        callback = update.get("callback_query")
    except (ValueError, AttributeError):
        return problem(400, "expected a Telegram update (JSON object)")
    if not callback:
        return JSONResponse({"ok": True, "outcome": "ignored"})
    try:
        question_id, _, option_id = str(callback["data"]).partition(":")
        user_id = str(callback["from"]["id"])
        callback_id = str(callback["id"])
    except (KeyError, TypeError):
        return problem(400, "the callback_query has no data, user or id")
    return await _answer(
        request,
        pb.AnswerQuestionRequest(
            question_id=question_id, organization_id=verified.organization_id, connection_id=verified.id,
            user_id=user_id, option_id=option_id, callback_query_id=callback_id,
        ),
    )  # fmt: skip

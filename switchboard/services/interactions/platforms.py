"""The chat platforms' APIs that questions use, over httpx: Slack's Web API and Telegram's Bot API.

Each client posts a card with one button per option and returns the platform's reference to the
message; a platform error becomes Unavailable carrying the platform's own error code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import httpx

from switchboard.shared.errors import Unavailable
from switchboard.shared.validation import is_utf8, parse_json

SLACK_API = "https://slack.com/api"
TELEGRAM_API = "https://api.telegram.org"
TIMEOUT = httpx.Timeout(5.0, connect=2.0)
MAX_RESPONSE_BYTES = 1 << 20  # a card's answer is a few KiB
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class MessageRef:
    channel_id: str
    message_id: str


@dataclass(frozen=True)
class Option:
    id: str
    label: str


def _message_ref(channel_id: object, message_id: object, platform: str) -> MessageRef:
    """The reference to a posted card, from the platform's answer: ids it gives as text or numbers,
    checked like any input before they are stored (a missing one, a NUL, an odd type: refused)."""
    ids = []
    for value in (channel_id, message_id):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise _failed(platform, "invalid_response")
        text = str(value)
        if not 0 < len(text) <= 64 or _CONTROL.search(text) or not is_utf8(text):
            raise _failed(platform, "invalid_response")
        ids.append(text)
    return MessageRef(channel_id=ids[0], message_id=ids[1])


def _failed(platform: str, error: str) -> Unavailable:
    return Unavailable(f"{platform} refused the card: {error}", reason="PLATFORM_ERROR", metadata={"platform_error": error})


async def _call(http: httpx.AsyncClient, platform: str, url: str, **kwargs: object) -> dict:
    try:
        response = await http.post(url, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]
        body = parse_json(response.content, max_bytes=MAX_RESPONSE_BYTES)
    except httpx.TimeoutException:
        raise _failed(platform, "timeout") from None
    except (httpx.HTTPError, ValueError):  # JsonRejected is a ValueError: too large, too deep, not JSON
        raise _failed(platform, "unreachable_or_invalid_response") from None
    if not isinstance(body, dict):
        raise _failed(platform, "invalid_response")
    return body


class SlackClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, bot_token: str):
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {bot_token}"}

    async def post_card(self, channel_id: str, text: str, options: list[Option], question_id: str) -> MessageRef:
        """``chat.postMessage`` with a section and one Block Kit button per option."""
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "actions",
                "block_id": question_id,
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": o.label}, "action_id": o.id, "value": question_id}
                    for o in options
                ],
            },
        ]
        body = await _call(
            self._http, "Slack", f"{self._base}/chat.postMessage", headers=self._headers,
            json={"channel": channel_id, "text": text, "blocks": blocks},
        )  # fmt: skip
        if not body.get("ok"):
            raise _failed("Slack", str(body.get("error", "unknown_error")))
        return _message_ref(body.get("channel", channel_id), body.get("ts"), "Slack")


class TelegramClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, bot_token: str):
        self._http = http
        # The token is part of Telegram's URL: never log this client's URLs.
        self._base = f"{base_url.rstrip('/')}/bot{bot_token}"

    async def post_card(self, channel_id: str, text: str, options: list[Option], question_id: str) -> MessageRef:
        """``sendMessage`` with an inline keyboard; each button's callback data names the question
        and the option (Telegram allows 64 bytes)."""
        keyboard = [[{"text": o.label, "callback_data": f"{question_id}:{o.id}"}] for o in options]
        body = await _call(
            self._http, "Telegram", f"{self._base}/sendMessage",
            json={"chat_id": channel_id, "text": text, "reply_markup": {"inline_keyboard": keyboard}},
        )  # fmt: skip
        if not body.get("ok"):
            raise _failed("Telegram", str(body.get("description", "unknown_error")))
        result = body.get("result")
        chat = result.get("chat") if isinstance(result, dict) else None
        return _message_ref(
            chat.get("id", channel_id) if isinstance(chat, dict) else channel_id,
            result.get("message_id") if isinstance(result, dict) else None,
            "Telegram",
        )


class SlackCardEditor:
    """``chat.update``: the card shows the answer and loses its buttons."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, bot_token: str):
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {bot_token}"}

    async def show_answer(self, ref: MessageRef, text: str) -> None:
        body = await _call(
            self._http, "Slack", f"{self._base}/chat.update", headers=self._headers,
            json={"channel": ref.channel_id, "ts": ref.message_id, "text": text,
                  "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]},
        )  # fmt: skip
        if not body.get("ok"):
            raise _failed("Slack", str(body.get("error", "unknown_error")))

    async def acknowledge(self, callback_query_id: str) -> None:
        return None  # Slack needs no acknowledgement beyond the webhook's 200


class TelegramCardEditor:
    """``editMessageText`` (no keyboard any more), and ``answerCallbackQuery`` for the click."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, bot_token: str):
        self._http = http
        self._base = f"{base_url.rstrip('/')}/bot{bot_token}"

    async def show_answer(self, ref: MessageRef, text: str) -> None:
        body = await _call(
            self._http, "Telegram", f"{self._base}/editMessageText",
            json={"chat_id": ref.channel_id, "message_id": int(ref.message_id), "text": text},
        )  # fmt: skip
        if not body.get("ok"):
            raise _failed("Telegram", str(body.get("description", "unknown_error")))

    async def acknowledge(self, callback_query_id: str) -> None:
        await _call(self._http, "Telegram", f"{self._base}/answerCallbackQuery", json={"callback_query_id": callback_query_id})


def options_json(options: list[Option]) -> str:
    return json.dumps([{"id": o.id, "label": o.label} for o in options])

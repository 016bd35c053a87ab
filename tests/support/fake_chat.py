"""Fake Slack Web API and Telegram Bot API (the subset Switchboard uses), served on loopback by
the tests: they record every call and can be told to fail."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class FakeSlack:
    bot_token: str
    calls: list[tuple[str, dict]] = field(default_factory=list)
    fail_with: str | None = None  # e.g. "channel_not_found"
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def method(self, request: Request) -> JSONResponse:
        name = request.path_params["method"]
        if request.headers.get("authorization") != f"Bearer {self.bot_token}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        body = await request.json()
        self.calls.append((name, body))
        if self.fail_with:
            return JSONResponse({"ok": False, "error": self.fail_with})
        if name == "chat.postMessage":
            return JSONResponse({"ok": True, "channel": body["channel"], "ts": f"1700000000.{next(self._ts):06d}"})
        if name == "chat.update":
            return JSONResponse({"ok": True, "channel": body["channel"], "ts": body["ts"]})
        return JSONResponse({"ok": False, "error": "unknown_method"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/{method}", self.method, methods=["POST"])])


@dataclass
class FakeTelegram:
    bot_token: str
    calls: list[tuple[str, dict]] = field(default_factory=list)
    fail_with: str | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(100))

    async def method(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.bot_token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        name = request.path_params["method"]
        body = await request.json()
        self.calls.append((name, body))
        if self.fail_with:
            return JSONResponse({"ok": False, "error_code": 400, "description": self.fail_with}, status_code=400)
        if name == "sendMessage":
            return JSONResponse({"ok": True, "result": {"message_id": next(self._ids), "chat": {"id": body["chat_id"]}}})
        return JSONResponse({"ok": True, "result": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/{method}", self.method, methods=["POST"])])

"""A GoTrue-compatible admin API (the subset Switchboard uses), served by the tests on loopback."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class FakeGoTrue:
    """Users kept in memory; ``fail_create_with`` makes creation answer that status, and
    ``hang_create`` makes it never answer (until ``release``)."""

    service_role_key: str
    users: dict[str, dict] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    fail_create_with: int | None = None
    fail_delete_with: int | None = None
    hang_create: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # When set, creations wait until this many have arrived: every racer gets past its own
    # "is there a bot yet?" look before any of them can commit, so the race is certain.
    create_barrier: int | None = None
    _arrived: int = 0
    _all_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def _authorized(self, request: Request) -> bool:
        return (
            request.headers.get("apikey") == self.service_role_key
            and request.headers.get("authorization") == f"Bearer {self.service_role_key}"
        )

    async def create_user(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"msg": "invalid JWT"}, status_code=401)
        if self.hang_create:
            await self.release.wait()
        if self.create_barrier is not None:
            self._arrived += 1
            if self._arrived >= self.create_barrier:
                self._all_arrived.set()
            await self._all_arrived.wait()
        if self.fail_create_with is not None:
            return JSONResponse({"msg": "A user with this email address has already been registered"}, status_code=self.fail_create_with)
        body = await request.json()
        if any(u["email"] == body["email"] for u in self.users.values()):
            return JSONResponse({"msg": "email exists"}, status_code=422)
        user = {
            "id": str(uuid.uuid4()),
            "email": body["email"],
            "email_confirmed_at": "2026-01-01T00:00:00Z" if body.get("email_confirm") else None,
            "app_metadata": body.get("app_metadata", {}),
            "user_metadata": body.get("user_metadata", {}),
            "has_password": "password" in body,
        }
        self.users[user["id"]] = user
        return JSONResponse(user, status_code=200)

    async def delete_user(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"msg": "invalid JWT"}, status_code=401)
        if self.fail_delete_with is not None:
            return JSONResponse({"msg": "boom"}, status_code=self.fail_delete_with)
        user_id = request.path_params["user_id"]
        if self.users.pop(user_id, None) is None:
            return JSONResponse({"msg": "User not found"}, status_code=404)
        self.deleted.append(user_id)
        return JSONResponse({})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/auth/v1/admin/users", self.create_user, methods=["POST"]),
                Route("/auth/v1/admin/users/{user_id}", self.delete_user, methods=["DELETE"]),
            ]
        )

"""The subset of GoTrue's admin API (Supabase Auth) that bot provisioning uses, over httpx."""

from __future__ import annotations

import httpx

from switchboard.shared.errors import FailedPrecondition, Unavailable
from switchboard.shared.logs import get_logger

log = get_logger(__name__)


class GoTrueAdmin:
    """Creates and deletes users with the service-role key. The key is sent, never logged."""

    def __init__(self, base_url: str, service_role_key: str, http: httpx.AsyncClient, timeout_seconds: float = 5.0):
        self._base = base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._headers = {"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"}
        self._http = http

    async def create_user(self, *, email: str, app_metadata: dict, user_metadata: dict) -> str:
        """Create a confirmed user without a password; its id. Raises Unavailable when GoTrue
        fails or times out, FailedPrecondition when it refuses the request."""
        body = {"email": email, "email_confirm": True, "app_metadata": app_metadata, "user_metadata": user_metadata}
        try:
            response = await self._http.post(
                f"{self._base}/auth/v1/admin/users", json=body, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise Unavailable("the identity provider (GoTrue) did not answer in time", reason="IDP_TIMEOUT") from None
        except httpx.HTTPError as exc:
            raise Unavailable(f"the identity provider (GoTrue) cannot be reached: {type(exc).__name__}", reason="IDP_UNREACHABLE") from None
        if response.status_code >= 500:
            raise Unavailable(f"the identity provider (GoTrue) failed with HTTP {response.status_code}", reason="IDP_FAILED")
        if response.status_code >= 400:
            raise FailedPrecondition(
                f"the identity provider (GoTrue) refused to create the bot user: HTTP {response.status_code} "
                f"{_message_of(response)}",
                reason="IDP_REFUSED",
            )
        try:
            user_id = response.json()["id"]
        except (ValueError, KeyError, TypeError):
            raise Unavailable("the identity provider (GoTrue) answered without a user id", reason="IDP_FAILED") from None
        return str(user_id)

    async def delete_user(self, user_id: str) -> bool:
        """Delete a user; True when done. Failures are logged, never raised: this is cleanup."""
        try:
            response = await self._http.delete(
                f"{self._base}/auth/v1/admin/users/{user_id}", headers=self._headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            log.error("gotrue_user_cleanup_failed", user_id=user_id, error=type(exc).__name__)
            return False
        if response.status_code >= 400 and response.status_code != 404:
            log.error("gotrue_user_cleanup_failed", user_id=user_id, http_status=response.status_code)
            return False
        return True


def _message_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("msg", "message", "error_description", "error"):
            if isinstance(body.get(key), str):
                return body[key][:200]
    return ""

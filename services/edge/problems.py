"""JSON problem bodies (RFC 9457) for every error the edge answers."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def problem(status: int, detail: str, *, title: str | None = None, **extra: Any) -> JSONResponse:
    """A problem response: ``type``, ``title``, ``status``, ``detail`` and any ``extra`` members."""
    body = {"type": "about:blank", "title": title or _TITLES.get(status, "Error"), "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE)

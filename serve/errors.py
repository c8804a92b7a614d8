"""One error body for every 4xx and 5xx: {"detail": "<one line naming the problem>", "request_id": ...}.

`install(app)` routes FastAPI's and Starlette's errors (HTTPException, request validation) through
it; serve/limits.py answers the errors raised while a body streams in, a client that hung up and
an internal error with it too. The OpenAPI side is serve/contract.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

ERROR_SCHEMA = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "one line: what was wrong and how to fix it"},
        "request_id": {"type": "string", "description": "the id the server logged this request under"},
    },
}


class BadInput(Exception):
    """A request the server refuses: an HTTP status (4xx) and one line naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class RequestError(HTTPException):
    """A refusal raised where FastAPI re-raises HTTPExceptions unchanged (inside `receive`, under
    FastAPI's own body parsing), so the app's handler answers it with the error body."""


def request_id(scope) -> str:
    """The request's id: one set by the app (scope state "request_id") or a new one, kept in the
    scope so every log line and answer of this request uses the same."""
    state = scope.setdefault("state", {})
    if not state.get("request_id"):
        state["request_id"] = uuid.uuid4().hex[:16]
    return state["request_id"]


def error_response(
    scope, status: int, detail: str, headers: Mapping[str, str] | None = None, extra: dict | None = None
) -> JSONResponse:
    """The error body (extra: more keys a route has always answered with, e.g. /ready's)."""
    rid = request_id(scope)
    body = {**(extra or {}), "detail": detail, "request_id": rid}
    return JSONResponse(body, status_code=status, headers={**(headers or {}), "X-Request-Id": rid})


def _one_line(exc: RequestValidationError) -> str:
    """FastAPI's validation error list -> "k=abc: Input should be a valid integer (query)"."""
    parts = []
    for err in exc.errors()[:3]:
        where, name = (err["loc"][0], ".".join(str(p) for p in err["loc"][1:]) or "body")
        value = err.get("input")
        shown = value if isinstance(value, str | int | float) else type(value).__name__
        parts.append(f"{name}={shown}: {err['msg']} ({where})")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(request.scope, exc.status_code, str(exc.detail), exc.headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request.scope, 422, _one_line(exc))

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)

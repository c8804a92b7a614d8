"""Bounds on what one HTTP request can cost, enforced while its body streams in (plain ASGI).

- A declared Content-Length over `max_bytes` is 413 before a byte of the body is read; a body
  without one (chunked, multipart included) is counted as it arrives and refused with 413 the
  moment it passes the limit: the rest is never read or buffered, and the connection is closed.
- The whole body must arrive within `body_timeout_s` of the request's start: a trickling client
  gets 408 and the connection is closed (uvicorn bounds idle and header time: serve/connections.py).
- A client that hangs up is counted under the status "499" (nginx's "client closed request"),
  with no traceback and no 5xx.
- Any other exception is one log line with the request id, and a 500 with the error body.
"""

from __future__ import annotations

import asyncio
import logging
import traceback

from starlette.requests import ClientDisconnect

from serve.errors import RequestError, error_response, request_id

log = logging.getLogger("serve")
CLIENT_GONE = "499"  # the status label of a request whose client hung up (scope key below)
GONE_KEY = "serve.client_gone"
CLOSE = {"Connection": "close"}  # the unread rest of a refused body must not be read as the next request


def _declared(scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame, so the one log line still points at the fault."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


class Bounds:
    def __init__(self, app, max_bytes: int, body_timeout_s: float):
        self.app, self.max_bytes, self.body_timeout_s = app, max_bytes, body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _declared(scope)
        if declared is not None and declared > self.max_bytes:
            detail = f"request body of {declared} bytes is over the {self.max_bytes}-byte limit"
            return await error_response(scope, 413, detail, CLOSE)(scope, receive, send)
        started = [False]

        async def send_started(message):
            started[0] = started[0] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._bounded(scope, receive), send_started)
        except ClientDisconnect:
            scope[GONE_KEY] = True  # nothing to answer: the client is gone
        except RequestError as exc:  # raised in receive outside a handler's reach (e.g. after the answer)
            if not started[0]:
                await error_response(scope, exc.status_code, str(exc.detail), CLOSE)(scope, receive, send)
        except Exception as exc:  # the server's one place for an unexpected error
            rid = request_id(scope)
            log.error("serve: internal error, request %s %s %s: %s: %s at %s", rid, scope["method"],
                      scope["path"], type(exc).__name__, exc, _where(exc))  # fmt: skip
            if not started[0]:
                detail = f"internal error (request id {rid}); the server logged it"
                await error_response(scope, 500, detail)(scope, receive, send)

    def _bounded(self, scope, receive):
        loop = asyncio.get_running_loop()
        deadline, got, done = loop.time() + self.body_timeout_s, [0], [False]

        async def bounded_receive():
            if done[0]:  # the body is in: later calls only wait for a disconnect, which is not the client's delay
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                detail = f"request body not in after {self.body_timeout_s:g} s; send it faster or send less"
                raise RequestError(408, detail, CLOSE) from None
            if message["type"] == "http.request":
                got[0] += len(message.get("body", b""))
                done[0] = not message.get("more_body", False)
                if got[0] > self.max_bytes:
                    detail = f"request body over the {self.max_bytes}-byte limit (refused at {got[0]} bytes)"
                    raise RequestError(413, detail, CLOSE)
            elif message["type"] == "http.disconnect":
                scope[GONE_KEY] = True
            return message

        return bounded_receive

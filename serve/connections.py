"""How uvicorn serves the app: connection-level bounds no ASGI middleware can see.

- `idle_timeout_s`: an idle keep-alive connection is closed (uvicorn's timeout_keep_alive), and so
  is one whose request line and headers are not all in that long after the connection opened or
  the previous answer went out (uvicorn alone waits forever for a first request, and a client
  trickling header bytes resets its keep-alive timer with each one).
- `max_header_bytes`: a request head larger than this closes the connection (h11's limit).
- The body's limits (size, time) are serve/limits.py's.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

from serve.settings import Settings


class HeadDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline (timeout_keep_alive) for each request's head."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        self._arm()  # before super(): it may parse a pipelined request, which disarms it
        super().on_response_complete()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request head arrived
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def serve(app, settings: Settings) -> None:
    """Run `app` with uvicorn on settings.host:port with the connection bounds above (blocks)."""
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        http=HeadDeadlineH11,
        timeout_keep_alive=max(1, round(settings.idle_timeout_s)),
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )

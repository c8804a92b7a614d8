"""A webhook receiver on 127.0.0.1 that records what it is sent: the stand-in for a chat
or incident endpoint in `make automation-smoke` and the tests. POST bodies are kept
(JSON decoded when they parse); anything else gets 405, and it keeps serving."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # bytes; a bigger request is refused with 413


class WebhookReceiver:
    def __init__(self) -> None:
        self.payloads: list[dict] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self.send_error(413, "payload too large")
                    return
                body = self.rfile.read(length)
                receiver.raw.append(body)
                try:
                    receiver.payloads.append(json.loads(body))
                except ValueError:
                    receiver.payloads.append({"body": body.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()

            def do_GET(self):
                self.send_error(405, "POST only")

            def log_message(self, *args):  # quiet: payloads are kept, not logged
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def apprise_url(self) -> str:
        """Apprise's plain JSON webhook (POSTs {version, title, message, type})."""
        return "json://" + self.url.removeprefix("http://")

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

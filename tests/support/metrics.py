"""A Prometheus /metrics endpoint on 127.0.0.1 serving whatever `text` holds (the drift trigger's tests)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DRIFT = "# TYPE cifar100_drift_detected gauge\ncifar100_drift_detected 1.0\ncifar100_drift_score 0.9\n"
QUIET = "# TYPE cifar100_drift_detected gauge\ncifar100_drift_detected 0.0\n"


class Metrics:
    """A /metrics endpoint on 127.0.0.1 serving whatever `text` holds."""

    def __init__(self, text: str):
        self.text = text
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = outer.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

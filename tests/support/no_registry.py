"""A stand-in for a hosted MLflow without a Model Registry (DagsHub/client#629).

`RegistryRefusingProxy` sits in front of a real MLflow tracking server on
127.0.0.1 and forwards every request unchanged, except that while `refusing`
is set it answers the registry's REST routes (registered-models/*,
model-versions/*; or only the `routes` given, e.g. registered-models/create)
with what DagsHub's hosted MLflow was reported to answer: HTTP 404 "Model
Registry features are not supported". Clearing `refusing` is the registry
coming back. Runs in a thread; `stop()` ends it.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from urllib.parse import urlsplit

REGISTRY_ROUTES = ("/registered-models/", "/model-versions/")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


def refusal(uri: str) -> bytes:
    return json.dumps(
        {
            "error_code": "ENDPOINT_NOT_FOUND",
            "message": f"Model Registry features are not supported by the store with URI: '{uri}'",
        }
    ).encode()


class RegistryRefusingProxy:
    def __init__(self, upstream: str, routes: tuple[str, ...] = REGISTRY_ROUTES):
        self.upstream = urlsplit(upstream)
        self.routes = routes  # parts of a request path that get the refusal
        self.refusing = True
        self.refused: list[str] = []  # paths answered with the refusal
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: pytest shows failures
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while size := int(self.rfile.readline().strip() or b"0", 16):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return data
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self) -> None:
                body = self._body()
                if proxy.refusing and any(route in self.path for route in proxy.routes):
                    proxy.refused.append(self.path)
                    uri = f"http://{self.headers.get('Host', '')}"
                    self._answer(404, refusal(uri), [("Content-Type", "application/json")])
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    self._answer(resp.status, resp.read(), resp.getheaders())
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

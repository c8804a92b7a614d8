"""`make guardrail`: the guardrail receiver, Alertmanager's webhook (monitoring/alertmanager.yml) on
127.0.0.1:AUTOMATION_GUARDRAIL_PORT (9097).

POST /alerts takes Alertmanager's webhook JSON (version 4); each alert is decided by
flows.guardrail and the answer is 200 with {"outcomes": [one line per alert]}. A body that is not
that JSON: 400, one line. The registry unreachable (or any failure to act): 503, one line, nothing
recorded, and Alertmanager sends the group again. GET /health: 200. A body over 1 MiB: 413; each
request has READ_TIMEOUT_S to arrive. SIGTERM and Ctrl-C stop it in one line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flows import alerts, settings
from flows.guardrail import Guardrail
from ops.common import Fail
from stages.lib.cli import PipelineError

MAX_BODY = 1 << 20  # bytes
READ_TIMEOUT_S = 10.0  # a client that sends slower than this is dropped


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def make_server(guard: Guardrail, port: int) -> ThreadingHTTPServer:
    """The receiver on 127.0.0.1:port (0: a free port), not yet serving."""

    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT_S

        def do_POST(self) -> None:
            if self.path != "/alerts":
                return self._answer(404, f"{self.path}: not found: POST Alertmanager's webhook to /alerts")
            length = self.headers.get("Content-Length", "")
            if not length.isdigit():
                return self._answer(411, "Content-Length: missing or not a number: send the body's length")
            if int(length) > MAX_BODY:
                return self._answer(413, f"Content-Length: {length} bytes is over {MAX_BODY}: send one alert group")
            try:
                payload = alerts.parse(self.rfile.read(int(length)))
            except alerts.BadPayload as exc:
                return self._answer(400, str(exc))
            try:
                outcomes = [guard.handle(alert) for alert in payload.alerts]
            except Exception as exc:  # the registry down, a full disk: Alertmanager retries the group
                line = f"guard: could not act on the alerts: {_one_line(exc)}"
                print(line, file=sys.stderr, flush=True)
                return self._answer(503, line)
            for outcome in outcomes:
                print(f"guard: {outcome}", flush=True)
            self._answer(200, json.dumps({"outcomes": outcomes}), "application/json")

        def do_GET(self) -> None:
            if self.path == "/health":
                return self._answer(200, "ok")
            self._answer(404, f"{self.path}: not found: GET /health, POST /alerts")

        def _answer(self, code: int, text: str, ctype: str = "text/plain; charset=utf-8") -> None:
            data = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # quiet: each outcome is printed instead
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def build(params_path: str) -> tuple[Guardrail, int]:
    """The guardrail on the registry the project uses (MLFLOW_TRACKING_URI, else the project's
    store, as `make rollback`) and the port. Fail or PipelineError name a bad setting."""
    from mlflow import MlflowClient

    from stages.lib import params, tracking

    cfg = settings.load(".")
    pipeline = params.load(params_path)
    tracking.configure(pipeline.mlflow.experiment)
    state = cfg.project / ".automation"
    name = pipeline.register.model_name
    guard = Guardrail(MlflowClient(), name, state, cfg.guardrail_bake_s, cfg.guardrail_min_interval_s)
    return guard, cfg.guardrail_port


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the guardrail receiver for Alertmanager's webhook")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        guard, port = build(args.params)
        server = make_server(guard, port)
    except (Fail, PipelineError, OSError) as exc:
        print(f"guard: error: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop)
    print(f"guard: http://127.0.0.1:{server.server_address[1]}/alerts guards model {guard.model}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt as exc:
        print(f"guard: {exc or 'SIGINT'} received: stopped", flush=True)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

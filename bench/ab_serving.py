"""What A/B and shadow serving cost: the real server in `single`, `ab` (challenger share 50 %) and
`shadow` mode on the same two tiny registered versions, at one concurrency, in the same run.

Claims: `ab` answers >= 0.9x the requests/s of `single` (ab_throughput_ratio), and in `shadow`
the champion's answer p99 (the client's latency: the challenger's copy is never awaited) is
<= 1.2x `single`'s (shadow_p99_ratio).

Method: an untrained `small` net registered twice (v1 champion, v2 challenger, as
smoke/serving.py registers them) in a scratch MLflow store; three servers (`python -m serve`,
one per mode, 127.0.0.1) up at once, the idle ones costing nothing. Repeats alternate the modes
(single, ab, shadow, single, ...); each is bench/serve.py's closed-loop aiohttp client with
--concurrency single-image PNG requests in flight for --seconds after 1 s of warm-up, each request
with one of 64 rotating X-Client-Id keys. Per mode the fastest repeat counts (most requests/s,
lowest p99), so a burst of load from elsewhere on the shared machine hurts none of them.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.serve import _load
from smoke import serving
from smoke.servers import Server, free_port, launch, wait_ready

MODES = ("single", "ab", "shadow")
START_S = 600  # three servers importing torch and MLflow at once on 2 busy cores took over 120 s
KEYS = 64  # client keys the requests rotate over (ab: about half are the challenger's)


def _start(root: Path, mode: str) -> Server:
    port = free_port()
    env = {"MLFLOW_TRACKING_URI": serving.store_uri(root), "SERVE_PORT": str(port), "SERVE_MODE": mode}
    env["SERVE_CHALLENGER_SHARE"] = "50" if mode == "ab" else "0"
    cmd = [sys.executable, "-m", "serve", "--params", str(root / "params.yaml")]
    (root / mode).mkdir()
    return launch(f"serve-{mode}", cmd, root / mode, env, f"http://127.0.0.1:{port}")


def _request_maker():
    png = serving.png(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    keys = itertools.cycle([f"client-{i:02d}" for i in range(KEYS)])

    async def request(http) -> int:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("files", png, filename="x.png", content_type="image/png")
        try:
            async with http.post("/predict", data=form, headers={"X-Client-Id": next(keys)}) as got:
                await got.read()
                return got.status
        except aiohttp.ClientError:  # a connection reset at load 10 ended the first run: count it as failed
            return 0

    return request


def _both_loaded(server: Server) -> None:
    """Wait until the server's every variant has its model (ab, shadow: the challenger too)."""
    import time

    import httpx

    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        status = httpx.get(server.url + "/ready", timeout=10).json()
        if not status.get("missing"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{server.name}: variants {status.get('missing')} not loaded within {START_S} s")


def measure(concurrency: int = 32, seconds: float = 5.0, repeats: int = 3) -> dict:
    """The serving-cost keys of bench/ab.py's JSON line."""
    with tempfile.TemporaryDirectory(prefix="bench-ab-serving-") as tmp:
        root = Path(tmp)
        serving.register(root, seed=1)
        v2 = serving.register(root, seed=2, champion=False)
        _alias(root, v2)
        (root / "params.yaml").write_text((serving.ROOT / "params.yaml").read_text())
        servers = {mode: _start(root, mode) for mode in MODES}
        try:
            for server in servers.values():
                wait_ready(server, "/ready", timeout_s=START_S)
                _both_loaded(server)
            runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
            for _ in range(repeats):
                for mode, server in servers.items():
                    runs[mode].append(asyncio.run(_load(server.url, _request_maker(), concurrency, seconds)))
        finally:
            for server in servers.values():
                server.stop()
    rps = {mode: max(r["rps"] for r in runs[mode]) for mode in MODES}
    p99 = {mode: min(r["p99_ms"] for r in runs[mode]) for mode in MODES}
    return {
        "serving_load": f"small net, CPU, {concurrency} concurrent single-image PNG requests, "
        f"{repeats} alternating repeats of {seconds:g} s per mode, fastest counts",
        "serving_rps": rps,
        "serving_p99_ms": p99,
        "serving_failed": sum(r["failed"] for mode in MODES for r in runs[mode]),
        "ab_throughput_ratio": round(rps["ab"] / rps["single"], 3),
        "ab_throughput_goal": 0.9,
        "shadow_p99_ratio": round(p99["shadow"] / p99["single"], 3),
        "shadow_p99_goal": 1.2,
    }


def _alias(root: Path, version: str) -> None:
    from mlflow import MlflowClient

    uri = serving.store_uri(root)
    MlflowClient(uri, uri).set_registered_model_alias(serving.NAME, "challenger", version)

"""Claim: at 32 concurrent clients this server answers >= 3x the single-image requests/s
of `mlflow models serve` on the same model, with a p99 latency no worse.

Method: one registered version (an untrained net of --arch, logged exactly as the
register stage logs it) in a scratch MLflow store; both servers started on it, one
uvicorn worker each, on 127.0.0.1, both up at once. Per concurrency level (1, 8,
32), in turns (this server, then the baseline), an asyncio aiohttp client keeps
that many single-image requests in flight for --seconds after a 1 s warm-up and
records each latency (aiohttp comes with MLflow; httpx's async pool, not the
servers, capped both near 70 requests/s at 32). This server gets a 32x32 PNG file
(multipart, its primary API); `mlflow models serve` gets the same image as its
JSON tensor input {"inputs": uint8 (1, 32, 32, 3)}. Client and servers share the
machine's cores. One JSON line: rps / p50 / p99 per level, ratios at each level.
--device cuda runs this server on the GPU (the baseline stays on CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from smoke import serving
from smoke.servers import free_port, launch, wait_ready

ROOT = Path(__file__).resolve().parent.parent

LEVELS = (1, 8, 32)


async def _load(url: str, make_request, concurrency: int, seconds: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    failures = 0
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as http:

        async def worker(until: float, record: bool) -> None:
            nonlocal failures
            while time.perf_counter() < until:
                start = time.perf_counter()
                status = await make_request(http)
                if record:
                    latencies.append(time.perf_counter() - start)
                    failures += status != 200

        await asyncio.gather(*(worker(time.perf_counter() + 1.0, False) for _ in range(concurrency)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "rps": round(len(ms) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "failed": failures,
    }


def _ours(root: Path, device: str):
    port = free_port()
    env = {"MLFLOW_TRACKING_URI": serving.store_uri(root), "SERVE_PORT": str(port), "SERVE_DEVICE": device}
    cmd = [sys.executable, "-m", "serve", "--params", str(root / "params.yaml")]
    server = launch("serve", cmd, root, env, f"http://127.0.0.1:{port}")
    server.ready_path = "/ready"
    png = serving.png(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))

    async def request(http) -> int:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("files", png, filename="x.png", content_type="image/png")
        async with http.post("/predict", data=form) as got:
            await got.read()
            return got.status

    return server, request


def _baseline(root: Path, version: str):
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow), "models", "serve", "-m", f"models:/{serving.NAME}/{version}", "--env-manager", "local"]
    cmd += ["-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    # MLflow execs `uvicorn` by name: the venv's bin must be on PATH even when it is not activated.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    server = launch("mlflow-serve", cmd, root, {"MLFLOW_TRACKING_URI": serving.store_uri(root), "PATH": path}, "")
    server.url, server.ready_path = f"http://127.0.0.1:{port}", "/ping"
    body = {"inputs": np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8).tolist()}

    async def request(http) -> int:
        async with http.post("/invocations", json=body) as got:
            await got.read()
            return got.status

    return server, request


def _run_levels(root: Path, version: str, device: str, seconds: float) -> tuple[dict, dict]:
    """Both servers up at once (the idle one costs nothing), levels measured in turns, so a
    change in the shared machine's load falls on both alike."""
    ours, base = _ours(root, device), _baseline(root, version)
    try:
        for server, _ in (ours, base):
            wait_ready(server, server.ready_path)
        got = {"ours": {}, "base": {}}
        for c in LEVELS:
            for key, (server, request) in (("ours", ours), ("base", base)):
                got[key][c] = asyncio.run(_load(server.url, request, c, seconds))
        return got["ours"], got["base"]
    finally:
        ours[0].stop()
        base[0].stop()


def bench(arch: str, device: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        version = serving.register(root, seed=1, arch=arch)
        (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
        ours, base = _run_levels(root, version, device, seconds)
    out = {"arch": arch, "device": device, "seconds_per_level": seconds, "cpus": os.cpu_count()}
    for c in LEVELS:
        out.update({f"rps_c{c}": ours[c]["rps"], f"p50_ms_c{c}": ours[c]["p50_ms"], f"p99_ms_c{c}": ours[c]["p99_ms"]})
        out.update({f"baseline_rps_c{c}": base[c]["rps"], f"baseline_p99_ms_c{c}": base[c]["p99_ms"]})
        out[f"baseline_p50_ms_c{c}"] = base[c]["p50_ms"]
        out[f"ratio_c{c}"] = round(ours[c]["rps"] / base[c]["rps"], 2)
        out[f"failed_c{c}"] = ours[c]["failed"] + base[c]["failed"]
    if device == "cuda":
        out["note"] = "baseline `mlflow models serve` runs the model on CPU"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet9", choices=("small", "resnet9", "resnet18"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per concurrency level")
    args = ap.parse_args()
    print(json.dumps(bench(args.arch, args.device, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

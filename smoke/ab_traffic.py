"""Requests of `make ab-smoke`: labelled PNGs from the smoke data with client keys, their feedback,
the failing load of the guardrail phase, and a bounded Schemathesis run counting 5xx answers.

Every wait is bounded; the server's own counters (GET /metrics) count the fuzzer's 5xx answers,
so nothing depends on parsing the fuzzer's report."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

TIMEOUT_S = 60  # one request's bound


def labelled_pngs(sandbox: Path, count: int) -> list[tuple[bytes, int]]:
    """(PNG bytes, true fine label) of the first `count` smoke test images (uint8 32x32x3)."""
    import io

    from PIL import Image

    data = sandbox / "data" / "processed"
    images = np.load(data / "test_x.npy")[:count].transpose(0, 2, 3, 1)  # NCHW -> NHWC
    labels = np.load(data / "test_y.npy")[:count]
    out = []
    for img, label in zip(images, labels):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        out.append((buf.getvalue(), int(label)))
    return out


def ab_load(url: str, pngs: list[tuple[bytes, int]], keys: int, per_key: int) -> tuple[dict[str, set], int]:
    """keys x per_key single-image requests, each key with its own X-Client-Id, each answer labelled
    by POST /feedback; returns ({key: variants that answered it}, feedback answers stored)."""
    import httpx

    seen: dict[str, set] = defaultdict(set)
    stored = 0
    with httpx.Client(base_url=url, timeout=TIMEOUT_S) as http:
        for round_ in range(per_key):
            for k in range(keys):
                png, label = pngs[(round_ * keys + k) % len(pngs)]
                key = f"client-{k:03d}"
                got = http.post("/predict", files={"files": ("x.png", png, "image/png")}, headers={"X-Client-Id": key})
                got.raise_for_status()
                body = got.json()
                seen[key].add((body["variant"], body["version"]))
                fb = http.post("/feedback", json={"request_id": body["request_id"], "label": label})
                stored += fb.status_code == 200 and fb.json()["status"] == "stored"
    return seen, stored


class FailingLoad:
    """Two-image requests from rotating client keys in a thread until stop(); at a 50 % share
    about half reach the challenger. Counts answers by status."""

    def __init__(self, url: str, png: bytes) -> None:
        self.url, self.png = url, png
        self.statuses: dict[int, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="failing-load", daemon=True)

    def _run(self) -> None:
        import httpx

        files = [("files", (f"{i}.png", self.png, "image/png")) for i in range(2)]
        with httpx.Client(base_url=self.url, timeout=TIMEOUT_S) as http:
            n = 0
            while not self._stop.is_set():
                try:
                    got = http.post("/predict", files=files, headers={"X-Client-Id": f"load-{n % 40:02d}"})
                    self.statuses[got.status_code] += 1
                except httpx.HTTPError:
                    self.statuses[0] += 1
                n += 1
                self._stop.wait(0.1)  # about 5-10 requests/s: well over the rule's 0.05/s floor

    def __enter__(self) -> FailingLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT_S + 5)


def server_5xx(url: str) -> int:
    """5xx answers the server has counted (cifar100_requests_total{status="5.."}), all routes."""
    import httpx

    text = httpx.get(url + "/metrics", timeout=TIMEOUT_S).text
    pattern = r'^cifar100_requests_total\{[^}]*status="5\d\d"[^}]*\} ([0-9.e+]+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE)))


def fuzz(url: str, work: Path, examples: int) -> tuple[int, int]:
    """Schemathesis against the server's OpenAPI (at most `examples` per operation, seed 1);
    returns (its exit status, 5xx answers the server counted during the run)."""
    before = server_5xx(url)
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json"]
    cmd += ["--checks", "not_a_server_error", "--max-examples", str(examples), "--seed", "1"]
    cmd += ["--request-timeout", "30", "--no-color", "--suppress-health-check", "all"]
    work.mkdir(exist_ok=True)
    with open(work / "schemathesis.log", "wb") as log:
        done = subprocess.run(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, timeout=300)
    return done.returncode, server_5xx(url) - before


def wait_until(check, timeout_s: float, what: str, interval_s: float = 1.0):
    """Poll check() until truthy; RuntimeError naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")

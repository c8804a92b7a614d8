"""Claim: a stage in its own container costs at most 1 s more than running it locally.

Measured, on a live Docker engine with the images built (`make build`):
1. Launch overhead: fastest wall time of `python -m runner validate` through the
   launcher (PIPELINE_EXECUTOR=docker: docker SDK create/start/stream/wait/
   remove around the stage) minus the same stage run locally (executor=local),
   against `docker run --rm BASE true`, Docker's own floor for one container.
2. Whole pipeline: `make run` (runner container + six stage containers) vs
   `make run-local` semantics (`dvc repro` on the host) on smoke/pipeline.py's
   synthetic sandbox, fresh sandbox each, one run each; per-stage difference.
Prints one JSON line with both and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._common import alternating_best, run, timed
from smoke.sandbox import SMOKE_OVERRIDES, make_sandbox, merge

ROOT = Path(__file__).resolve().parent.parent


def _image(base: str) -> str:
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), f"BASE_IMAGE={base}", "print-stage-image"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MAKE"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def launch_overhead(project: Path, base: str, image: str, repeats: int) -> dict:
    validate = [
        sys.executable,
        "-m",
        "runner",
        "validate",
        "--params",
        "params.yaml",
        "--raw",
        "data/raw",
        "--report",
        "reports/validate.json",
    ]
    docker_s, local_s = alternating_best(
        lambda: run(validate, project, _env(PIPELINE_EXECUTOR="docker", PIPELINE_IMAGE=image)),
        lambda: run(validate, project, _env(PIPELINE_EXECUTOR="local")),
        repeats,
    )
    floor_s = min(
        timed(lambda: run(["docker", "run", "--rm", "--network", "host", base, "true"])) for _ in range(repeats)
    )
    return {
        "stage_docker_s": round(docker_s, 3),
        "stage_local_s": round(local_s, 3),
        "launch_overhead_s": round(docker_s - local_s, 3),
        "docker_run_true_s": round(floor_s, 3),
        "overhead_vs_docker_floor": round((docker_s - local_s) / floor_s, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-image", default=os.environ.get("BASE_IMAGE"), required=not os.environ.get("BASE_IMAGE"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    image = _image(args.base_image)
    overrides = merge(SMOKE_OVERRIDES, {"recipes": {"fast": {"epochs": args.epochs}}})
    with tempfile.TemporaryDirectory(dir=ROOT / ".smoke" if (ROOT / ".smoke").is_dir() else None) as tmp:
        local, docker = Path(tmp, "local"), Path(tmp, "docker")
        for d in (local, docker):
            d.mkdir()
            make_sandbox(d, overrides)
        local_s = timed(lambda: run([sys.executable, "-m", "dvc", "repro"], local, _env(PIPELINE_EXECUTOR="local")))
        docker_s = timed(lambda: run(["make", "-C", str(docker), "run", f"BASE_IMAGE={args.base_image}"], None, _env()))
        figures = launch_overhead(local, args.base_image, image, args.repeats)
    figures.update(
        {
            "bench": "docker_overhead",
            "pipeline_local_s": round(local_s, 2),
            "pipeline_docker_s": round(docker_s, 2),
            "pipeline_ratio": round(docker_s / local_s, 3),
            "per_stage_extra_s": round((docker_s - local_s) / 6, 3),
        }
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

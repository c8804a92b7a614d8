"""The Kubernetes manifests under deploy/: render them for review, or apply them with the runner Job.

`python -m ops.k8s render [--out .k8s-render]` writes `kubectl kustomize` of every overlay
(deploy/overlays/<name>) to OUT/<name>.yaml, then runs every function in RENDERERS (the hook
for more files, e.g. a sample Job per stage): each gets OUT and returns the paths it wrote.
`python -m ops.k8s run [--overlay cpu]` applies the overlay with the runner Job under a fresh
name; when no cluster answers it prints, in one line, what it would have applied, and exits 0.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from ops.k8s_samples import render_stage_jobs
from proc.run import Fail, last_error, run
from stages.lib import cli

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RUNNER_JOB = "run"  # the Job's name in deploy/base/runner.yaml; `run` gives each apply its own
CLUSTER_TIMEOUT_S = 5

# Hook: more rendered files. Each function gets the output folder and returns the paths it wrote.
RENDERERS: list[Callable[[Path], list[Path]]] = [render_stage_jobs]  # a sample Job per stage


def overlays() -> list[str]:
    return sorted(p.name for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def kustomize(overlay: str) -> str:
    """The overlay's manifests as one multi-document YAML string (kubectl's built-in kustomize,
    else a standalone `kustomize`). Fail: one line naming the overlay and the fix."""
    path = DEPLOY / "overlays" / overlay
    if not (path / "kustomization.yaml").exists():
        raise Fail(f"deploy/overlays/{overlay}: no such overlay; use one of {', '.join(overlays())}")
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(path)]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(path)]
    else:
        raise Fail("neither kubectl nor kustomize is on PATH; install kubectl >= 1.27 (kustomize is built in)")
    done = run(cmd, timeout=120)
    if done.returncode:
        raise Fail(f"deploy/overlays/{overlay}: kustomize failed: {last_error(done.output)}")
    return done.output


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(out: Path) -> list[Path]:
    """OUT/<overlay>.yaml for every overlay, then whatever RENDERERS write; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for overlay in overlays():
        path = out / f"{overlay}.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(kustomize(overlay))
        tmp.replace(path)  # all or nothing: a failed render leaves the previous file
        written.append(path)
    for renderer in RENDERERS:
        written.extend(renderer(out))
    return written


def fresh_job(docs: list[dict], stamp: str) -> list[dict]:
    """The documents with the runner Job renamed run-<stamp>: a Job's pod template is immutable,
    so each run is a Job of its own (finished ones go after ttlSecondsAfterFinished). A copy."""
    docs = copy.deepcopy(docs)
    for doc in docs:
        if doc.get("kind") == "Job" and doc["metadata"]["name"] == RUNNER_JOB:
            doc["metadata"]["name"] = f"{RUNNER_JOB}-{stamp}"
    return docs


def cluster_error() -> str | None:
    """None when the current kubeconfig reaches an API server, else why not (one line)."""
    if not shutil.which("kubectl"):
        return "kubectl is not on PATH"
    done = run(["kubectl", "version", f"--request-timeout={CLUSTER_TIMEOUT_S}s", "-o", "json"], timeout=30)
    if done.returncode == 0 and "serverVersion" in done.output:
        return None
    return last_error(done.output)


def names(docs: list[dict]) -> str:
    return ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def apply(overlay: str, stamp: str | None = None) -> str:
    """Apply the overlay with a fresh runner Job; with no reachable cluster, the one line of what
    would be applied. Fail when kubectl apply fails."""
    docs = fresh_job(documents(kustomize(overlay)), stamp or time.strftime("%Y%m%d-%H%M%S"))
    why = cluster_error()
    if why is not None:
        return f"k8s-run: no cluster ({why}); would apply deploy/overlays/{overlay}: {names(docs)}"
    return _apply(docs)


def _apply(docs: list[dict]) -> str:
    text = yaml.safe_dump_all(docs, sort_keys=False)
    done = subprocess.run(["kubectl", "apply", "-f", "-"], input=text, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise Fail(f"kubectl apply: {last_error(done.stderr + done.stdout)}")
    job = next(d["metadata"] for d in docs if d["kind"] == "Job")
    return f"k8s-run: applied; follow with: kubectl -n {job['namespace']} logs -f job/{job['name']}"


def _main(argv) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("render").add_argument("--out", type=Path, default=ROOT / ".k8s-render")
    sub.add_parser("run").add_argument("--overlay", default="cpu")
    args = ap.parse_args(argv)
    if args.cmd == "render":
        print(json.dumps({"rendered": [str(p) for p in render(args.out)]}))
    else:
        print(apply(args.overlay))


def main(argv=None) -> int:
    return cli.run("k8s", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())

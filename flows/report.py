"""The `report` step: what a run changed, as one JSON line (and <run dir>/report.json).

- stages_rerun: the stages `dvc repro` ran (from the reproduce step's log; DVC
  decided, nothing here re-derives it);
- metrics_diff: `dvc metrics diff` from the commit the run started on;
- registry: reports/registry.json (the register stage's decision), and whether
  the register stage ran in this run. A promotion made in this run is notified.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flows import notify


def stages_rerun(reproduce_log: str) -> list[str]:
    """Stage names `dvc repro` ran, in order ("Running stage 'NAME':" lines)."""
    return [
        ln.split("'")[1] for ln in reproduce_log.splitlines() if ln.startswith("Running stage '") and "'" in ln[15:]
    ]


def metrics_diff(project: Path, since: str) -> dict:
    """`dvc metrics diff SINCE --json`: {file: {metric: {old, new, diff}}}; {} when nothing changed."""
    cmd = [sys.executable, "-m", "dvc", "metrics", "diff", "--json", *([since] if since else [])]
    done = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=300)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["dvc metrics diff failed"])[-1][:300]}
    start, end = done.stdout.find("{"), done.stdout.rfind("}")
    return json.loads(done.stdout[start : end + 1]) if start >= 0 else {}


def summarize(project: Path, run: Path) -> dict:
    log = run / "reproduce.log"
    ran = stages_rerun(log.read_text()) if log.exists() else []
    start = run / "start_rev"
    registry_file = project / "reports" / "registry.json"
    registry = json.loads(registry_file.read_text()) if registry_file.exists() else None
    return {
        "stages_rerun": ran,
        "metrics_diff": metrics_diff(project, start.read_text().strip() if start.exists() else ""),
        "registry": registry,
        "registered_now": "register" in ran,
    }


def promotion_message(summary: dict) -> str | None:
    reg = summary.get("registry") or {}
    if not (summary.get("registered_now") and reg.get("promoted")):
        return None
    return (
        f"{reg.get('model')} v{reg.get('version')} is now champion "
        f"(test top-1 {reg.get('test_top1')}; {reg.get('reason')}); stages rerun: {', '.join(summary['stages_rerun'])}"
    )


def report(project: Path, run: Path) -> dict:
    """Summarize the run, write <run>/report.json, notify a promotion made in this run."""
    summary = summarize(project, run)
    run.mkdir(parents=True, exist_ok=True)
    (run / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    message = promotion_message(summary)
    if message:
        notify.send("promotion", "new champion", message)
    return summary


def main() -> int:
    run = Path(os.environ.get("AUTOMATION_RUN_DIR", ".automation/runs/manual"))
    print(json.dumps(report(Path.cwd(), run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

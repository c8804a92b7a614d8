"""The automation's steps as the project's own entry points, and the one wrapper that runs them.

Both engines (flows/pipeline.py under Prefect, flows/airflow/cifar100_retrain.py
under Airflow) take their commands from `commands()` and run them through
`run_step()`, so each step means the same thing in both and neither copies the
DVC DAG: `reproduce` is `make run` (docker executor) or `make run-local`.

A failed step is either transient (remote unreachable, MLflow 5xx, Docker daemon
busy: retrying may help) or permanent (a failed validation, a bad param, any
other error: retrying cannot), as ops.retry.classify says. `python -m flows.steps
--run ID STEP -- CMD...` exits 75 (EX_TEMPFAIL) for transient failures and 1 for
permanent ones, which is how the Airflow DAG retries only the former. The engine
(Prefect or Airflow) owns a step's retries: the remote operations run with
REMOTE_ATTEMPTS=1 here, so a step is never retried at two levels. Stdlib (and
this project's stdlib-only ops modules) at import: the Airflow venv imports this
module to build its DAG.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ops import retry
from proc.git import head
from proc.run import run_group
from proc.secrets import redact_all

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("pull", "reproduce", "push", "git_sync", "report")
EX_TEMPFAIL = 75
REMOTE_TIMEOUT_S = 120.0  # AUTOMATION_REMOTE_TIMEOUT_S's default: one attempt of a pull or push
FAULT_ENV = "AUTOMATION_FAULT"  # test hook: STEP fails once per run with a transient error
FAULT_MESSAGE = "ERROR: unexpected error - Could not connect to the endpoint URL (injected fault, {step})"


class StepFailed(Exception):
    """A step exited non-zero; `transient` says whether a retry may help."""

    def __init__(self, step: str, returncode: int, transient: bool, line: str):
        kind = "transient" if transient else "permanent"
        super().__init__(f"{step}: {kind} failure (exit {returncode}): {line}")
        self.step, self.returncode, self.transient, self.line = step, returncode, transient, line


@dataclass
class StepResult:
    step: str
    output: str
    seconds: float


def classify(returncode: int, output: str) -> str:
    """'ok', 'transient' or 'permanent' from a step's exit status and its output."""
    if returncode == 0:
        return "ok"
    if returncode == EX_TEMPFAIL:
        return "transient"
    return "transient" if retry.classify(output) == "transient" else "permanent"


# make's own lines: `*** [Makefile:N: target] Error 1`, and `Entering/Leaving directory` (a sub-make, or -C)
MAKE_NOISE = re.compile(r"^make(\[\d+\])?: (\*\*\* \[.*\] Error \d+|(Entering|Leaving) directory .*)$")


def last_line(output: str) -> str:
    """The most telling line of a failed step's output (its last error line, never make's echo of
    the exit status), for messages and notifications."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and not MAKE_NOISE.match(ln.strip())]
    errors = [ln for ln in lines if re.search(r"\berror\b|fatal|refus|failed", ln, re.I)]
    return (errors or lines or ["no output"])[-1][:300]


def make_cmd(target: str, venv: Path) -> list[str]:
    # STAMP= stops make from (re)installing the venv; the project's own target does the rest.
    return ["make", "--no-print-directory", target, f"VENV={venv}", "STAMP="]


def commands(executor: str, python: str, venv: Path) -> dict[str, list[str]]:
    """Each step's entry-point command; `report` is this package's own summary."""
    if executor not in ("docker", "local"):
        raise ValueError(f"executor must be docker or local, got {executor!r}")
    return {
        "pull": [python, "-m", "ops.remote", "pull"],
        "reproduce": make_cmd("run" if executor == "docker" else "run-local", venv),
        "push": [python, "-m", "ops.remote", "push"],
        "git_sync": [python, "-m", "ops.git_sync"],
        "report": [python, "-m", "flows.report"],
    }


def run_dir(project: Path, run_id: str) -> Path:
    """Where one run keeps its step logs, attempts and start commit (<project>/.automation/runs/ID)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:120]
    return project / ".automation" / "runs" / safe


def step_env(project: Path, run: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ, one bounded attempt per remote operation (the engine retries the step), the run's folder."""
    env = {**os.environ, **(extra or {})}
    env["REMOTE_ATTEMPTS"] = "1"
    env["REMOTE_ATTEMPT_TIMEOUT_S"] = env.get("AUTOMATION_REMOTE_TIMEOUT_S") or str(REMOTE_TIMEOUT_S)
    env["AUTOMATION_RUN_DIR"] = str(run)
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def scrub(text: str, project: Path) -> str:
    """text with the secrets of the environment and the project's .env masked (as notifications are)."""
    return redact_all(text, project / ".env")


def _injected(step: str, run: Path) -> bool:
    """True once per run for the step named in AUTOMATION_FAULT (a test hook)."""
    if os.environ.get(FAULT_ENV) != step:
        return False
    marker = run / f"fault-{step}"
    if marker.exists():
        return False
    marker.write_text("injected\n")
    return True


def skip_reason(step: str, project: Path) -> str | None:
    """Why a step has nothing to do, or None. A project's first run has no dvc.lock: nothing to pull."""
    if step == "pull" and not (project / "dvc.lock").exists():
        return "pull: no dvc.lock yet, nothing to pull (first run)"
    return None


def run_step(
    step: str, cmd: list[str], project: Path, run: Path, timeout_s: float, extra_env: dict[str, str] | None = None
) -> StepResult:
    """Run one step's command in the project; raise StepFailed (transient or not) when it fails. The output
    is echoed when the step succeeds; a failure is the one line of StepFailed (the whole output: <step>.log)."""
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "start_rev").exists():  # the commit the run started from, for the metrics diff
        (run / "start_rev").write_text(head(project) or "")
    with open(run / f"{step}.attempts", "a") as f:
        f.write(f"{time.time():.3f}\n")
    start = time.monotonic()
    if _injected(step, run):
        code, out = 1, FAULT_MESSAGE.format(step=step)
    elif skip_reason(step, project):
        code, out = 0, f"{skip_reason(step, project)}\n"
    else:
        code, out = run_group(cmd, project, step_env(project, run, extra_env), timeout_s)
    out = scrub(out, project)
    (run / f"{step}.log").write_text(out)
    kind = classify(code, out)
    if kind != "ok":
        raise StepFailed(step, code, kind == "transient", last_line(out))
    sys.stdout.write(out if out.endswith("\n") or not out else out + "\n")
    return StepResult(step, out, time.monotonic() - start)


def retries_in(run: Path) -> int:
    """Retries made in a run: attempts beyond the first, over all steps."""
    return sum(max(0, len(p.read_text().split()) - 1) for p in run.glob("*.attempts"))


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.steps --run ID [--project DIR] [--timeout S] STEP -- CMD...` (the Airflow side)."""
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser(description="run one automation step; exit 75 when a retry may help")
    ap.add_argument("--run", required=True, help="run id (one folder of step logs per run)")
    ap.add_argument("--project", default=".", help="project directory (default: cwd)")
    ap.add_argument("--timeout", type=float, default=6 * 3600, help="seconds before the step is stopped")
    ap.add_argument("step", choices=STEPS)
    args = ap.parse_args(argv[:split])
    cmd = argv[split + 1 :]
    if not cmd:
        ap.error("give the step's command after --")
    project = Path(args.project).resolve()
    try:
        run_step(args.step, cmd, project, run_dir(project, args.run), args.timeout)
    except StepFailed as exc:
        print(f"automation: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if exc.transient else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

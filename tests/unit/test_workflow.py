"""The CI workflow parses and has its three jobs, wired as docs/testing.md says: each test runs once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return YAML(typ="safe", pure=True).load(WORKFLOW.read_text())


def steps_text(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_runs_on_push_and_pull_request(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 readers turn `on` into True
    assert {"push", "pull_request"} <= set(triggers)


def test_the_suite_runs_once_in_one_job_through_the_ci_entry_point(workflow):
    assert set(workflow["jobs"]) == {"test", "metrics-diff", "dagshub-mirror"}
    runs_tests = [
        name for name, job in workflow["jobs"].items() if re.search(r"make test|pytest|\.ci/run", steps_text(job))
    ]
    assert runs_tests == ["test"]


def test_ci_entry_point_runs_lint_docs_then_the_readme_test_command():
    lines = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    order = [lines.index(cmd) for cmd in ("make install", "make lint", "make docs", "make test")]
    assert order == sorted(order)


def test_metrics_diff_reports_on_pull_requests_only(workflow):
    job = workflow["jobs"]["metrics-diff"]
    assert job["if"] == "github.event_name == 'pull_request'"
    assert "dvc metrics diff --md" in steps_text(job)
    assert job["permissions"]["pull-requests"] == "write"
    assert any(step.get("with", {}).get("fetch-depth") == 0 for step in job["steps"])  # the base branch is there


def test_dagshub_mirror_only_with_the_secret_and_never_on_a_command_line(workflow):
    job = workflow["jobs"]["dagshub-mirror"]
    assert job["needs"] == "test" and "push" in job["if"]
    assert job["env"]["DAGSHUB_TOKEN"] == "${{ secrets.DAGSHUB_TOKEN }}"
    gated = [s for s in job["steps"] if "uses" in s or "git push" in str(s.get("run", ""))]
    assert gated and all(s.get("if") == "env.DAGSHUB_TOKEN != ''" for s in gated)
    text = steps_text(job)
    assert "dagshub.com/$DAGSHUB_OWNER/$DAGSHUB_REPO.git" in text
    assert "GIT_CONFIG_VALUE_0" in text  # the credential travels as an env-configured header


def test_no_secret_is_interpolated_into_a_script(workflow):
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            assert "secrets." not in str(step.get("run", "")), f"{name}: pass secrets through env"


def test_test_job_runs_the_ci_entry_point_as_root(workflow):
    job = workflow["jobs"]["test"]
    assert "if" not in job and ".ci/run" in steps_text(job) and "sudo" in steps_text(job)

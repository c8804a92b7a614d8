"""The fault matrix (issue 12): one prepared tiny sandbox per session, a private copy per case,
and the matrix's one-line verdict at the end of a run that ran any of it:
{"faults": N, "clean": M, "unclean": [case ids], "skipped": K, "seconds": S}."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from smoke.sandbox import make_sandbox
from tests.support.faults import COMPOSE_PROJECT, TINY, Sandbox, remove_containers


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """(work, store): the tiny sandbox after one whole `dvc repro`, kept at store. Every case runs
    in a copy of it at work, the path it was made at (MLflow's store holds absolute paths)."""
    parent = tmp_path_factory.mktemp("faults")
    work, store = parent / "work", parent / "prepared"
    work.mkdir()
    make_sandbox(work, TINY)
    box = Sandbox(work)
    try:
        done = box.dvc("repro")
    finally:
        box.close()  # an interrupted session leaves no `dvc repro` running
    assert done.rc == 0, f"preparing the fault sandbox failed:\n{done.out[-2000:]}"
    shutil.copytree(work, store, symlinks=True)
    return work, store


@pytest.fixture
def sb(prepared, request):
    """This case's copy of the prepared sandbox; its processes, stand-ins and (Docker) containers
    are gone after the case, so the next one starts clean."""
    work, store = prepared
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(store, work, symlinks=True)
    box = Sandbox(work, docker=request.node.get_closest_marker("docker") is not None)
    try:
        yield box
    finally:
        box.close()
        if box.docker:
            remove_containers(work)


@pytest.fixture(scope="session")
def docker_env(base_image, prepared) -> dict:
    """Environment for `make run` in a case's sandbox, with the stage and runner images built
    from the offline base (`base_image` skips, saying why, where no daemon answers)."""
    env = {"BASE_IMAGE": base_image, "COMPOSE_PROJECT_NAME": COMPOSE_PROJECT}
    _, store = prepared
    box = Sandbox(store)
    built = subprocess.run(["make", "-s", "build"], cwd=store, env=box.env(env), capture_output=True, text=True)
    assert built.returncode == 0, f"make build BASE_IMAGE={base_image} failed:\n{built.stdout}{built.stderr}"
    return env


# ---- the matrix's verdict ---------------------------------------------------------
_outcomes: dict[str, str] = {}  # case id -> passed / failed / skipped (a failure in any phase wins)
_seconds = [0.0]


def pytest_runtest_logreport(report):
    if "faults" not in report.keywords:
        return
    _seconds[0] += report.duration
    case = report.nodeid.split("::", 1)[-1]
    if report.failed:
        _outcomes[case] = "failed"
    elif report.skipped:
        _outcomes.setdefault(case, "skipped")
    elif report.when == "call":
        _outcomes.setdefault(case, "passed")


def pytest_unconfigure(config):
    """Printed last, after pytest's own summary: the line `make bench-faults` ends with."""
    if not _outcomes:
        return
    unclean = [case for case, outcome in _outcomes.items() if outcome == "failed"]
    clean = sum(outcome == "passed" for outcome in _outcomes.values())
    skipped = sum(outcome == "skipped" for outcome in _outcomes.values())
    line = {"faults": clean + len(unclean), "clean": clean, "unclean": unclean}
    line.update(skipped=skipped, seconds=round(_seconds[0], 1))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(json.dumps(line))

"""What `make k8s-smoke` (smoke/k8s.py) checks after the run: the Job specs (runner.k8s_check),
the rendered deploy/ manifests (ops.k8s render, both overlays and the sample stage Jobs), secret
values in any spec, and the two dvc.lock files stage by stage."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from runner.k8s_check import problems, schema_problems


def secret_hits(specs: Iterable[Mapping[str, Any]], values: Iterable[str]) -> int:
    """How many (spec, secret value) pairs have the value anywhere in the spec's JSON."""
    values = [v for v in values if v]
    return sum(v in json.dumps(spec) for spec in specs for v in values)


def check_jobs(specs: Iterable[Mapping[str, Any]], secret_values: Iterable[str]) -> tuple[int, list[str]]:
    """(how many Job specs pass runner.k8s_check.problems, one line per problem found)."""
    valid, found = 0, []
    for spec in specs:
        lines = problems(spec, secret_values)
        valid += not lines
        found += [f"Job {spec['metadata']['name']}: {line}" for line in lines]
    return valid, found


def check_rendered(out: Path, secret_values: Iterable[str]) -> tuple[int, list[str]]:
    """`ops.k8s render` into out: each document of each file checked against the strict schemas
    (Jobs that job_spec built, labelled cifar100/stage, against all of runner.k8s_check)."""
    from ops import k8s as ops_k8s
    from runner.k8s_spec import STAGE_LABEL

    valid, found = 0, []
    for path in ops_k8s.render(out):
        for doc in ops_k8s.documents(path.read_text()):
            is_stage_job = doc.get("kind") == "Job" and STAGE_LABEL in doc["metadata"].get("labels", {})
            lines = problems(doc, secret_values) if is_stage_job else schema_problems(doc)
            valid += not lines
            found += [f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {line}" for line in lines]
    return valid, found


def lock_stages(lock: Path) -> dict[str, dict[str, Any]]:
    """Each stage of a dvc.lock as {cmd, params, deps, outs}, deps and outs as {path: md5}."""
    stages = yaml.safe_load(lock.read_text())["stages"]
    return {
        name: {
            "cmd": stage["cmd"],
            "params": stage.get("params", {}),
            "deps": {d["path"]: d.get("md5") for d in stage.get("deps", [])},
            "outs": {o["path"]: o.get("md5") for o in stage.get("outs", [])},
        }
        for name, stage in stages.items()
    }


def lock_differences(a: Path, b: Path) -> list[str]:
    """'stage key [path]' for everything that differs between two dvc.lock files."""
    left, right = lock_stages(a), lock_stages(b)
    found = [f"{name} missing in one lock" for name in sorted(set(left) ^ set(right))]
    for name in sorted(set(left) & set(right)):
        for key in ("cmd", "params"):
            if left[name][key] != right[name][key]:
                found.append(f"{name} {key}")
        for key in ("deps", "outs"):
            ours, theirs = left[name][key], right[name][key]
            paths = sorted(set(ours) | set(theirs))
            found += [f"{name} {key} {path}" for path in paths if ours.get(path) != theirs.get(path)]
    return found

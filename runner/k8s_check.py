"""Checks every Job the builder (runner/k8s_spec.py) makes: the offline Kubernetes schemas
(kubernetes-validate, strict: unknown fields fail) for each supported version, and what the
schemas miss: restartPolicy Never, no retries, GPUs in limits only, a non-root pod, and no
secret value anywhere in the spec. The tests and `python -m runner.k8s_render` both call `problems`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from runner.k8s_spec import GPU

VERSIONS = tuple(f"1.{minor}.0" for minor in range(29, 38))  # what kubernetes-validate 1.37 ships from 1.29 on


def schema_problems(spec: Mapping[str, Any], versions: Iterable[str] = VERSIONS) -> list[str]:
    """One line per Kubernetes version whose strict schema rejects the spec."""
    import kubernetes_validate  # a dev dependency: the runner itself never needs it

    found = []
    for version in versions:
        try:
            kubernetes_validate.validate(dict(spec), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            found.append(f"Kubernetes {version}: {exc.message}")
    return found


def _pod(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    return spec["spec"]["template"]["spec"]


def semantic_problems(spec: Mapping[str, Any], secret_values: Iterable[str] = ()) -> list[str]:
    """What the schemas accept but this project forbids."""
    found = []
    pod = _pod(spec)
    if pod.get("restartPolicy") != "Never":
        found.append(f"restartPolicy is {pod.get('restartPolicy')!r}, not 'Never': a failed stage must end the run")
    if spec["spec"].get("backoffLimit") != 0:
        found.append("backoffLimit must be 0: the runner, not the Job controller, decides about reruns")
    context = pod.get("securityContext") or {}
    if context.get("runAsNonRoot") is not True or not context.get("runAsUser"):
        found.append("the pod must set runAsNonRoot: true and a non-zero runAsUser")
    for ct in pod["containers"]:
        if GPU in (ct.get("resources") or {}).get("requests", {}):
            found.append(f"container {ct['name']}: {GPU} belongs in limits only")
        found += [f"container {ct['name']}: env {e['name']} carries a secret value" for e in _leaks(ct, secret_values)]
    text = json.dumps(spec)
    if any(value and json.dumps(value)[1:-1] in text for value in secret_values if len(value) >= 4):
        found.append("a secret value appears somewhere in the Job spec (labels, annotations or args)")
    return found


def _leaks(container: Mapping[str, Any], secret_values: Iterable[str]) -> list[Mapping[str, Any]]:
    values = {v for v in secret_values if v}
    return [e for e in container.get("env", []) if e.get("value") in values]


def problems(
    spec: Mapping[str, Any], secret_values: Iterable[str] = (), versions: Iterable[str] = VERSIONS
) -> list[str]:
    """Everything wrong with a Job spec ([] when it is fine)."""
    return semantic_problems(spec, list(secret_values)) + schema_problems(spec, versions)

"""`make ab-promote`'s operation: move `champion` to the challenger's version on a `promote` verdict.

Under the host-wide alias lock `register` takes (stages.lib.sweepmode.alias_lock), the report is
computed afresh from the feedback store, and the registry's `challenger` alias must still point
at the version the test measured. Then `champion` moves (stages.lib.registry.move_champion, so
`make rollback` can undo it) and the decision is recorded twice: as `ab.*` tags on the new
champion's version and as an MLflow run (params, metrics, report.json). Any other verdict
refuses in one line and moves no alias. The notification is sent by flows/ab_promote.py
(ops may not import flows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ops import ab_report, ab_settings
from proc.run import Fail
from serve.feedback import FeedbackStore
from stages.lib import registry, sweepmode

TAG = "ab."  # version tags: ab.verdict, ab.test, ab.e_value, ab.p_value, ab.counts, ab.run_id, ab.report


@dataclass(frozen=True)
class Promotion:
    model: str
    old: str | None  # champion's version before
    new: str  # champion's version now
    run_id: str
    report: dict


def _alias(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _refuse_unless_ready(body: dict, challenger: str | None, champion: str | None) -> str:
    """The version to promote, or Fail saying in one line why nothing moves."""
    tested = body["variants"]["challenger"]["version"]
    counts = f"{body['variants']['champion']['labelled']}/{body['variants']['challenger']['labelled']} labels"
    stats = f"e-value {body['e_value']:.3g}, p {body['p_value']:.3g}, {counts}"
    if body["verdict"] != "promote":
        more = (
            f"; about {body['still_needed_per_arm']} more labels per variant needed"
            if body["verdict"] == "inconclusive"
            else ""
        )
        raise Fail(f"verdict is {body['verdict']} ({stats}{more}): champion stays v{champion}, no alias moved")
    if tested is None or tested != challenger:
        raise Fail(f"the test measured challenger v{tested} but the alias points at v{challenger}: no alias moved")
    if tested == champion:
        raise Fail(f"v{tested} is already champion: no alias moved")
    return tested


def _record(client, name: str, version: str, body: dict, experiment: str) -> str:
    """The decision as an MLflow run and as ab.* tags on the version; returns the run id."""
    import mlflow

    counts = {v: {k: body["variants"][v][k] for k in ("labelled", "correct")} for v in ab_report.VARIANTS}
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"ab-promote-v{version}", tags={"ab.decision": "promote"}) as run:
        mlflow.log_params({"alpha": body["config"]["alpha"], "tau": body["config"]["tau"], "challenger": version})
        metrics = {"e_value": body["e_value"], "p_value": body["p_value"], "difference": body["difference"]}
        for v in ab_report.VARIANTS:
            metrics[f"{v}_top1"] = body["variants"][v]["top1"]
            metrics[f"{v}_labelled"] = body["variants"][v]["labelled"]
        mlflow.log_metrics(metrics)
        mlflow.log_dict(body, "ab_report.json")
    tags = {
        "verdict": body["verdict"],
        "test": body["test"],
        "e_value": f"{body['e_value']:.6g}",
        "p_value": f"{body['p_value']:.6g}",
        "counts": json.dumps(counts),
        "run_id": run.info.run_id,
        "report": json.dumps({k: body[k] for k in ("verdict", "difference", "decided_at", "config")})[:4000],
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, TAG + key, value)
    return run.info.run_id


def promote(client, name: str, experiment: str, store_url: str, settings: ab_settings.AbSettings) -> Promotion:
    """Move champion to the tested challenger on a promote verdict (under the alias lock); Fail otherwise."""
    with sweepmode.alias_lock(client.tracking_uri, name):
        store = FeedbackStore(store_url)
        try:
            rows = store.labelled(since=settings.since)
        finally:
            store.dispose()
        body = ab_report.build(rows, settings.config())
        champion = _alias(client, name, registry.CHAMPION)
        version = _refuse_unless_ready(body, _alias(client, name, registry.CHALLENGER), champion)
        run_id = _record(client, name, version, body, experiment)
        registry.move_champion(client, name, version)
    return Promotion(name, champion, version, run_id, body)

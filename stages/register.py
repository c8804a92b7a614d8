"""register: put the evaluated model in the MLflow registry and decide its aliases.

A new version gets `challenger`; `champion` moves to it only when its test
top-1 beats the current champion's by `register.promote_margin` (the first
version always becomes champion). Weights already registered are not
registered again. The decision goes to a JSON file (path from dvc.yaml).
The profile stage's reference profile travels with the model as
`extra_files/reference_profile.json` (what a server's drift monitor compares with).
"""

from __future__ import annotations

from pathlib import Path

from stages.lib import cli, fsio, model_card, params


def _tags(sha: str, card: model_card.ModelCard, metrics: dict) -> dict[str, str]:
    from stages.lib import sweepmode, tracking

    tags = {tracking.MODEL_TAG: sha, **tracking.provenance(["data/raw", "data/processed"])}
    tags.update({f"param.train.{k}": str(v) for k, v in params.flatten(params.as_dict(card.train_params)).items()})
    tags.update({f"metric.test_{k}": str(v) for k, v in metrics["test"].items()})
    tags.update(sweepmode.version_tags())
    return tags


def _new_version(client, cfg: params.Params, model_dir: Path, sha: str, tags: dict, extra: tuple[Path, ...]) -> str:
    """Log the servable model to its training run and register it; return the version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    import stages
    from stages.lib import lineage, model, registry, tracking

    card, net = model_card.build(model_dir)
    serving = model.ServingModel(net, card.mean, card.std).eval()
    run_id = tracking.find_run(sha)
    if run_id is None:
        with mlflow.start_run(run_name="register") as run:
            mlflow.set_tag(tracking.MODEL_TAG, sha)
            run_id = run.info.run_id
    source = registry.logged_model(client, run_id)  # logged by an earlier run the registry refused
    if source is None:
        code_dir, extra = Path(stages.__file__).parent, (model_card.card_path(model_dir), *extra)
        source = registry.log_model(client, run_id, serving, card.num_classes, code_dir, extra)
    lineage.record(client, run_id, model_dir)  # what `make reproduce` rebuilds it from
    try:
        return registry.create_version(client, cfg.register.model_name, source, run_id, tags)
    except MlflowException as exc:
        if not registry.unsupported(exc):
            raise
        raise cli.PipelineError(
            f"the MLflow server {tracking.redact(mlflow.get_tracking_uri())} has no Model Registry "
            f"(HTTP 404: Model Registry features are not supported): the model is logged to run {run_id}, "
            f"tagged {tracking.MODEL_TAG}={sha}; rerun `make run` once the server's registry works "
            "(or set MLFLOW_TRACKING_URI to a server with one) to register it"
        ) from None


def _registered(client, name: str, sha: str) -> str | None:
    """The version holding these weights; None also where the server has no registry (the
    model is then logged to its run before registering fails in one line)."""
    from mlflow.exceptions import MlflowException

    from stages.lib import registry, tracking

    try:
        return registry.find_version(client, name, tracking.MODEL_TAG, sha)
    except MlflowException as exc:
        if registry.unsupported(exc):
            return None
        raise


def _decide(client, name: str, version: str, is_new: bool, top1: float, margin: float):
    """Promote a new version by the rule and record why on it; for weights registered
    before, report the decision recorded then (versions from before the record: decide now)."""
    from stages.lib import registry, sweepmode

    recorded = None if is_new else registry.recorded_decision(client, name, version)
    if recorded is not None:
        return recorded
    current = registry.champion(client, name)  # read inside the alias lock: the champion it decides against
    if sweepmode.active():
        decision = registry.Decision(False, sweepmode.NO_PROMOTE)
    elif current and current[0] == version:
        decision = registry.Decision(False, "this version is already champion")
    else:
        decision = registry.decide(top1, current[1] if current else None, margin)
    if decision.promote:
        registry.move_champion(client, name, version)  # keeps the champion history rollback reads
    registry.record_decision(client, name, version, decision)
    return decision


def register(cfg: params.Params, model_dir: Path, metrics_path: Path, profile_path: Path, out: Path) -> dict:
    from mlflow import MlflowClient

    from stages.lib import registry, sweepalive, sweepmode, tracking

    fsio.remove(out)
    sweepalive.check_wanted()  # an experiment its sweep lost (a killed queue worker) registers nothing
    card = model_card.load(model_dir)
    cli.require(metrics_path, producer="evaluate")
    cli.require(profile_path, producer="profile")
    metrics = fsio.read_json(metrics_path)
    top1 = float(metrics["test"]["top1"])
    sha = model_card.weights_sha256(model_dir)
    tracking.configure(cfg.mlflow.experiment)
    client, name = MlflowClient(), cfg.register.model_name
    version = _registered(client, name, sha)
    is_new = version is None
    if version is None:
        version = _new_version(client, cfg, model_dir, sha, _tags(sha, card, metrics), (profile_path,))
        client.set_registered_model_alias(name, registry.CHALLENGER, version)
    with sweepmode.alias_lock(client.tracking_uri, name):  # another register may decide at once
        decision = _decide(client, name, version, is_new, top1, cfg.register.promote_margin)
    result = {
        "model": name,
        "version": int(version),
        "aliases": sorted(client.get_model_version(name, version).aliases),
        "promoted": decision.promote,
        "reason": decision.reason,
        "test_top1": top1,
    }
    fsio.write_json(out, result)
    return {**result, "new_version": is_new}


def _main(argv) -> None:
    args = cli.parser(__doc__.splitlines()[0], "model", "metrics", "profile", "out").parse_args(argv)
    cfg = params.load(args.params)
    result = register(cfg, Path(args.model), Path(args.metrics), Path(args.profile), Path(args.out))
    again = "" if result["new_version"] else "already registered: "
    print(f"register: {again}{result['model']} v{result['version']} {result['aliases']} ({result['reason']})")


def main(argv=None) -> int:
    return cli.run("register", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())

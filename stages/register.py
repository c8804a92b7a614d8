"""register: put the evaluated model in the MLflow registry and decide its aliases.

A new version gets `challenger`; `champion` moves to it only when its test
top-1 beats the current champion's by `register.promote_margin` (the first
version always becomes champion). Weights already registered are not
registered again. The decision goes to a JSON file (path from dvc.yaml).
The profile stage's reference profile travels with the model as
`extra_files/reference_profile.json` (what a server's drift monitor compares with).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from stages.lib import cli, fsio, params


def _tags(sha: str, card: dict, metrics: dict) -> dict[str, str]:
    from stages.lib import tracking

    tags = {tracking.MODEL_TAG: sha, **tracking.provenance(["data/raw", "data/processed"])}
    tags.update({f"param.train.{k}": str(v) for k, v in params.flatten(card["train_params"]).items()})
    tags.update({f"metric.test_{k}": str(v) for k, v in metrics["test"].items()})
    return tags


def _new_version(client, cfg: params.Params, model_dir: Path, sha: str, tags: dict, extra: tuple[Path, ...]) -> str:
    """Log the servable model to its training run and register it; return the version."""
    import mlflow
    import torch

    import stages
    from stages.lib import model, registry, tracking

    card = fsio.read_json(model_dir / "model.json")
    net = model.build(card["architecture"], card["num_classes"])
    net.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True))
    serving = model.ServingModel(net, card["mean"], card["std"]).eval()
    run_id = tracking.find_run(sha)
    if run_id is None:
        with mlflow.start_run(run_name="register") as run:
            mlflow.set_tag(tracking.MODEL_TAG, sha)
            run_id = run.info.run_id
    source = registry.log_model(client, run_id, serving, card["num_classes"], Path(stages.__file__).parent, extra)
    return registry.create_version(client, cfg.register.model_name, source, run_id, tags)


def register(cfg: params.Params, model_dir: Path, metrics_path: Path, profile_path: Path, out: Path) -> dict:
    from mlflow import MlflowClient

    from stages.lib import registry, tracking

    fsio.remove(out)
    cli.require(model_dir / "model.json", model_dir / "model.pt", producer="train")
    cli.require(metrics_path, producer="evaluate")
    cli.require(profile_path, producer="profile")
    card = fsio.read_json(model_dir / "model.json")
    metrics = fsio.read_json(metrics_path)
    top1 = float(metrics["test"]["top1"])
    sha = hashlib.sha256((model_dir / "model.pt").read_bytes()).hexdigest()
    tracking.configure(cfg.mlflow.experiment)
    client, name = MlflowClient(), cfg.register.model_name
    version = registry.find_version(client, name, tracking.MODEL_TAG, sha)
    is_new = version is None
    if is_new:
        version = _new_version(client, cfg, model_dir, sha, _tags(sha, card, metrics), (profile_path,))
        client.set_registered_model_alias(name, registry.CHALLENGER, version)
    current = registry.champion(client, name)
    if current and current[0] == version:
        decision = registry.Decision(False, "this version is already champion")
    else:
        decision = registry.decide(top1, current[1] if current else None, cfg.register.promote_margin)
    if decision.promote:
        client.set_registered_model_alias(name, registry.CHAMPION, version)
    result = {
        "model": name,
        "version": int(version),
        "new_version": is_new,
        "aliases": sorted(client.get_model_version(name, version).aliases),
        "promoted": decision.promote,
        "reason": decision.reason,
        "test_top1": top1,
    }
    fsio.write_json(out, result)
    return result


def _main(argv) -> None:
    args = cli.parser(__doc__.splitlines()[0], "model", "metrics", "profile", "out").parse_args(argv)
    cfg = params.load(args.params)
    result = register(cfg, Path(args.model), Path(args.metrics), Path(args.profile), Path(args.out))
    print(f"register: {result['model']} v{result['version']} {result['aliases']} ({result['reason']})")


def main(argv=None) -> int:
    return cli.run("register", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
